"""Champ's context windows for clips longer than one motion-module pass.

Champ's ``uniform`` context scheduler, called with step 0 and stride 1 (its defaults: 24 frames,
overlap 4, closed loop): windows start at ``0, size - overlap, 2 (size - overlap), ...`` while
the start is ``< F`` (``< F - overlap`` when ``closed_loop`` is False), each exactly ``size``
frames long with indices taken modulo ``F`` - so the last window wraps round to frame 0. The same
windows are used at every denoising step; overlapping predictions are averaged uniformly.
"""
from __future__ import annotations

from ..errors import InputError


def context_windows(num_frames: int, size: int = 24, overlap: int = 4, closed_loop: bool = True) -> list[list[int]]:
    """Frame-index windows covering ``range(num_frames)``; one window of all frames if it fits."""
    if num_frames < 1 or size < 1:
        raise InputError(f"num_frames and size must be positive, got {num_frames} and {size}")
    if not 0 <= overlap < size:
        raise InputError(f"overlap must be in [0, size) = [0, {size}), got {overlap}")
    if num_frames <= size:
        return [list(range(num_frames))]
    stop = num_frames if closed_loop else num_frames - overlap
    return [[(start + j) % num_frames for j in range(size)] for start in range(0, stop, size - overlap)]
