"""PSNR and SSIM between a generated and a ground-truth video, frame by frame (paper §4.2, Table 1).

Inputs are two videos in ComfyUI's IMAGE layout, ``(F, H, W, 3)``: float in ``[0, 1]`` or
``uint8`` (``/ 255``), same shape; :func:`video_frames` checks them (shape, size, NaN/inf, range)
and raises :class:`~..errors.InputError` naming what is wrong. Both metrics are computed **per
frame** on the ``[0, 1]`` data (``data_range = 1``) and then averaged over the frames: the common
protocol of the pose-driven animation papers (AnimateAnyone, Champ, UniAnimate, DisCo), which the
paper follows by citing the image metrics. The paper's resolution policy (dancer-centred 640 x 640
crops of both videos) is the caller's: these functions score the frames they are given, at their
size, and never resize.

* **PSNR** per frame: ``10 log10(1 / MSE)``, MSE over all ``H * W * 3`` values, in float64.
  Identical frames (MSE = 0) score ``math.inf`` exactly (skimage's ``peak_signal_noise_ratio`` and
  torchmetrics' ``peak_signal_noise_ratio`` also give ``inf`` there; some evaluation scripts
  instead cap such frames at 100 dB). :attr:`FrameScores.mean` is the mean over the **finite**
  frames, and :attr:`FrameScores.infinite_frames` counts the identical ones, so one perfect
  frame neither turns the video's mean into ``inf`` nor hides: ``mean`` is ``inf`` only when
  every frame is identical. Generated videos practically never contain an exact copy of a
  ground-truth frame; the count makes it visible when they do (e.g. the reference frame).
* **SSIM** (Wang et al. 2004) with the paper-standard settings: Gaussian window 11 x 11,
  sigma = 1.5, K1 = 0.01, K2 = 0.03, population (not sample) covariances, computed on each RGB
  channel and **averaged over the three channels** (not on luminance Y), then over the window
  positions. Only windows that lie wholly inside the image count (the ``'valid'`` filtering of
  Wang's reference MATLAB code): the result equals scikit-image's ``structural_similarity(...,
  channel_axis=-1, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
  torchmetrics' ``structural_similarity_index_measure`` (same window and constants) instead
  averages over every pixel of a reflect-padded image, which differs in the 3rd-4th decimal; its
  SSIM map cropped by 5 pixels on each side equals ours. Plain torch, float64, separable window.

:class:`FrameScores` holds one metric's per-frame values for one video; :func:`pool_videos`
concatenates several videos' frames for a test-set figure (a frame-weighted mean, as the
per-frame protocol implies). LPIPS (:mod:`.lpips`) returns the same :class:`FrameScores`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, Union

import numpy as np
import torch

from ..errors import InputError

Frames = Union[torch.Tensor, np.ndarray]
#: The data range of ``[0, 1]`` frames: PSNR's peak and SSIM's ``L``.
DATA_RANGE = 1.0
#: SSIM settings of Wang et al. (2004), also skimage's (``gaussian_weights=True``) and torchmetrics' defaults.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Frames processed at once (bounds memory for long 640 x 640 videos).
FRAME_CHUNK = 8


@dataclass(frozen=True)
class FrameScores:
    """One metric over one video (or several, see :func:`pool_videos`): one score per frame.

    Attributes:
        metric: ``"psnr"`` (dB), ``"ssim"`` or ``"lpips_alex"`` / ``"lpips_vgg"``.
        per_frame: the scores in frame order; PSNR of an identical frame is ``math.inf``.
    """

    metric: str
    per_frame: tuple[float, ...]

    @property
    def frames(self) -> int:
        """How many frames were scored."""
        return len(self.per_frame)

    @property
    def infinite_frames(self) -> int:
        """Frames scored ``+inf`` (PSNR of a frame identical to its target); 0 for SSIM and LPIPS."""
        return sum(1 for v in self.per_frame if math.isinf(v))

    @property
    def mean(self) -> float:
        """Mean over the finite frames; ``math.inf`` when every frame is infinite (identical videos)."""
        finite = [v for v in self.per_frame if math.isfinite(v)]
        if not finite:
            return math.inf if self.per_frame else math.nan
        return math.fsum(finite) / len(finite)


def pool_videos(scores: Sequence[FrameScores]) -> FrameScores:
    """All frames of several videos as one :class:`FrameScores` (its ``mean`` is frame-weighted).

    The per-video means are ``[s.mean for s in scores]``; averaging those instead weighs each
    video equally, which differs when the videos have different lengths.
    """
    if not scores:
        raise InputError("pool_videos needs at least one video's scores")
    metrics = {s.metric for s in scores}
    if len(metrics) != 1:
        raise InputError(f"cannot pool scores of different metrics: {sorted(metrics)}")
    return FrameScores(scores[0].metric, tuple(v for s in scores for v in s.per_frame))


def video_frames(frames: Frames, name: str) -> torch.Tensor:
    """Check a video in ComfyUI's IMAGE layout and return it as a tensor (values unchanged).

    Args:
        frames: ``(F, H, W, 3)``, float in ``[0, 1]`` or ``uint8``; a torch tensor or numpy array.
        name: what the error messages call it (e.g. ``"generated video"``).
    Returns:
        The same data as a torch tensor ``(F, H, W, 3)`` (float or ``uint8``).
    Raises:
        InputError: wrong type, shape or dtype; no frames; NaN/inf; float values outside ``[0, 1]``.
    """
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise InputError(f"{name} must be a torch tensor or numpy array (F, H, W, 3), got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        hint = ""
        if frames.ndim == 3 and frames.shape[-1] == 3:
            hint = "; a single image needs a frame axis: image[None]"
        elif frames.ndim == 4 and frames.shape[-1] == 4:
            hint = "; drop the alpha channel: frames[..., :3]"
        elif frames.ndim == 4 and frames.shape[1] == 3:
            hint = "; channels-first (F, 3, H, W) data: frames.permute(0, 2, 3, 1)"
        raise InputError(f"{name} must be RGB frames (F, H, W, 3), got shape {tuple(frames.shape)}{hint}")
    if frames.shape[0] == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise InputError(f"{name} is empty: shape {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        return frames
    if not frames.is_floating_point():
        raise InputError(f"{name} must be float in [0, 1] or uint8, got dtype {frames.dtype}")
    finite = torch.isfinite(frames)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{name} holds {bad} NaN/inf values (of {frames.numel()}); check the generator's output")
    low, high = float(frames.min()), float(frames.max())
    if low < 0.0 or high > 1.0:
        hint = (" (looks like [-1, 1] data: map it with (x + 1) / 2)" if low >= -1.0 and high <= 1.0 else
                " (looks like [0, 255] data: pass uint8 or divide by 255)" if low >= 0.0 and high <= 255.0 else "")
        raise InputError(f"{name} must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]{hint}")
    return frames


def video_pair(pred: Frames, target: Frames) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two videos (:func:`video_frames`) and that they have the same shape.

    Args:
        pred: the generated video ``(F, H, W, 3)``.
        target: the ground-truth video ``(F, H, W, 3)``, same frame count and size.
    """
    pred_t = video_frames(pred, "generated video")
    target_t = video_frames(target, "ground-truth video")
    if pred_t.shape != target_t.shape:
        raise InputError(
            f"the videos differ in shape: generated {tuple(pred_t.shape)} vs ground truth {tuple(target_t.shape)} "
            "(F, H, W, 3); crop/resize both to the same size and trim them to the same frame count first"
        )
    return pred_t, target_t


