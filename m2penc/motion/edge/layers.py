"""The building blocks of EDGE's ``DanceDecoder`` (EDGE ``model/model.py``), state-dict compatible.

Every block is pre-norm (LayerNorm eps 1e-5), uses exact GELU in its feed-forward and
``nn.MultiheadAttention`` (batch first, in-projection rows ``[q; k; v]``) with the shared
:class:`~.rotary.RotaryEmbedding` applied to the attention inputs that become queries and keys,
never to values (REPORT.md §5). Attribute names and their order are EDGE's, so ``state_dict``
keys match the released checkpoint key for key and in the same order.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .rotary import RotaryEmbedding

LAYER_NORM_EPS = 1e-5


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """EDGE's ``SinusoidalPosEmb``: ``t`` ``(B,)`` steps -> ``(B, dim)`` float32 ``[sin(t f), cos(t f)]``.

    ``f_j = exp(-j ln(10000) / (dim/2 - 1))``; computed in float32 whatever the model dtype (t
    reaches 999, so fp16 angles would be off by up to 0.5 rad).
    """
    half = dim // 2
    scale = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=t.device) * -scale)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class SinusoidalPosEmb(nn.Module):
    """Parameter-free ``time_mlp.0`` (kept as a module so ``time_mlp.1`` keeps its EDGE index)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``(B,)`` -> ``(B, dim)`` float32."""
        return sinusoidal_embedding(t, self.dim)


class DenseFiLM(nn.Module):
    """FiLM generator: ``t_vec`` ``(B, D)`` -> ``(scale, shift)``, each ``(B, 1, D)`` (scale first)."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(nn.Mish(), nn.Linear(dim, dim * 2))

    def forward(self, t_vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = self.block(t_vec)[:, None, :].chunk(2, dim=-1)
        return scale, shift


def featurewise_affine(x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``(1 + scale) * x + shift`` with ``(B, 1, D)`` scale/shift broadcast over time."""
    scale, shift = scale_shift
    return (scale + 1) * x + shift


def _attention(dim: int, heads: int, dropout: float) -> nn.MultiheadAttention:
    return nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)


class EncoderLayer(nn.Module):
    """Music encoder layer: ``c += SA(LN1 c)``; ``c += W2 GELU(W1 LN2 c)`` on ``(B, L, D)``."""

    def __init__(self, dim: int, heads: int, ff_size: int, dropout: float, rotary: RotaryEmbedding):
        super().__init__()
        self.self_attn = _attention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, ff_size)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ff_size, dim)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.rotary = rotary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, L, D)``."""
        h = self.norm1(x)
        qk = self.rotary(h)
        x = x + self.dropout1(self.self_attn(qk, qk, h, need_weights=False)[0])
        h = self.norm2(x)
        return x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(h)))))


class FiLMDecoderLayer(nn.Module):
    """Motion decoder layer: self-attention, cross-attention to the memory, feed-forward, each FiLM-ed.

    ``x += (1 + s1) SA(LN1 x) + b1``; ``x += (1 + s2) CA(LN2 x, mem) + b2``;
    ``x += (1 + s3) FF(LN3 x) + b3`` with ``(s_k, b_k) = film_k(t_vec)``.
    """

    def __init__(self, dim: int, heads: int, ff_size: int, dropout: float, rotary: RotaryEmbedding):
        super().__init__()
        self.self_attn = _attention(dim, heads, dropout)
        self.multihead_attn = _attention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, ff_size)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ff_size, dim)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.film1 = DenseFiLM(dim)
        self.film2 = DenseFiLM(dim)
        self.film3 = DenseFiLM(dim)
        self.rotary = rotary

    def forward(self, x: torch.Tensor, memory: torch.Tensor, t_vec: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, L, D)``, ``memory`` ``(B, M, D)``, ``t_vec`` ``(B, D)`` -> ``(B, L, D)``."""
        h = self.norm1(x)
        qk = self.rotary(h)
        sa = self.dropout1(self.self_attn(qk, qk, h, need_weights=False)[0])
        x = x + featurewise_affine(sa, self.film1(t_vec))
        h = self.norm2(x)
        ca = self.multihead_attn(self.rotary(h), self.rotary(memory), memory, need_weights=False)[0]
        x = x + featurewise_affine(self.dropout2(ca), self.film2(t_vec))
        h = self.norm3(x)
        ff = self.dropout3(self.linear2(self.dropout(F.gelu(self.linear1(h)))))
        return x + featurewise_affine(ff, self.film3(t_vec))


class DecoderLayerStack(nn.Module):
    """``seqTransDecoder``: the FiLM decoder layers in order (keys ``stack.i.*``)."""

    def __init__(self, stack: nn.ModuleList):
        super().__init__()
        self.stack = stack

    def forward(self, x: torch.Tensor, memory: torch.Tensor, t_vec: torch.Tensor) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, L, D)``."""
        for layer in self.stack:
            x = layer(x, memory, t_vec)
        return x
