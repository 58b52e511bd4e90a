"""The 5B top-level prior, truncated to the layers feature extraction needs.

State-dict layout (= ``prior_level_2.pth.tar``): ``y_emb.*`` (label conditioning),
``prior.x_emb.weight``, ``prior.pos_emb.pos_emb``, ``prior.transformer._attn_mods.{i}.*`` and
``prior.x_out.weight``. Built with ``n_layers=L, with_head=False`` it holds only what layer ``L``
needs: for L=36 that is about half of the 5 B parameters.

The input of layer 1 is jukemirlib's: token embeddings shifted right by one with the start
token in front, plus the learned position embedding, plus the label time signal.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from .conditioning import LabelConditioner
from .config import (CONDITIONING_TOTAL_SECONDS, SAMPLE_RATE, UNKNOWN_ARTIST_ID, UNKNOWN_GENRE_ID,
                     JukeboxConfig)
from .transformer import Transformer


class PositionEmbedding(nn.Module):
    """Learned absolute position embedding, parameter ``pos_emb`` (n_ctx, width)."""

    def __init__(self, n_ctx: int, width: int) -> None:
        super().__init__()
        self.pos_emb = nn.Parameter(torch.empty(n_ctx, width))


class AutoregressivePrior(nn.Module):
    """``prior.*``: token embedding, position embedding, transformer, optional logits head."""

    def __init__(self, config: JukeboxConfig, n_layers: int, with_head: bool) -> None:
        super().__init__()
        self.x_emb = nn.Embedding(config.l_bins, config.prior_width)
        self.pos_emb = PositionEmbedding(config.n_ctx, config.prior_width)
        self.transformer = Transformer(config, n_layers)
        if with_head:
            self.x_out = nn.Linear(config.prior_width, config.l_bins, bias=False)


class TopLevelPrior(nn.Module):
    """Top-level prior holding transformer layers ``1..n_layers`` (all by default)."""

    def __init__(self, config: JukeboxConfig, n_layers: Optional[int] = None, with_head: bool = True) -> None:
        super().__init__()
        self.config = config
        n_layers = config.prior_depth if n_layers is None else config.check_layer(n_layers)
        self.y_emb = LabelConditioner(config)
        self.prior = AutoregressivePrior(config, n_layers, with_head)

    @property
    def n_layers(self) -> int:
        return self.prior.transformer.n_layers

    def conditioning(self) -> tuple[torch.Tensor, torch.Tensor]:
        """jukemirlib's label: start token (1, 1, W) and time signal (1, n_ctx, W)."""
        device = self.prior.x_emb.weight.device
        hop = self.config.hop_length
        total = (CONDITIONING_TOTAL_SECONDS * SAMPLE_RATE // hop) * hop
        genre = [UNKNOWN_GENRE_ID] + [-1] * (self.config.max_bow_genre_size - 1)

        def column(value: int) -> torch.Tensor:
            return torch.tensor([[value]], dtype=torch.long, device=device)

        return self.y_emb(column(total), column(0), column(self.config.n_ctx * hop),
                          column(UNKNOWN_ARTIST_ID), torch.tensor([genre], dtype=torch.long, device=device))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Layer-1 input for tokens (B, T) int64, T <= n_ctx -> (B, T, W) float32."""
        batch, length = tokens.shape
        if length > self.config.n_ctx:
            raise ValueError(f"{length} tokens exceed the prior's context of {self.config.n_ctx}")
        start_token, time_signal = self.conditioning()
        x = self.prior.x_emb(tokens)  # (B, T, W)
        x = torch.cat([start_token.expand(batch, 1, -1).to(x.dtype), x[:, :-1]], dim=1)  # shift right
        return x + self.prior.pos_emb.pos_emb[:length] + time_signal[:, :length]

    def layer_output(self, tokens: torch.Tensor, layer: int, dtype: torch.dtype = torch.float32,
                     on_layer: Optional[Callable[[int], None]] = None) -> torch.Tensor:
        """Activations of 1-based ``layer`` for tokens (B, T): (B, T, W) in ``dtype``."""
        x = self.embed(tokens).to(dtype)
        return self.prior.transformer.forward_to(x, layer, on_layer)