def frame_chunks(pred: torch.Tensor, target: torch.Tensor, dtype: torch.dtype, device: torch.device,
                 chunk: int = FRAME_CHUNK) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Checked videos ``(F, H, W, 3)`` -> chunks ``(n, 3, H, W)`` in ``[0, 1]``, as ``dtype`` on ``device``."""
    for start in range(0, pred.shape[0], chunk):
        stop = start + chunk
        yield _to_unit_nchw(pred[start:stop], dtype, device), _to_unit_nchw(target[start:stop], dtype, device)


def _to_unit_nchw(frames: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(n, H, W, 3)`` float ``[0, 1]`` or uint8 -> ``(n, 3, H, W)`` float ``[0, 1]``."""
    x = frames.to(device=device).permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        return x.to(dtype) / 255.0
    return x.to(dtype)


def _per_frame(pred: Frames, target: Frames, metric: str,
               score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               min_side: int = 1) -> FrameScores:
    pred_t, target_t = video_pair(pred, target)
    height, width = pred_t.shape[1:3]
    if min(height, width) < min_side:
        raise InputError(f"{metric.upper()} needs frames of at least {min_side} x {min_side} pixels, "
                         f"got {height} x {width}")
    values: list[float] = []
    with torch.inference_mode():
        for a, b in frame_chunks(pred_t, target_t, torch.float64, pred_t.device):
            values.extend(float(v) for v in score(a, b))
    return FrameScores(metric, tuple(values))


