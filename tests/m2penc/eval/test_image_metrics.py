"""PSNR and SSIM per frame: known values, hand-computed SSIM, skimage/torchmetrics cross-checks, input errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval.image_metrics import FrameScores, pool_videos, psnr, ssim

C1, C2 = 0.01 ** 2, 0.03 ** 2


def _smooth_video(frames: int = 2, height: int = 24, width: int = 28, seed: int = 0) -> torch.Tensor:
    """``(F, H, W, 3)`` float64 in [0.2, 0.8]: a different smooth pattern per channel and frame."""
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((frames, height, width, 3))
    for f in range(frames):
        for c in range(3):
            fy, fx, phase = g.uniform(0.1, 0.5, 2).tolist() + [g.uniform(0, 6.3)]
            out[f, :, :, c] = 0.5 + 0.3 * np.sin(fy * y + fx * x + phase) * np.cos(0.2 * x - 0.1 * c * y)
    return torch.from_numpy(out)


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two ``(H, W, 3)`` images from the formula, written independently of the module.

    2D Gaussian window (11 x 11, sigma 1.5) as an outer product normalised as a whole, moments by
    explicit sums over every whole-window position, population covariances, mean over channels and
    positions.
    """
    r = np.arange(11) - 5.0
    g = np.exp(-(r ** 2) / (2 * 1.5 ** 2))
    window = np.outer(g, g)
    window /= window.sum()
    values = []
    for c in range(3):
        pa = np.lib.stride_tricks.sliding_window_view(a[..., c], (11, 11))  # (H-10, W-10, 11, 11)
        pb = np.lib.stride_tricks.sliding_window_view(b[..., c], (11, 11))
        mu_a = np.einsum("ijkl,kl->ij", pa, window)
        mu_b = np.einsum("ijkl,kl->ij", pb, window)
        var_a = np.einsum("ijkl,kl->ij", (pa - mu_a[..., None, None]) ** 2, window)
        var_b = np.einsum("ijkl,kl->ij", (pb - mu_b[..., None, None]) ** 2, window)
        cov = np.einsum("ijkl,kl->ij", (pa - mu_a[..., None, None]) * (pb - mu_b[..., None, None]), window)
        s = ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a ** 2 + mu_b ** 2 + C1) * (var_a + var_b + C2))
        values.append(s.mean())
    return float(np.mean(values))


# ---------------------------------------------------------------- identical videos


def test_identical_videos_psnr_is_inf_and_ssim_is_one():
    video = _smooth_video(frames=3)
    p = psnr(video, video.clone())
    assert p.per_frame == (math.inf,) * 3 and p.infinite_frames == 3 and p.mean == math.inf
    s = ssim(video, video.clone())
    assert s.infinite_frames == 0
    assert all(abs(v - 1.0) < 1e-12 for v in s.per_frame) and abs(s.mean - 1.0) < 1e-12
    as_uint8 = (video * 255).round().to(torch.uint8)
    assert psnr(as_uint8, as_uint8).mean == math.inf and ssim(as_uint8, as_uint8).mean == pytest.approx(1.0, abs=1e-12)


def test_identical_frames_are_counted_and_left_out_of_the_mean():
    target = _smooth_video(frames=3)
    pred = target.clone()
    pred[1] = (pred[1] + 0.02).clamp(0, 1)
    pred[2] = (pred[2] - 0.05).clamp(0, 1)
    scores = psnr(pred, target)
    assert scores.per_frame[0] == math.inf and scores.infinite_frames == 1
    finite = scores.per_frame[1:]
    assert all(math.isfinite(v) for v in finite)
    assert scores.mean == pytest.approx(sum(finite) / 2, abs=1e-12)


# ---------------------------------------------------------------- PSNR: known noise level


