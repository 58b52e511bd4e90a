"""FVD: clip splitting, preprocessing values, the Fréchet distance, statistics files, FVD on a tiny I3D."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval.fvd import (
    FeatureStats, clip_starts, compute_fvd, frechet_distance, fvd_from_stats, i3d_features, iter_clips,
    preprocess_clip, to_unit_range, trace_sqrt_product, video_stats,
)
from m2pdance.m2penc.eval.i3d import I3DConfig, InceptionI3d, Unit3D


@pytest.fixture(scope="module")
def tiny_i3d() -> InceptionI3d:
    """The real module tree at 1/8 width (the full width costs ~1 s per clip on one CPU thread), He-initialised
    so random features keep their spread through the 22 layers."""
    torch.manual_seed(0)
    model = InceptionI3d(I3DConfig(width=0.125)).eval()
    with torch.no_grad():
        for unit in model.modules():
            if isinstance(unit, Unit3D) and unit.bn is not None:
                torch.nn.init.kaiming_normal_(unit.conv3d.weight, nonlinearity="relu")
            elif isinstance(unit, Unit3D):
                torch.nn.init.normal_(unit.conv3d.weight, std=unit.conv3d.weight[0].numel() ** -0.5)
    return model


def _smooth_videos(count: int, frames: int = 16, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``(count, frames, size, size, 3)`` float in [0, 1]: random 8x8 images upsampled."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(count * frames, 3, 8, 8, generator=g)
    video = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return video.reshape(count, frames, 3, size, size).permute(0, 1, 3, 4, 2).contiguous()


# --- clips ---------------------------------------------------------------------------------------

def test_clip_starts():
    assert clip_starts(16) == [0]
    assert clip_starts(40) == [0, 16]              # frames 32..39 are dropped
    assert clip_starts(48) == [0, 16, 32]
    assert clip_starts(48, split="first") == [0]
    assert clip_starts(20, clip_frames=10) == [0, 10]
    with pytest.raises(InputError, match="shorter than one 16-frame"):
        clip_starts(15)
    with pytest.raises(InputError, match="split"):
        clip_starts(32, split="random")


def test_iter_clips_takes_the_right_frames():
    video = np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    clips = list(iter_clips([video, video[:16]]))
    assert [c[:, 0, 0, 0].tolist() for c in clips] == [list(range(16)), list(range(16, 32)), list(range(16))]
    assert len(list(iter_clips(np.stack([video, video]), split="first"))) == 2   # (N, F, H, W, 3) batch
    assert len(list(iter_clips(torch.from_numpy(video)))) == 2                  # one (F, H, W, 3) video


# --- preprocessing -------------------------------------------------------------------------------

def test_preprocess_scales_to_minus_one_one_and_keeps_channel_and_time_order():
    frames = np.zeros((16, 50, 70, 3), np.uint8)
    frames[..., 0] = 255
    frames[..., 1] = 128
    frames[5, ..., 2] = 51
    out = preprocess_clip(frames)
    assert out.shape == (3, 16, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], torch.ones(16, 224, 224))
    torch.testing.assert_close(out[1], torch.full((16, 224, 224), 2 * 128 / 255 - 1))
    torch.testing.assert_close(out[2, 5], torch.full((224, 224), 2 * 51 / 255 - 1))
    assert out[2, [0, 4, 6, 15]].eq(-1).all()
    torch.testing.assert_close(preprocess_clip(torch.full((16, 8, 8, 3), 0.5)), torch.zeros(3, 16, 224, 224))


def test_resize_is_bilinear_without_antialiasing():
    """448 -> 224 samples source x = 2 i + 0.5: columns 0 0 1 1 0 0 1 1 ... become 0 1 0 1 ... (an antialiased
    resize would blur them to 0.125 / 0.875)."""
    columns = np.array([0, 0, 1, 1] * 112, np.float32)
    frames = np.broadcast_to(columns[None, None, :, None], (16, 448, 448, 3)).copy()
    out = preprocess_clip(frames)[0, 0]
    expected = torch.tensor([-1.0, 1.0] * 112).expand(224, 224)
    torch.testing.assert_close(out, expected)


def test_non_square_frames_are_stretched_or_centre_cropped():
    """224 x 448 frames with the middle half white: a stretch keeps black sides, a centre crop sees only white."""
    frames = np.zeros((16, 224, 448, 3), np.uint8)
    frames[:, :, 112:336] = 255
    stretched = preprocess_clip(frames)[0, 0]
    assert stretched[:, :50].eq(-1).all() and stretched[:, 60:164].eq(1).all() and stretched[:, 174:].eq(-1).all()
    assert preprocess_clip(frames, center_crop=True).eq(1).all()
    # shorter side to 224, the longer to ceil(150 * 2.24) = 337 in floating point (as MM-Diffusion computes
    # it), then the crop starts at (337 - 224) // 2 = 56
    ramp = np.broadcast_to(np.linspace(0, 1, 150, dtype=np.float32)[None, None, :, None], (16, 100, 150, 3)).copy()
    crop = preprocess_clip(ramp, center_crop=True)[0, 0]
    assert math.ceil(150 * (224 / 100)) == 337
    full = torch.nn.functional.interpolate(torch.from_numpy(ramp[:1, ..., 0])[None], size=(224, 337),
                                           mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(crop, full[:, 56:280] * 2 - 1)


def test_frame_values_are_checked():
    torch.testing.assert_close(to_unit_range(np.full((1, 2, 2, 3), 255, np.uint8)), torch.ones(1, 2, 2, 3))
    with pytest.raises(InputError, match=r"\[0, 1\].*uint8"):
        to_unit_range(np.full((1, 2, 2, 3), 200.0, np.float32))
    with pytest.raises(InputError, match="NaN"):
        to_unit_range(torch.full((1, 2, 2, 3), float("nan")))
    with pytest.raises(InputError, match=r"\(frames, height, width, 3\)"):
        to_unit_range(np.zeros((2, 3, 4, 4), np.uint8))
    assert to_unit_range(torch.full((1, 1, 1, 3), 1.0005)).max() == 1.0   # VAE overshoot within slack: clamped


# --- Fréchet distance ----------------------------------------------------------------------------

def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=50), rng.normal(size=50)
    s1, s2 = rng.uniform(0.1, 3.0, 50), rng.uniform(0.0, 3.0, 50)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    # the same Gaussians in another orthonormal basis: the distance does not change
    q = np.linalg.qr(rng.normal(size=(50, 50)))[0]
    rotated = frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)


def test_trace_sqrt_product_matches_scipy_sqrtm_on_full_rank_covariances():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 30)), rng.normal(size=(200, 30)) @ rng.normal(size=(30, 30))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert trace_sqrt_product(s1, s2) == pytest.approx(np.trace(sqrtm(s1 @ s2)).real, rel=1e-9)
    assert frechet_distance(a.mean(0), s1, b.mean(0), s2) == pytest.approx(
        frechet_distance(b.mean(0), s2, a.mean(0), s1), rel=1e-12)


def test_singular_covariances_against_themselves_give_zero():
    """20 clips in 400 dimensions (the paper's test set size): a rank-19 covariance."""
    features = np.random.default_rng(2).normal(size=(20, 400)) * np.linspace(0.1, 10, 400)
    stats = FeatureStats.from_features(features)
    assert stats.count == 20 and np.linalg.matrix_rank(stats.cov) == 19
    trace = np.trace(stats.cov)
    assert abs(2 * trace - 2 * trace_sqrt_product(stats.cov, stats.cov)) < 1e-9 * trace
    assert fvd_from_stats(stats, stats) < 1e-9 * trace


def test_covariance_normalisation():
    x = np.random.default_rng(3).normal(size=(10, 4))
    np.testing.assert_allclose(FeatureStats.from_features(x).cov, np.cov(x, rowvar=False, ddof=0))
    np.testing.assert_allclose(FeatureStats.from_features(torch.from_numpy(x), ddof=1).cov, np.cov(x, rowvar=False))
    with pytest.raises(InputError, match="N >= 2"):
        FeatureStats.from_features(x[:1])


# --- FVD on a tiny I3D ---------------------------------------------------------------------------

def test_fvd_is_zero_against_itself_and_grows_with_noise(tiny_i3d):
    base = _smooth_videos(5)
    noise = torch.randn(base.shape, generator=torch.Generator().manual_seed(1))
    real = video_stats(tiny_i3d, base)
    trace = np.trace(real.cov)
    assert real.count == 5 and real.mean.shape == (400,) and trace > 0
    assert compute_fvd(tiny_i3d, real, base) < 1e-6 * trace
    values = [compute_fvd(tiny_i3d, real, (base + level * noise).clamp(0, 1)) for level in (0.05, 0.15, 0.5)]
    assert 0 < values[0] < values[1] < values[2], values


def test_features_do_not_depend_on_batching_or_input_dtype(tiny_i3d):
    videos = _smooth_videos(3, frames=16, size=32, seed=4)
    as_uint8 = (videos * 255).round().to(torch.uint8)
    mixed = [as_uint8[0].numpy(), as_uint8[1], as_uint8[2, :, :, :24].numpy()]   # numpy, torch, another size
    by_one = i3d_features(tiny_i3d, mixed, batch_size=1)
    by_three = i3d_features(tiny_i3d, mixed, batch_size=3)
    assert by_one.shape == (3, 400) and by_one.dtype == np.float64
    np.testing.assert_allclose(by_one, by_three, rtol=1e-4, atol=1e-6)
    as_float = i3d_features(tiny_i3d, [v.float() / 255 for v in as_uint8[:2]])
    np.testing.assert_allclose(as_float, by_one[:2], rtol=1e-4, atol=1e-6)


def test_model_dtype_is_followed(tiny_i3d):
    video = _smooth_videos(1, size=32, seed=5)[0]
    double = InceptionI3d(tiny_i3d.config).double().eval()
    double.load_state_dict(tiny_i3d.state_dict())
    np.testing.assert_allclose(i3d_features(double, video), i3d_features(tiny_i3d, video), rtol=1e-3, atol=1e-5)


# --- statistics files ----------------------------------------------------------------------------

def test_stats_round_trip_through_safetensors(tmp_path):
    features = np.random.default_rng(6).normal(size=(12, 400))
    stats = FeatureStats.from_features(features, protocol={"split": "consecutive", "clip_frames": 16})
    path = stats.save(tmp_path / "aist_test.fvd.safetensors")
    back = FeatureStats.load(path)
    np.testing.assert_array_equal(back.mean, stats.mean)
    np.testing.assert_array_equal(back.cov, stats.cov)
    assert back.count == 12 and back.protocol == {"split": "consecutive", "clip_frames": 16, "ddof": 0}
    assert fvd_from_stats(back, stats) == 0.0


def test_stats_files_and_protocols_are_checked(tmp_path):
    other = tmp_path / "weights.safetensors"
    save_file({"mean": np.zeros(3)}, str(other))
    with pytest.raises(InputError, match="not an FVD statistics file"):
        FeatureStats.load(other)
    with pytest.raises(InputError, match="not found"):
        FeatureStats.load(tmp_path / "absent.safetensors")
    x = np.random.default_rng(7).normal(size=(5, 3))
    first = FeatureStats.from_features(x, protocol={"split": "first"})
    with pytest.raises(InputError, match="split: 'first' vs 'consecutive'"):
        fvd_from_stats(first, FeatureStats.from_features(x, protocol={"split": "consecutive"}))
    with pytest.raises(InputError, match="ddof"):
        fvd_from_stats(first, FeatureStats.from_features(x, ddof=1, protocol={"split": "first"}))