def _psnr_chunk(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n, 3, H, W)`` x2 -> ``(n,)`` PSNR in dB; ``+inf`` where the frames are identical."""
    mse = (a - b).square().mean(dim=(1, 2, 3))
    return torch.where(mse > 0, 10.0 * torch.log10(DATA_RANGE ** 2 / mse), torch.full_like(mse, math.inf))


def psnr(pred: Frames, target: Frames) -> FrameScores:
    """PSNR per frame (dB, ``data_range = 1``); identical frames score ``math.inf``.

    Args:
        pred: generated video ``(F, H, W, 3)``, float ``[0, 1]`` or uint8.
        target: ground-truth video, same shape.
    Returns:
        ``FrameScores("psnr", ...)``: ``.mean`` is over the finite frames and
        ``.infinite_frames`` counts the identical ones (module docstring).
    """
    return _per_frame(pred, target, "psnr", _psnr_chunk)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The normalised 1D Gaussian ``(size,)`` (float64) whose outer product is SSIM's window."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return w / w.sum()


def _local_mean(x: torch.Tensor, window: Sequence[float]) -> torch.Tensor:
    """``(..., H, W)`` -> ``(..., H - k + 1, W - k + 1)``: Gaussian-weighted means over whole windows.

    The separable window as k shifted, weighted adds along each axis (exact; on CPU in float64
    several times faster than a grouped ``conv2d`` with a 1 x k kernel).
    """
    k = len(window)
    height, width = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = x[..., :, 0:width] * window[0]
    for i in range(1, k):
        rows.add_(x[..., :, i:i + width], alpha=window[i])
    out = rows[..., 0:height, :] * window[0]
    for i in range(1, k):
        out.add_(rows[..., i:i + height, :], alpha=window[i])
    return out


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM at every whole-window position.

    Args:
        a, b: ``(n, C, H, W)`` float images in ``[0, 1]`` (H, W >= 11).
    Returns:
        ``(n, C, H - 10, W - 10)``: the SSIM index of the window centred at each interior pixel.
    """
    window = gaussian_window().tolist()
    n = a.shape[0]
    moments = _local_mean(torch.cat([a, b, a * a, b * b, a * b]), window)
    mu_a, mu_b, e_aa, e_bb, e_ab = moments.split(n)
    var_a, var_b, cov = e_aa - mu_a * mu_a, e_bb - mu_b * mu_b, e_ab - mu_a * mu_b
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))


def _ssim_chunk(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n, 3, H, W)`` x2 -> ``(n,)``: mean over channels and window positions."""
    return ssim_map(a, b).mean(dim=(1, 2, 3))


def ssim(pred: Frames, target: Frames) -> FrameScores:
    """SSIM per frame: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, RGB channels averaged.

    Args:
        pred: generated video ``(F, H, W, 3)``, float ``[0, 1]`` or uint8, H and W >= 11.
        target: ground-truth video, same shape.
    Returns:
        ``FrameScores("ssim", ...)``, each value in ``[-1, 1]`` (1 for identical frames).
    """
    return _per_frame(pred, target, "ssim", _ssim_chunk, min_side=SSIM_WINDOW)
