"""Rotary position embedding as EDGE uses it (``rotary_embedding_torch``, ``freqs_for='lang'``).

EDGE rotates the D-dim attention *inputs* (before the in-projection), not per-head queries and
keys, and rotates interleaved pairs ``(2i, 2i+1)``: ``(a, b) -> (a cos - b sin, b cos + a sin)``
with angle ``n * 10000^(-2i/D)`` at position n (REPORT.md §5). One module is shared by every
attention layer, so its ``freqs`` buffer appears under 11 state-dict names, as in EDGE's
checkpoint.

Precision: ``freqs`` stays float32 when the model is cast to fp16/bf16 (a bf16 copy would move
the angle at position 150 by up to ~0.5 rad), and the rotation is computed in float32.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn


def inverse_frequencies(dim: int, theta: float = 10000.0) -> torch.Tensor:
    """``(dim // 2,)`` float32 ``theta^(-2i/dim)``, computed exactly as rotary_embedding_torch."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(..., D)`` with interleaved pairs ``(a, b) -> (-b, a)``."""
    pairs = x.unflatten(-1, (-1, 2))
    a, b = pairs.unbind(-1)
    return torch.stack((-b, a), dim=-1).flatten(-2)


class RotaryEmbedding(nn.Module):
    """Interleaved RoPE over the sequence axis (-2) of ``(..., L, D)`` tensors."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        self.dim = dim
        self.register_buffer("freqs", inverse_frequencies(dim, theta))

    def angles(self, length: int, device: torch.device) -> torch.Tensor:
        """``(length, D)`` float32 angles ``n * freqs_i``, each repeated for its pair."""
        positions = torch.arange(length, device=device, dtype=torch.float32)
        angles = positions[:, None] * self.freqs.to(device=device, dtype=torch.float32)[None, :]
        return angles.repeat_interleave(2, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., L, D)`` rotated at positions ``0..L-1``; same shape and dtype."""
        angles = self.angles(x.shape[-2], x.device)
        xf = x.float()
        return (xf * angles.cos() + rotate_half(xf) * angles.sin()).to(x.dtype)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> "RotaryEmbedding":
        """Follow device moves but never drop ``freqs`` below float32 (``.half()``, ``.to(bf16)``)."""
        before = self.freqs
        super()._apply(fn, *args, **kwargs)
        if self.freqs.dtype in (torch.float16, torch.bfloat16):
            self.freqs = before.to(device=self.freqs.device, dtype=torch.float32)
        return self
