"""Keypoints <-> Gaussian heatmaps, the M2PEnc heatmap head's training targets and its readout.

Coordinates are in heatmap pixels with pixel ``i`` centred at ``i`` (so a G-wide map spans
``[-0.5, G - 0.5]``). :func:`heatmap_to_canvas` / :func:`canvas_to_heatmap` convert to and from
the pixels of a W x H video frame with the same centre-aligned convention.

Readout refines the integer argmax to sub-pixel precision with one Newton step on the log of the
map (the peak of the quadratic through the 3 x 3 log-values around it, as in DARK, Zhang et al.
2020): exact for the Gaussian targets whatever the centre's fraction of a pixel, so a keypoint that
moves smoothly reads smoothly. Where that fit is not a peak (a value <= 0 in the 3 x 3, the argmax on
the border, a saddle or a plateau flatter than :data:`MIN_LOG_CURVATURE`, or a step longer than a pixel:
flat or ragged predicted maps) it falls back to
a *local* soft-argmax, the heatmap-weighted mean of the positive values in a small window around the
argmax. (That window mean alone is biased towards the argmax pixel: a centre crossing a pixel
boundary jumped by 0.6 px at sigma 2, which Bailando's beat alignment counts as motion.) A global
soft-argmax is biased towards the map centre by the background; a hard argmax quantises to whole
pixels. The confidence is the peak pixel value clipped to [0, 1] (targets peak at the keypoint's
confidence; a centre between pixels reads up to ``1 - exp(-0.5 / (2 sigma^2))``, ~6 % at sigma 2, low).
"""
from __future__ import annotations

import torch

from ..errors import InputError

#: Gaussian sigma of target heatmaps, in heatmap pixels (2 px on a 64 grid ~ 16-20 px on the frame).
DEFAULT_SIGMA = 2.0
#: Half-size of the soft-argmax window around the peak, in heatmap pixels.
DEFAULT_WINDOW = 2
#: The log-map's curvature at the argmax below which it is not a peak (a Gaussian of sigma s has 1 / s^2:
#: 0.25 at the targets' sigma 2; 0.02 is a blob of sigma 7): flatter maps take the window mean.
MIN_LOG_CURVATURE = 0.02


