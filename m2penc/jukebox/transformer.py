"""The prior's residual attention blocks and the layer stack (``prior.transformer``).

The stack may be built with fewer layers than the checkpoint has: extracting layer ``L`` only
needs blocks ``0..L-1`` (``_attn_mods`` keeps Jukebox's name so checkpoint keys load as-is).
"""
from __future__ import annotations

import torch
from torch import nn

from typing import Callable, Optional

from .attention import FactoredAttention, attn_func_for_layer
from .config import JukeboxConfig
from .layers import MLP, LayerNorm


class ResAttnBlock(nn.Module):
    """Pre-LN block: ``h = x + attn(ln_0(x)) + mlp(ln_1(x + attn))``; (B, T, W) -> (B, T, W)."""

    def __init__(self, config: JukeboxConfig, layer_index: int) -> None:
        super().__init__()
        weight_dtype = getattr(torch, config.matrix_dtype)
        width = config.prior_width
        self.attn = FactoredAttention(
            width, config.attn_width, config.heads,
            attn_func_for_layer(config.attn_order, layer_index), config.block_ctx, weight_dtype,
        )
        self.ln_0 = LayerNorm(width)
        self.mlp = MLP(width, config.mlp_width, weight_dtype)
        self.ln_1 = LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn(self.ln_0(x))
        m = self.mlp(self.ln_1(x + a))
        return x + a + m


class Transformer(nn.Module):
    """``n_layers`` blocks (the first ``n_layers`` of the prior's ``prior_depth``)."""

    def __init__(self, config: JukeboxConfig, n_layers: int) -> None:
        super().__init__()
        self._attn_mods = nn.ModuleList(ResAttnBlock(config, d) for d in range(n_layers))

    @property
    def n_layers(self) -> int:
        return len(self._attn_mods)

    def forward_to(self, x: torch.Tensor, layer: int,
                   on_layer: Optional[Callable[[int], None]] = None) -> torch.Tensor:
        """Output of 1-based ``layer`` for input embeddings x (B, T, W); runs blocks 1..layer only.

        ``on_layer(i)`` is called after block ``i`` (1-based): progress and cancellation hook.
        """
        if not 1 <= layer <= self.n_layers:
            raise ValueError(f"layer {layer} outside the {self.n_layers} layers that were built")
        for index, block in enumerate(self._attn_mods[:layer], start=1):
            x = block(x)
            if on_layer is not None:
                on_layer(index)
        return x