@pytest.mark.parametrize("sigma", [0.01, 0.05])
def test_psnr_of_gaussian_noise_on_a_constant_image(sigma):
    """No clipping happens (checked), so MSE ~ sigma^2 and PSNR ~ 10 log10(1 / sigma^2).

    With 64 x 64 x 3 = 12288 noise samples per frame the sample MSE has a relative standard deviation
    sqrt(2 / 12288) = 1.3 %, i.e. 0.055 dB: the tolerance 0.25 dB is ~4.5 standard deviations. The exact
    value from the drawn noise must match to 1e-9 dB.
    """
    g = torch.Generator().manual_seed(1)
    target = torch.full((2, 64, 64, 3), 0.5, dtype=torch.float64)
    noise = sigma * torch.randn(target.shape, generator=g, dtype=torch.float64)
    pred = target + noise
    assert float(pred.min()) > 0 and float(pred.max()) < 1  # clip-free
    scores = psnr(pred, target)
    expected = 10 * math.log10(1 / sigma ** 2)
    for f, value in enumerate(scores.per_frame):
        assert value == pytest.approx(expected, abs=0.25)
        assert value == pytest.approx(10 * math.log10(1 / float(noise[f].square().mean())), abs=1e-9)


def test_uint8_frames_are_scaled_to_unit_range():
    g = torch.Generator().manual_seed(2)
    a = torch.randint(0, 256, (2, 16, 16, 3), generator=g, dtype=torch.uint8)
    b = torch.randint(0, 256, (2, 16, 16, 3), generator=g, dtype=torch.uint8)
    for metric in (psnr, ssim):
        got = metric(a, b).per_frame
        want = metric(a.double() / 255, b.double() / 255).per_frame
        assert got == pytest.approx(want, abs=1e-12)
    # numpy input is accepted too
    assert psnr(a.numpy(), b.numpy()).per_frame == pytest.approx(psnr(a, b).per_frame, abs=1e-12)


# ---------------------------------------------------------------- SSIM: known values


def test_ssim_of_two_constant_images_is_the_closed_form():
    """Constant images a, b: every window has zero variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)."""
    a, b = 0.5, 0.6
    pred = torch.full((1, 11, 11, 3), a, dtype=torch.float64)  # the smallest frame: one window
    target = torch.full((1, 11, 11, 3), b, dtype=torch.float64)
    expected = (2 * a * b + C1) / (a * a + b * b + C1)
    assert ssim(pred, target).per_frame[0] == pytest.approx(expected, abs=1e-12)
    big = ssim(torch.full((1, 30, 40, 3), a, dtype=torch.float64), torch.full((1, 30, 40, 3), b, dtype=torch.float64))
    assert big.per_frame[0] == pytest.approx(expected, abs=1e-12)


def test_ssim_of_a_one_pixel_shift_matches_a_hand_computation():
    """Frame = a crop of a smooth pattern; prediction = the same crop one pixel to the right."""
    scene = _smooth_video(frames=1, height=26, width=33)[0].numpy()
    target, pred = scene[:, :32], scene[:, 1:33]
    expected = _reference_ssim(pred, target)
    got = ssim(torch.from_numpy(pred)[None].clone(), torch.from_numpy(target)[None].clone()).per_frame[0]
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.3 < got < 0.999  # a real, partial similarity


def test_ssim_against_a_hand_computation_on_noisy_frames():
    g = np.random.default_rng(3)
    target = g.uniform(0, 1, (2, 17, 19, 3))
    pred = np.clip(target + g.normal(0, 0.1, target.shape), 0, 1)
    got = ssim(pred, target).per_frame
    assert got == pytest.approx([_reference_ssim(pred[f], target[f]) for f in range(2)], abs=1e-12)


def test_cross_check_with_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    g = np.random.default_rng(4)
    target = g.uniform(0, 1, (2, 40, 52, 3))
    pred = np.clip(target + g.normal(0, 0.08, target.shape), 0, 1)
    s, p = ssim(pred, target).per_frame, psnr(pred, target).per_frame
    for f in range(2):
        ref = skm.structural_similarity(pred[f], target[f], channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False)
        assert s[f] == pytest.approx(float(ref), abs=1e-10)
        assert p[f] == pytest.approx(float(skm.peak_signal_noise_ratio(target[f], pred[f], data_range=1.0)), abs=1e-9)


