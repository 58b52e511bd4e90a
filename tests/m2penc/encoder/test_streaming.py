"""Windowed, on-demand M2PEnc guidance: consistent across requests, seamless, bounded."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.encoder import M2PEnc, M2PEncConfig
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.encoder.streaming import M2PEncGuidance
from m2pdance.m2penc.sampling.windows import blend_weights, crossfade_weights, window_starts


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return M2PEnc(M2PEncConfig.preset("tiny")).eval()


def test_window_layout_covers_everything_and_ends_at_the_end():
    starts = window_starts(200, 75, 60)
    assert starts == [0, 60, 120, 125]
    assert starts[0] == 0 and starts[-1] + 75 == 200
    covered = torch.zeros(200)
    for s in starts:
        covered[s:s + 75] += 1
    assert bool((covered >= 1).all())
    assert window_starts(40, 75, 60) == [0]
    with pytest.raises(InputError):
        window_starts(100, 10, 0)


def test_weights_sum_to_one_across_regular_overlaps():
    starts = window_starts(200, 75, 60)                  # overlaps of 15, 15, then 70 for the shifted last window
    total = torch.zeros(200)
    for i, s in enumerate(starts):
        total[s:s + 75] += blend_weights(starts, i, 75)
    torch.testing.assert_close(total[:120], torch.ones(120), rtol=0, atol=1e-6)
    # where the shifted last window piles a third window on, the sum is not 1: blending normalises by it
    assert float(total[120:].min()) > 0.5 and float((total - 1).abs().max()) > 0.05
    second = blend_weights(starts, 1, 75)
    torch.testing.assert_close(second[:15], torch.arange(1, 16) / 16)    # ramps up over the 15-frame overlap
    assert bool((second[15:60] == 1).all())                              # alone in the middle
    torch.testing.assert_close(second[60:], torch.arange(15, 0, -1) / 16)  # and down over the next overlap
    torch.testing.assert_close(crossfade_weights(3), torch.tensor([0.25, 0.5, 0.75]))


def test_frames_are_the_same_whichever_range_asks(model):
    feats = torch.randn(130, 35)
    source = M2PEncGuidance(model, feats, fps=15, window=40, overlap=8)
    whole = source.frames(torch.arange(0, 130), (8, 8), torch.device("cpu"), torch.float32)
    part = M2PEncGuidance(model, feats, fps=15, window=40, overlap=8).frames(
        torch.arange(50, 90), (8, 8), torch.device("cpu"), torch.float32)
    assert whole.shape == (1, model.config.guidance_channels, 130, 8, 8)
    torch.testing.assert_close(whole[:, :, 50:90], part, rtol=1e-5, atol=1e-6)


def test_single_window_equals_a_plain_forward(model):
    feats = torch.randn(30, 35)
    source = M2PEncGuidance(model, feats, fps=15, window=75, overlap=15)
    got = source.frames(torch.arange(30), (16, 16), torch.device("cpu"), torch.float32)
    with torch.no_grad():
        ref = model(feats[None]).guidance
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_heatmap_chunks_cover_every_frame_once(model):
    feats = torch.randn(100, 35)
    source = M2PEncGuidance(model, feats, fps=15, window=40, overlap=8)
    chunks = list(source.keypoint_heatmaps())
    assert [c.shape[0] for c in chunks] == [40, 40, 20]
    assert chunks[0].shape[1:] == (model.config.heatmap_channels, 16, 16)
    # away from overlaps every frame is exactly its window's own heatmap (windows start at 0, 32, 60)
    with torch.no_grad():
        first = model(feats[None, :40]).heatmaps[0].permute(1, 0, 2, 3)
        last = model(feats[None, 60:100]).heatmaps[0].permute(1, 0, 2, 3)
    heatmaps = torch.cat(chunks)
    torch.testing.assert_close(heatmaps[:32], first[:32], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(heatmaps[72:], last[12:], rtol=1e-5, atol=1e-6)


def test_window_length_comes_from_the_model_config():
    torch.manual_seed(0)
    short = M2PEnc(M2PEncConfig.preset("tiny", window_frames=20)).eval()
    assert M2PEncGuidance(short, torch.randn(100, 35), fps=15).window == 20
    assert M2PEncConfig.from_dict({k: v for k, v in short.config.to_dict().items() if k != "window_frames"}
                                  ).window_frames == 75          # files from before the field keep 75


def test_preview_and_sampler_share_one_pass_per_window(model, monkeypatch):
    feats = torch.randn(100, 35)
    source = M2PEncGuidance(model, feats, fps=15, window=40, overlap=8)
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: calls.append(x.shape[1]) or forward(x))
    list(source.keypoint_heatmaps())
    source.frames(torch.arange(0, 100), (8, 8), torch.device("cpu"), torch.float32)
    assert calls == [40, 40, 40]                         # three windows, each run once for both


def test_out_of_range_request_is_refused(model):
    source = M2PEncGuidance(model, torch.randn(10, 35), fps=15)
    with pytest.raises(InputError, match="outside"):
        source.frames(torch.arange(5, 12), (8, 8), torch.device("cpu"), torch.float32)


def test_pose_maps_of_a_size_the_encoders_cannot_take_are_refused_up_front():
    """Checked where the maps come in (IMAGE layout in the message), not deep inside the sampler."""
    from m2pdance.m2penc.champ import GuidanceEncoder, GuidanceEncoderConfig
    from m2pdance.m2penc.champ.pose_map_guidance import PoseMapGuidance

    config = GuidanceEncoderConfig.preset("tiny")
    encoders = {"dwpose": GuidanceEncoder(config), "depth": GuidanceEncoder(config)}

    def make(**maps):
        return PoseMapGuidance(encoders, maps, fps=15)

    assert make(dwpose=torch.rand(3, 64, 96, 3)).num_frames == 3
    for maps in ({"dwpose": torch.rand(3, 100, 100, 3)},                               # not multiples of 8
                 {"dwpose": torch.rand(3, 64, 64, 4)},                                 # RGBA
                 {"dwpose": torch.rand(3, 64, 64, 3), "depth": torch.rand(3, 32, 32, 3)}):  # two sizes
        with pytest.raises(InputError, match=r"\(frames, height, width, 3\) of one size.*resize them"):
            make(**maps)


def test_pose_map_guidance_encodes_each_range_like_the_whole_sequence():
    from m2pdance.m2penc.champ import GuidanceEncoder, GuidanceEncoderConfig
    from m2pdance.m2penc.champ.pose_guidance import encode_with
    from m2pdance.m2penc.champ.pose_map_guidance import PoseMapGuidance

    torch.manual_seed(0)
    encoders = {name: GuidanceEncoder(GuidanceEncoderConfig.preset("tiny")).eval() for name in ("depth", "dwpose")}
    maps = {name: torch.randint(0, 256, (12, 32, 32, 3), dtype=torch.uint8) for name in encoders}
    source = PoseMapGuidance(encoders, maps, fps=15, chunk_size=5)
    assert source.channels == 32
    part = source.frames(torch.arange(3, 9), (4, 4), torch.device("cpu"), torch.float32)
    whole = encode_with(encoders, {n: m.permute(0, 3, 1, 2).float() / 255 for n, m in maps.items()})
    assert whole.shape == (1, 32, 12, 4, 4)
    # the motion-free guidance encoders are per frame: a range equals the same frames of the whole
    torch.testing.assert_close(part, whole[:, :, 3:9], rtol=1e-5, atol=1e-5)
    single = encode_with({"depth": encoders["depth"]}, {"depth": maps["depth"].permute(0, 3, 1, 2)})
    assert not torch.allclose(single, whole)             # both encoders are summed
