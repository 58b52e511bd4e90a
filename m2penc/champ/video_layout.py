"""Folding frames into the batch and back: how every 2-D op of Champ is applied per frame."""
from __future__ import annotations

import torch


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, H, W)`` -> ``(B F, C, H, W)`` (frame index fastest)."""
    b, c, f, h, w = x.shape
    return x.transpose(1, 2).reshape(b * f, c, h, w)


def batch_to_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B F, C, H, W)`` -> ``(B, C, F, H, W)``; inverse of :func:`frames_to_batch`."""
    bf, c, h, w = x.shape
    return x.reshape(batch, bf // batch, c, h, w).transpose(1, 2)
