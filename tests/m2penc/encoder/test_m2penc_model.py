"""M2PEnc shapes (paper preset on the meta device), gradients, inflation, losses, guidance resizing."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from m2pdance.m2penc.audio.featureset import MusicFeatures
from m2pdance.m2penc.encoder import (
    M2PEnc, M2PEncConfig, frames_first, latent_size_for, m2penc_loss, resize_guidance,
    to_guidance_fea,
)
from m2pdance.m2penc.encoder.blocks import InflatedConv3d
from m2pdance.m2penc.errors import InputError

PAPER_FRAMES = 75  # 5 s at 15 fps


@pytest.mark.parametrize("preset, in_dim", [("paper", 4800), ("paper_baseline", 35)])
def test_paper_preset_shapes_on_meta_device(preset, in_dim):
    """The full 75-frame paper forward, shapes only (the real one takes ~8 s: benchmarks/m2penc.py)."""
    with torch.device("meta"):
        model = M2PEnc(M2PEncConfig.preset(preset))
        out = model(torch.empty(2, PAPER_FRAMES, in_dim))
    assert out.guidance.shape == (2, 320, PAPER_FRAMES, 64, 64)
    assert out.heatmaps.shape == (2, 18, PAPER_FRAMES, 64, 64)
    assert frames_first(out.guidance).shape == (2, PAPER_FRAMES, 320, 64, 64)
    assert model.fc.out_features == 64 * 64


def test_heatmap_channels_configurable():
    config = M2PEncConfig.preset("tiny", heatmap_channels=134)
    out = M2PEnc(config)(torch.randn(1, 4, 35))
    assert out.heatmaps.shape == (1, 134, 4, 16, 16)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = M2PEnc(M2PEncConfig.preset("tiny", num_layers=2))
    out = model(torch.randn(2, 6, 35))
    (out.guidance.square().mean() + out.heatmaps.square().mean()).backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient for {dead}"


def test_first_frame_music_reaches_last_frame_through_attention():
    """Convs see +-3 frames here; frame 0 reaching frame 9 proves temporal attention mixes time."""
    torch.manual_seed(0)
    model = M2PEnc(M2PEncConfig.preset("tiny")).eval()
    x = torch.randn(1, 10, 35)
    y = x.clone()
    y[0, 0] += 1.0
    with torch.no_grad():
        assert not torch.allclose(model(x).guidance[:, :, -1], model(y).guidance[:, :, -1])


def test_inflated_conv_maps_static_video_like_2d_conv():
    torch.manual_seed(0)
    conv2d = nn.Conv2d(3, 5, 3, padding=1)
    inflated = InflatedConv3d.from_conv2d(conv2d, time_kernel=3)
    frame = torch.randn(2, 3, 8, 8)
    video = frame[:, :, None].expand(-1, -1, 4, -1, -1)
    out = inflated(video)
    for t in range(4):
        torch.testing.assert_close(out[:, :, t], conv2d(frame), rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_explained():
    model = M2PEnc(M2PEncConfig.preset("tiny"))
    with pytest.raises(InputError, match=r"\(batch, frames, 35\)"):
        model(torch.randn(1, 4, 4800))
    music = MusicFeatures(torch.zeros(4, 4800), fps=15.0, kind="jukebox", layer=66, source_hash="x")
    with pytest.raises(InputError, match="'baseline' music features"):
        model.check_music(music)
    with pytest.raises(InputError, match="15.0 fps"):
        model.check_music(MusicFeatures(torch.zeros(4, 35), fps=30.0, kind="baseline", layer=None, source_hash="x"))
    with pytest.raises(InputError, match="does not match"):
        M2PEncConfig(feature_kind="baseline", in_dim=4800)


def test_losses_follow_the_paper():
    torch.manual_seed(0)
    out = M2PEnc(M2PEncConfig.preset("tiny"))(torch.randn(1, 3, 35))
    g, h = torch.randn_like(out.guidance), torch.rand_like(out.heatmaps)
    loss = m2penc_loss(out, g, h, heatmap_weight=2.0)
    torch.testing.assert_close(loss.guidance, (out.guidance - g).abs().mean())
    torch.testing.assert_close(loss.heatmap, (out.heatmaps - h).square().mean())
    torch.testing.assert_close(loss.total, loss.guidance + 2.0 * loss.heatmap)


def test_guidance_resized_to_latent_size():
    assert latent_size_for(512, 512) == (64, 64) and latent_size_for(640, 640) == (80, 80)
    with pytest.raises(InputError, match="multiples of 8"):
        latent_size_for(500, 512)
    guidance = torch.randn(2, 320, 5, 64, 64)
    assert resize_guidance(guidance, (64, 64)) is guidance
    fea = to_guidance_fea(guidance, 640, 640, dtype=torch.float16)
    assert fea.shape == (2, 320, 5, 80, 80) and fea.dtype == torch.float16 and fea.is_contiguous()
    constant = torch.ones(1, 2, 3, 64, 64)
    torch.testing.assert_close(resize_guidance(constant, (80, 80)), torch.ones(1, 2, 3, 80, 80))


def test_gradient_checkpointing_gives_the_same_values_and_gradients():
    torch.manual_seed(0)
    model = M2PEnc(M2PEncConfig.preset("tiny", num_layers=2))
    features = torch.randn(2, 6, model.config.in_dim)
    grads = []
    for flag in (False, True):
        model.gradient_checkpointing = flag
        model.zero_grad()
        out = model(features)
        (out.guidance.square().mean() + out.heatmaps.mean()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_input_standardisation_is_a_per_column_affine_map_before_the_layer_norm():
    """A standardising M2PEnc on x equals the same weights without it on (x - mean) / std."""
    from m2pdance.m2penc.encoder.model import MIN_INPUT_STD

    config = M2PEncConfig.preset("tiny", input_standardize=True)
    torch.manual_seed(0)
    model = M2PEnc(config).eval()
    plain = M2PEnc(M2PEncConfig.preset("tiny")).eval()
    assert set(model.state_dict()) - set(plain.state_dict()) == {"input_mean", "input_std"}
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k not in ("input_mean", "input_std")})
    mean = torch.linspace(-240.0, 3.0, config.in_dim)
    std = torch.linspace(0.001, 66.0, config.in_dim)              # the first column is floored
    model.set_input_statistics(mean, std)
    torch.testing.assert_close(model.input_std, std.clamp(min=MIN_INPUT_STD))
    x = mean + torch.randn(2, 6, config.in_dim) * std
    with torch.no_grad():
        a, b = model(x), plain((x - mean) / std.clamp(min=MIN_INPUT_STD))
    torch.testing.assert_close(a.guidance, b.guidance)
    torch.testing.assert_close(a.heatmaps, b.heatmaps)


def test_input_statistics_are_checked():
    model = M2PEnc(M2PEncConfig.preset("tiny", input_standardize=True))
    d = model.config.in_dim
    with pytest.raises(InputError, match=r"\(35,\)"):
        model.set_input_statistics(torch.zeros(d + 1), torch.ones(d))
    with pytest.raises(InputError, match="finite"):
        model.set_input_statistics(torch.full((d,), float("nan")), torch.ones(d))
    with pytest.raises(InputError, match="never set"):
        model(torch.zeros(1, 4, d))                     # a fresh model has no statistics: it refuses to guess
    with pytest.raises(InputError, match="does not standardise"):
        M2PEnc(M2PEncConfig.preset("tiny")).set_input_statistics(torch.zeros(d), torch.ones(d))
