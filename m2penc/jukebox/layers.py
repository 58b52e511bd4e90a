"""Transformer building blocks whose parameter names match Jukebox's checkpoints.

Jukebox stores its projection matrices as ``w`` (in, out) + ``b`` (out) -- GPT-2 style
"Conv1D" -- in fp16, and its LayerNorm/embeddings in fp32. :class:`Conv1D` keeps the stored
dtype and casts the weight to the activation dtype per call (as Jukebox does), so a 5B prior in
fp16 storage can run in fp32 on a CPU without doubling its memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Conv1D(nn.Module):
    """``y = x @ w + b`` with ``w`` of shape (n_in, n_out); x (..., n_in) -> (..., n_out)."""

    def __init__(self, n_in: int, n_out: int, weight_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.w = nn.Parameter(torch.empty(n_in, n_out, dtype=weight_dtype))
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.n_in)  # (B*T, n_in)
        out = torch.addmm(self.b.type_as(x), flat, self.w.type_as(x))
        return out.view(*x.shape[:-1], self.n_out)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back to the input dtype (Jukebox's fp16 recipe)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        return out.type_as(x)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """Jukebox's activation: ``x * sigmoid(1.702 x)``."""
    return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    """Position-wise feed-forward: (B, T, width) -> (B, T, width)."""

    def __init__(self, width: int, hidden: int, weight_dtype: torch.dtype) -> None:
        super().__init__()
        self.c_fc = Conv1D(width, hidden, weight_dtype)
        self.c_proj = Conv1D(hidden, width, weight_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(quick_gelu(self.c_fc(x)))
