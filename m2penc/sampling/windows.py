"""The one windowing module: window starts, cross-fade weights, context windows, averaged prediction.

Every long sequence in the pack is processed in overlapping fixed-size windows: Jukebox's prior
over long music (8192 tokens), M2PEnc over a song (its training length, 75 frames), Champ's U-Net
over a segment (24-frame context windows of its motion module). They share three ideas, each
written once here:

* :func:`window_starts` -- starts ``0, hop, 2 hop, ...`` below ``total - size``, plus a last
  window shifted back to end exactly on the last item (so no window runs past the end);
* :func:`crossfade_weights` / :func:`blend_weights` -- in an ``n``-item overlap the later window
  weighs ``(1..n) / (n + 1)`` and the earlier one the rest, strictly inside (0, 1);
* :func:`context_windows` + :func:`windowed_prediction` -- the diffusion sampler's windows, with
  ``closed_loop`` explicit: Champ's own scheduler wraps the last window round to frame 0 (right
  for a looping clip); an open loop uses :func:`window_starts` (right for a segment of a dance,
  which must not continue into its own start). Overlapping predictions are averaged per frame.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from ..errors import InputError
from ..progress import RunControl

#: Champ's ``context_frames`` and ``context_overlap`` (pipeline_aggregation.py defaults).
CONTEXT_SIZE = 24
CONTEXT_OVERLAP = 4

#: ``(latents (B,4,f,h,w), timestep (0-d long tensor), guidance (B,C,f,h,w) or None) -> prediction (B,4,f,h,w)``
NoisePredictor = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def window_starts(total: int, size: int, hop: int) -> list[int]:
    """Starts of ``size``-long windows every ``hop`` items over ``total``; the last ends at ``total``.

    ``[0]`` when everything fits one window (``total <= size``).
    """
    if size < 1 or hop < 1:
        raise InputError(f"window size and hop must be >= 1, got size={size}, hop={hop}")
    if total <= size:
        return [0]
    return list(range(0, total - size, hop)) + [total - size]


def crossfade_weights(n: int) -> torch.Tensor:
    """Weights ``(n,)`` float32 of the *later* window across an ``n``-item overlap: ``(1..n) / (n + 1)``."""
    return torch.arange(1, n + 1, dtype=torch.float32) / (n + 1)


def blend_weights(starts: Sequence[int], index: int, size: int) -> torch.Tensor:
    """Weight ``(size,)`` of window ``index`` (of ``size``-long windows at ``starts``) in a cross-fade.

    1 where the window is alone; where it overlaps its predecessor it ramps up with
    :func:`crossfade_weights`, where it overlaps its successor it ramps down symmetrically, so
    in every overlap the two weights sum to 1.
    """
    weight = torch.ones(size)
    if index > 0:
        ramp = starts[index - 1] + size - starts[index]
        if ramp > 0:
            weight[:ramp] = crossfade_weights(ramp)
    if index + 1 < len(starts):
        ramp = starts[index] + size - starts[index + 1]
        if ramp > 0:
            weight[size - ramp:] = torch.minimum(weight[size - ramp:], crossfade_weights(ramp).flip(0))
    return weight


def context_windows(num_frames: int, size: int = CONTEXT_SIZE, overlap: int = CONTEXT_OVERLAP, *,
                    closed_loop: bool) -> list[list[int]]:
    """Frame indices of each context window over ``num_frames`` frames.

    Windows start at ``0, size - overlap, 2 (size - overlap), ...``. With ``closed_loop`` (Champ's
    ``uniform`` scheduler) they continue while the start is ``< F`` and indices wrap modulo ``F``;
    without, the starts are :func:`window_starts` (the last window is ``[F - size, F)``). A
    sequence no longer than ``size`` is a single window.
    """
    if num_frames < 1 or size < 1 or not 0 <= overlap < size:
        raise InputError(f"need num_frames >= 1, size >= 1 and 0 <= overlap < size, "
                         f"got num_frames={num_frames}, size={size}, overlap={overlap}")
    if num_frames <= size:
        return [list(range(num_frames))]
    hop = size - overlap
    if closed_loop:
        return [[(s + i) % num_frames for i in range(size)] for s in range(0, num_frames, hop)]
    return [list(range(s, s + size)) for s in window_starts(num_frames, size, hop)]


def windowed_prediction(
    predict: NoisePredictor,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    guidance: Optional[torch.Tensor],
    windows: list[list[int]],
    control: RunControl,
) -> torch.Tensor:
    """Prediction for every frame of ``latents``, averaged over the windows that contain it.

    Args:
        latents: ``(B, 4, F, h, w)`` current noisy latents.
        guidance: ``(B, C, F, h, w)`` guidance aligned with ``latents`` frames, or ``None``.
        windows: frame-index lists from :func:`context_windows`; together they cover every frame.
    Returns:
        ``(B, 4, F, h, w)`` averaged prediction, in ``latents``' dtype and device.
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
    return total / count.view(1, 1, -1, 1, 1)