def test_cross_check_with_torchmetrics():
    """torchmetrics' PSNR per image is ours; its SSIM map cropped to whole windows gives our SSIM,
    while its own mean (over every pixel of a reflect-padded image) differs, as documented."""
    tm = pytest.importorskip("torchmetrics.functional.image")
    g = torch.Generator().manual_seed(5)
    target = torch.rand((2, 40, 52, 3), generator=g, dtype=torch.float64)
    pred = (target + 0.08 * torch.randn(target.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    a, b = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    ref_psnr = tm.peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))
    # torchmetrics converts to dB with a float32 constant 10 / ln(10): agreement to ~5e-8 relative
    assert psnr(pred, target).per_frame == pytest.approx(ref_psnr.tolist(), rel=1e-6)
    own_mean, full = tm.structural_similarity_index_measure(a, b, data_range=1.0, reduction="none",
                                                            return_full_image=True)
    ours = ssim(pred, target).per_frame
    assert ours == pytest.approx(full[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)).tolist(), abs=1e-10)
    assert abs(ours[0] - float(own_mean[0])) > 1e-5


# ---------------------------------------------------------------- aggregation


def test_pool_videos_is_frame_weighted():
    a = FrameScores("ssim", (0.5,))
    b = FrameScores("ssim", (1.0, 1.0, 1.0))
    pooled = pool_videos([a, b])
    assert pooled.frames == 4 and pooled.mean == pytest.approx(0.875)
    assert [s.mean for s in (a, b)] == [0.5, 1.0]
    with pytest.raises(InputError, match="different metrics"):
        pool_videos([a, FrameScores("psnr", (20.0,))])
    with pytest.raises(InputError):
        pool_videos([])


# ---------------------------------------------------------------- input errors


@pytest.mark.parametrize("pred, target, match", [
    (torch.rand(2, 16, 16, 3), torch.rand(3, 16, 16, 3), "differ in shape"),
    (torch.rand(2, 16, 16, 3), torch.rand(2, 16, 20, 3), "differ in shape"),
    (torch.rand(2, 16, 16, 4), torch.rand(2, 16, 16, 4), "alpha"),
    (torch.rand(16, 16, 3), torch.rand(16, 16, 3), "frame axis"),
    (torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), "channels-first"),
    (torch.rand(2, 16, 16, 3) * 2 - 1, torch.rand(2, 16, 16, 3), r"\[-1, 1\] data"),
    (torch.rand(2, 16, 16, 3) * 255, torch.rand(2, 16, 16, 3), r"\[0, 255\] data"),
    (torch.randint(0, 255, (2, 16, 16, 3)), torch.rand(2, 16, 16, 3), "dtype"),
    (torch.rand(0, 16, 16, 3), torch.rand(0, 16, 16, 3), "empty"),
    ([[0.5]], torch.rand(2, 16, 16, 3), "tensor or numpy"),
])
def test_bad_inputs_are_input_errors(pred, target, match):
    for metric in (psnr, ssim):
        with pytest.raises(InputError, match=match):
            metric(pred, target)


def test_nan_and_too_small_frames_are_input_errors():
    bad = torch.rand(2, 16, 16, 3)
    bad[1, 3, 4, 0] = float("nan")
    with pytest.raises(InputError, match="1 NaN/inf"):
        psnr(bad, torch.rand(2, 16, 16, 3))
    with pytest.raises(InputError, match="NaN/inf"):
        ssim(torch.rand(2, 16, 16, 3), bad)
    with pytest.raises(InputError, match="at least 11 x 11"):
        ssim(torch.rand(1, 10, 40, 3), torch.rand(1, 10, 40, 3))
    assert math.isfinite(psnr(torch.rand(1, 1, 1, 3), torch.rand(1, 1, 1, 3)).mean)  # PSNR has no size limit
