"""Frame batches in the shapes encoders want: ``uint8 (F, H, W, 3)`` numpy, even-sized for 4:2:0.

ComfyUI hands frames over as IMAGE, a float tensor ``(F, H, W, 3)`` in [0, 1]; other callers may
already have ``uint8``. Float frames are clamped to [0, 1] and rounded (not truncated) to 0..255.

yuv420p stores chroma at half resolution, so H.264/VP9 need even width and height. Odd sizes are
**padded** by one pixel on the right and/or bottom, replicating the edge pixels: no picture is
lost, and a replicated edge compresses to nothing. (Cropping would silently cut the frame.)
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

from ..errors import InputError

FrameBatch = Union[torch.Tensor, np.ndarray]


def to_uint8_frames(frames: FrameBatch) -> np.ndarray:
    """``(F, H, W, 3)`` float in [0, 1] or uint8 (torch or numpy) -> contiguous ``uint8`` numpy."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(
            f"frames must be (F, H, W, 3) RGB, got shape {tuple(frames.shape)}; "
            "pass a ComfyUI IMAGE batch (drop any alpha channel first)"
        )
    if isinstance(frames, torch.Tensor):
        frames = _tensor_to_uint8(frames)
    elif frames.dtype != np.uint8:
        frames = _tensor_to_uint8(torch.from_numpy(np.asarray(frames)))
    return np.ascontiguousarray(frames)


def _tensor_to_uint8(frames: torch.Tensor) -> np.ndarray:
    if frames.dtype == torch.uint8:
        return frames.detach().cpu().numpy()
    if not frames.is_floating_point():
        raise InputError(f"frames must be float in [0, 1] or uint8, got dtype {frames.dtype}")
    scaled = frames.detach().to(device="cpu", dtype=torch.float32).clamp(0.0, 1.0).mul(255.0).round()
    return scaled.to(torch.uint8).numpy()


def even_size(height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` rounded up to even numbers."""
    return height + height % 2, width + width % 2


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Pad ``(F, H, W, 3)`` by replicating the last row/column where H or W is odd."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
