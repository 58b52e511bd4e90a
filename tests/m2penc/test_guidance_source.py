"""Windowed, on-demand M2PEnc guidance: consistent across requests, seamless, bounded."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.encoder import M2PEnc, M2PEncConfig
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.guidance_source import M2PEncGuidance, window_starts, window_weights


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return M2PEnc(M2PEncConfig.preset("tiny")).eval()


def test_window_layout_covers_everything_and_ends_at_the_end():
    starts = window_starts(200, 75, 15)
    assert starts[0] == 0 and starts[-1] + 75 == 200
    covered = torch.zeros(200)
    for s in starts:
        covered[s:s + 75] += 1
    assert bool((covered >= 1).all())
    assert window_starts(40, 75, 15) == [0]
    with pytest.raises(InputError):
        window_starts(100, 10, 10)


def test_weights_sum_to_one_in_overlaps():
    starts = window_starts(200, 75, 15)
    total = torch.zeros(200)
    for s in starts:
        total[s:s + 75] += window_weights(75, s, starts, 75, 200)
    assert total.min() > 0
    single = window_weights(75, starts[1], starts, 75, 200)
    assert single[0] < 1 and single[30] == 1


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
    source = M2PEncGuidance(model, torch.randn(100, 35), fps=15, window=40, overlap=8)
    chunks = list(source.keypoint_heatmaps())
    assert sum(c.shape[0] for c in chunks) == 100
    assert chunks[0].shape[1:] == (model.config.heatmap_channels, 16, 16)


def test_out_of_range_request_is_refused(model):
    source = M2PEncGuidance(model, torch.randn(10, 35), fps=15)
    with pytest.raises(InputError, match="outside"):
        source.frames(torch.arange(5, 12), (8, 8), torch.device("cpu"), torch.float32)


def test_pose_maps_of_a_size_the_encoders_cannot_take_are_refused_up_front():
    """Checked where the maps come in (IMAGE layout in the message), not deep inside the sampler."""
    from m2pdance.m2penc.guidance_source import PoseMapGuidance

    encoders = {"dwpose": torch.nn.Identity(), "depth": torch.nn.Identity()}

    def make(**maps):
        return PoseMapGuidance(encoders, maps, fps=15, encode=None, channels=8)

    assert make(dwpose=torch.rand(3, 64, 96, 3)).num_frames == 3
    for maps in ({"dwpose": torch.rand(3, 100, 100, 3)},                               # not multiples of 8
                 {"dwpose": torch.rand(3, 64, 64, 4)},                                 # RGBA
                 {"dwpose": torch.rand(3, 64, 64, 3), "depth": torch.rand(3, 32, 32, 3)}):  # two sizes
        with pytest.raises(InputError, match=r"\(frames, height, width, 3\) of one size.*resize them"):
            make(**maps)
