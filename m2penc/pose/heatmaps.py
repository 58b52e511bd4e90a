"""Keypoints <-> Gaussian heatmaps, the M2PEnc heatmap head's training targets and its readout.

Coordinates are in heatmap pixels with pixel ``i`` centred at ``i`` (so a G-wide map spans
``[-0.5, G - 0.5]``). :func:`heatmap_to_canvas` / :func:`canvas_to_heatmap` convert to and from
the pixels of a W x H video frame with the same centre-aligned convention.

Readout is a *local* soft-argmax: the integer argmax is refined to the heatmap-weighted mean
of the positive values in a small window around it. A global soft-argmax is biased towards
the map centre by the background; a hard argmax quantises to whole pixels. The confidence
is the peak pixel value clipped to [0, 1] (targets peak at the keypoint's confidence; a centre
between pixels reads up to ``1 - exp(-0.5 / (2 sigma^2))``, ~6 % at sigma 2, low).
"""
from __future__ import annotations

import torch

from ..errors import InputError

#: Gaussian sigma of target heatmaps, in heatmap pixels (2 px on a 64 grid ~ 16-20 px on the frame).
DEFAULT_SIGMA = 2.0
#: Half-size of the soft-argmax window around the peak, in heatmap pixels.
DEFAULT_WINDOW = 2


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
    """``(..., K, H, W)`` heatmaps -> ``(..., K, 3)`` [x, y, confidence] in heatmap pixels."""
    if heatmaps.ndim < 3:
        raise InputError(f"heatmaps must be (..., K, H, W), got shape {tuple(heatmaps.shape)}")
    *lead, h, w = heatmaps.shape
    maps = heatmaps.detach().reshape(-1, h, w).float()
    peak, flat = maps.reshape(maps.shape[0], -1).max(dim=1)
    iy, ix = flat // w, flat % w
    dy, dx = _window_offsets(window, maps.device)
    yy, xx = iy[:, None] + dy, ix[:, None] + dx                       # (M, (2r+1)^2)
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    rows = torch.arange(maps.shape[0], device=maps.device)[:, None]
    values = maps[rows, yy.clamp(0, h - 1), xx.clamp(0, w - 1)].clamp(min=0) * inside
    total = values.sum(dim=1)
    safe = total.clamp(min=1e-12)
    x = torch.where(total > 0, (values * xx).sum(1) / safe, ix.float())
    y = torch.where(total > 0, (values * yy).sum(1) / safe, iy.float())
    out = torch.stack([x, y, peak.clamp(0, 1)], dim=-1)
    return out.reshape(*lead, 3)


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
