"""Jukebox's factored (sparse) causal self-attention, full-sequence form only.

The 5B prior factors a context of ``n_ctx`` tokens into ``blocks`` rows of ``block_ctx``
tokens and cycles three attention patterns over its layers (``attn_order=2``):

* ``ROW`` (1): causal attention inside the token's own row;
* ``COLUMN`` (2): causal attention to the same column of every earlier row;
* ``PREV_ROW`` (3): unmasked attention to the whole previous row (zeros for row 0).

Every pattern is causal, so a sequence shorter than ``n_ctx`` is zero-padded to a whole
number of rows, run, and cropped; outputs for real tokens do not depend on the padding. This
is exactly what Jukebox's ``sample=True`` path (used by jukemirlib, cache cleared per layer)
computes. Incremental sampling caches are not implemented: feature extraction never needs them.
"""
from __future__ import annotations

import math
from enum import IntEnum

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Conv1D

#: Additive mask value Jukebox uses (``w * mask + -1e9 * (1 - mask)``).
_MASK_VALUE = -1e9


class AttnFunc(IntEnum):
    """Jukebox's ``attn_func`` codes for the patterns used by the 5B prior."""

    DENSE = 0
    ROW = 1
    COLUMN = 2
    PREV_ROW = 3


def attn_func_for_layer(attn_order: int, layer_index: int) -> AttnFunc:
    """Pattern of 0-based layer ``layer_index`` under Jukebox's ``attn_order``."""
    cycles = {0: (AttnFunc.DENSE,), 1: (AttnFunc.ROW, AttnFunc.COLUMN),
              2: (AttnFunc.ROW, AttnFunc.COLUMN, AttnFunc.PREV_ROW)}
    if attn_order not in cycles:
        raise ValueError(f"attn_order {attn_order} is not used by the Jukebox top-level priors (0, 1, 2)")
    cycle = cycles[attn_order]
    return cycle[layer_index % len(cycle)]


class FactoredAttention(nn.Module):
    """Causal multi-head attention over (B, T, width) with ``T <= n_ctx``; returns (B, T, width)."""

    def __init__(self, width: int, n_state: int, n_head: int, attn_func: AttnFunc,
                 block_ctx: int, weight_dtype: torch.dtype) -> None:
        super().__init__()
        self.n_state, self.n_head = n_state, n_head
        self.attn_func = AttnFunc(attn_func)
        self.block_ctx = block_ctx
        self.c_attn = Conv1D(width, 3 * n_state, weight_dtype)
        self.c_proj = Conv1D(n_state, width, weight_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        query, key, value = self.c_attn(x).chunk(3, dim=2)  # 3 x (B, T, n_state)
        if self.attn_func != AttnFunc.DENSE:
            pad = (-length) % self.block_ctx
            query, key, value = (F.pad(t, (0, 0, 0, pad)) for t in (query, key, value))
        attend = {AttnFunc.DENSE: self._dense_causal, AttnFunc.ROW: self._row,
                  AttnFunc.COLUMN: self._column, AttnFunc.PREV_ROW: self._prev_row}[self.attn_func]
        out = attend(query, key, value)[:, :length]  # (B, T, n_state)
        return self.c_proj(out)

    # --- patterns: each maps (B, L, n_state) x3 -> (B, L, n_state), L a multiple of block_ctx ---
    def _dense_causal(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self._heads_attention(q, k, v, causal=True)

    def _row(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        bs, length, d = q.shape
        rows = [t.reshape(bs * length // self.block_ctx, self.block_ctx, d) for t in (q, k, v)]
        return self._heads_attention(*rows, causal=True).reshape(bs, length, d)

    def _column(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        bs, length, d = q.shape
        n_rows = length // self.block_ctx

        def to_columns(t: torch.Tensor) -> torch.Tensor:  # (B, L, d) -> (B*block_ctx, rows, d)
            t = t.reshape(bs, n_rows, self.block_ctx, d).transpose(1, 2)
            return t.reshape(bs * self.block_ctx, n_rows, d)

        out = self._heads_attention(to_columns(q), to_columns(k), to_columns(v), causal=True)
        out = out.reshape(bs, self.block_ctx, n_rows, d).transpose(1, 2)  # (B, rows, block_ctx, d)
        return out.reshape(bs, length, d)

    def _prev_row(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        bs, length, d = q.shape
        n_rows = length // self.block_ctx

        def previous_rows(t: torch.Tensor) -> torch.Tensor:  # row r sees row r-1; row 0 sees zeros
            t = t.reshape(bs, n_rows, self.block_ctx, d)[:, :-1]
            t = F.pad(t, (0, 0, 0, 0, 1, 0))  # (B, rows, block_ctx, d)
            return t.reshape(bs * n_rows, self.block_ctx, d)

        q_rows = q.reshape(bs * n_rows, self.block_ctx, d)
        out = self._heads_attention(q_rows, previous_rows(k), previous_rows(v), causal=False)
        return out.reshape(bs, length, d)

    def _heads_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        """Scaled dot-product attention: (N, Lq, d) x (N, Lk, d) -> (N, Lq, d)."""
        n, q_len, d = q.shape
        k_len = k.shape[1]
        head_dim = d // self.n_head
        qh = q.reshape(n, q_len, self.n_head, head_dim).permute(0, 2, 1, 3)  # (N, H, Lq, hd)
        kh = k.reshape(n, k_len, self.n_head, head_dim).permute(0, 2, 3, 1)  # (N, H, hd, Lk)
        vh = v.reshape(n, k_len, self.n_head, head_dim).permute(0, 2, 1, 3)  # (N, H, Lk, hd)
        scale = 1.0 / math.sqrt(math.sqrt(head_dim))  # Jukebox's factorised scale, applied squared
        scores = torch.matmul(qh, kh) * (scale * scale)
        weights_dtype = scores.dtype
        scores = scores.float()
        if causal and q_len > 1:
            keep = torch.ones(q_len, k_len, device=q.device, dtype=torch.bool).tril(max(k_len - q_len, 0))
            scores = scores.masked_fill(~keep, _MASK_VALUE)
        probs = torch.softmax(scores, dim=-1).to(weights_dtype)
        out = torch.matmul(probs, vh)  # (N, H, Lq, hd)
        return out.permute(0, 2, 1, 3).reshape(n, q_len, d)