def keypoints_to_heatmaps(keypoints: torch.Tensor, height: int, width: int,
                          sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """``(..., K, 3)`` [x, y, confidence] in heatmap pixels -> ``(..., K, height, width)``.

    Each map is ``c * exp(-d^2 / (2 sigma^2))`` with ``c`` the confidence clipped to [0, 1];
    keypoints with confidence 0 give an all-zero map.
    """
    if keypoints.shape[-1] != 3:
        raise InputError(f"keypoints must end in [x, y, confidence], got shape {tuple(keypoints.shape)}")
    ys = torch.arange(height, device=keypoints.device, dtype=keypoints.dtype)
    xs = torch.arange(width, device=keypoints.device, dtype=keypoints.dtype)
    dx2 = (xs - keypoints[..., 0:1]) ** 2                    # (..., K, W)
    dy2 = (ys - keypoints[..., 1:2]) ** 2                    # (..., K, H)
    gauss = torch.exp(-(dy2[..., :, None] + dx2[..., None, :]) / (2 * sigma**2))
    return gauss * keypoints[..., 2].clamp(0, 1)[..., None, None]


def _window_offsets(radius: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    return dy.reshape(-1), dx.reshape(-1)


def heatmaps_to_keypoints(heatmaps: torch.Tensor, window: int = DEFAULT_WINDOW) -> torch.Tensor:
    """``(..., K, H, W)`` heatmaps -> ``(..., K, 3)`` [x, y, confidence] in heatmap pixels.

    The log-Gaussian Newton step where it finds a peak, else the local soft-argmax over a
    ``(2 window + 1)^2`` window (module docstring).
    """
    if heatmaps.ndim < 3:
        raise InputError(f"heatmaps must be (..., K, H, W), got shape {tuple(heatmaps.shape)}")
    *lead, h, w = heatmaps.shape
    maps = heatmaps.detach().reshape(-1, h, w).float()
    peak, flat = maps.reshape(maps.shape[0], -1).max(dim=1)
    iy, ix = flat // w, flat % w
    window_x, window_y = _window_mean(maps, iy, ix, window)
    step_x, step_y, ok = _log_newton_step(maps, iy, ix)
    x = torch.where(ok, ix.float() + step_x, window_x)
    y = torch.where(ok, iy.float() + step_y, window_y)
    out = torch.stack([x, y, peak.clamp(0, 1)], dim=-1)
    return out.reshape(*lead, 3)


def _window_mean(maps: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``maps (M, H, W)``, argmax ``(M,)`` -> the positive-value-weighted mean position in the window, ``(M,)`` x 2."""
    h, w = maps.shape[-2:]
    dy, dx = _window_offsets(radius, maps.device)
    yy, xx = iy[:, None] + dy, ix[:, None] + dx                       # (M, (2r+1)^2)
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    rows = torch.arange(maps.shape[0], device=maps.device)[:, None]
    values = maps[rows, yy.clamp(0, h - 1), xx.clamp(0, w - 1)].clamp(min=0) * inside
    total = values.sum(dim=1)
    safe = total.clamp(min=1e-12)
    x = torch.where(total > 0, (values * xx).sum(1) / safe, ix.float())
    y = torch.where(total > 0, (values * yy).sum(1) / safe, iy.float())
    return x, y


def _log_newton_step(maps: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The offset ``(dx, dy)`` from the argmax to the peak of the quadratic through the 3 x 3 log-values
    around it (``-H^-1 g`` by central differences), and ``ok (M,)``: that offset is a peak within a pixel."""
    h, w = maps.shape[-2:]
    rows = torch.arange(maps.shape[0], device=maps.device)[:, None]
    dy, dx = _window_offsets(1, maps.device)                          # row-major 3 x 3, centre at 4
    yy, xx = (iy[:, None] + dy).clamp(0, h - 1), (ix[:, None] + dx).clamp(0, w - 1)
    values = maps[rows, yy, xx]                                       # (M, 9)
    inner = (iy > 0) & (iy < h - 1) & (ix > 0) & (ix < w - 1) & (values > 0).all(dim=1)
    v = values.float().clamp(min=1e-30).log()
    gx, gy = (v[:, 5] - v[:, 3]) / 2, (v[:, 7] - v[:, 1]) / 2
    hxx, hyy = v[:, 5] - 2 * v[:, 4] + v[:, 3], v[:, 7] - 2 * v[:, 4] + v[:, 1]
    hxy = (v[:, 8] - v[:, 6] - v[:, 2] + v[:, 0]) / 4
    det = hxx * hyy - hxy * hxy
    safe = torch.where(det > 0, det, torch.ones_like(det))
    step_x, step_y = -(hyy * gx - hxy * gy) / safe, -(hxx * gy - hxy * gx) / safe
    curved = (hxx < -MIN_LOG_CURVATURE) & (hyy < -MIN_LOG_CURVATURE) & (det > 0)
    ok = inner & curved & (step_x.abs() <= 1) & (step_y.abs() <= 1)
    return step_x, step_y, ok


def heatmap_to_canvas(keypoints: torch.Tensor, heatmap_size: tuple[int, int],
                      canvas_size: tuple[int, int]) -> torch.Tensor:
    """Scale [x, y, c] from a ``(h, w)`` heatmap grid to a ``(H, W)`` canvas (pixel centres aligned)."""
    (hh, hw), (ch, cw) = heatmap_size, canvas_size
    out = keypoints.clone()
    out[..., 0] = (keypoints[..., 0] + 0.5) * (cw / hw) - 0.5
    out[..., 1] = (keypoints[..., 1] + 0.5) * (ch / hh) - 0.5
    return out


def canvas_to_heatmap(keypoints: torch.Tensor, canvas_size: tuple[int, int],
                      heatmap_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`heatmap_to_canvas`."""
    return heatmap_to_canvas(keypoints, canvas_size, heatmap_size)
