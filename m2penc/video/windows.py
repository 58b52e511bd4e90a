"""Context windows inside one latent sequence, and the averaged noise prediction over them.

Champ's motion module has a temporal position encoding of 32 frames and was trained on 24-frame
clips, so a 79-frame segment is denoised in overlapping 24-frame windows whose noise predictions
are averaged per frame (Champ ``context.uniform``: size 24, overlap 4, stride 1).

Champ's default ``closed_loop=True`` wraps the last window around to the first frames. That is
right for a looping clip but wrong for a segment of a longer dance: it would make the segment's
end continue into its own start (and, with conditioning, into the previous segment's frames).
So the default here is ``closed_loop=False``: the last window is shifted back to end exactly on
the last frame (UniAnimate's ``DiffusionDDIMLong`` does the same). ``closed_loop=True`` gives
Champ's windows exactly.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..errors import InputError
from ..progress import RunControl

#: Champ's ``context_frames`` and ``context_overlap`` (pipeline_aggregation.py defaults).
CONTEXT_SIZE = 24
CONTEXT_OVERLAP = 4

#: ``(latents (B,4,f,h,w), timestep (0-d long tensor), guidance (B,C,f,h,w) or None) -> noise_pred (B,4,f,h,w)``
NoisePredictor = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def context_windows(
    num_frames: int, size: int = CONTEXT_SIZE, overlap: int = CONTEXT_OVERLAP, closed_loop: bool = False
) -> list[list[int]]:
    """Frame indices of each window over ``num_frames`` frames.

    Windows start at ``0, size - overlap, 2 (size - overlap), ...``. With ``closed_loop`` the
    indices wrap modulo ``num_frames`` (Champ); without, the last window is ``[F - size, F)``.
    A sequence no longer than ``size`` is a single window.
    """
    if size < 1 or not 0 <= overlap < size:
        raise InputError(f"context size must be >= 1 and 0 <= overlap < size, got size={size}, overlap={overlap}")
    if num_frames <= size:
        return [list(range(num_frames))]
    step = size - overlap
    if closed_loop:
        return [[(s + i) % num_frames for i in range(size)] for s in range(0, num_frames, step)]
    starts = list(range(0, num_frames - size, step)) + [num_frames - size]
    return [list(range(s, s + size)) for s in starts]


def windowed_prediction(
    predict: NoisePredictor,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    guidance: Optional[torch.Tensor],
    windows: list[list[int]],
    control: RunControl,
) -> torch.Tensor:
    """Noise prediction for every frame of ``latents``, averaged over the windows that contain it.

    Args:
        latents: ``(B, 4, F, h, w)`` current noisy latents.
        guidance: ``(B, C, F, h, w)`` guidance aligned with ``latents`` frames, or ``None``.
        windows: frame-index lists from :func:`context_windows`; together they cover every frame.
    Returns:
        ``(B, 4, F, h, w)`` averaged noise prediction.
    """
    total = torch.zeros_like(latents)
    count = torch.zeros(latents.shape[2], device=latents.device, dtype=latents.dtype)
    for window in windows:
        control.check_cancel()
        idx = torch.tensor(window, device=latents.device, dtype=torch.long)
        window_guidance = None if guidance is None else guidance.index_select(2, idx)
        pred = predict(latents.index_select(2, idx), timestep, window_guidance)
        total.index_add_(2, idx, pred.to(total.dtype))
        count.index_add_(0, idx, torch.ones_like(idx, dtype=count.dtype))
    assert bool((count > 0).all()), "context windows must cover every frame"
    return total / count.view(1, 1, -1, 1, 1)
