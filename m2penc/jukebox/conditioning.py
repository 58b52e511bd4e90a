"""Label conditioning of the top-level prior (``y_emb``): start token and time signal.

jukemirlib conditions every clip on artist "unknown", genre "unknown", a total length of
62 s and offset 0 (:data:`.config.CONDITIONING_TOTAL_SECONDS`). The prior turns that label into
a start token (genre + artist embeddings) and a per-position time signal over its ``n_ctx``
positions (total-length, absolute-position and relative-position range embeddings), which is
added to every token embedding. The binning arithmetic below mirrors Jukebox's
``RangeEmbedding`` in fp32 so the bins -- and hence the features -- are identical.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .config import SAMPLE_RATE, JukeboxConfig


class SimpleEmbedding(nn.Module):
    """Integer label -> vector (parameter ``emb.weight``)."""

    def __init__(self, bins: int, width: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(bins, width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.emb(ids)


class RangeEmbedding(nn.Module):
    """Embeds a value range ``[start, end)`` interpolated over ``n_time`` positions into bins."""

    def __init__(self, n_time: int, bins: int, value_range: tuple[float, float], width: int,
                 clamp: bool = False) -> None:
        super().__init__()
        self.n_time, self.bins, self.clamp = n_time, bins, clamp
        self.pos_min, self.pos_max = value_range
        self.emb = nn.Embedding(bins, width)

    def forward(self, start: torch.Tensor, end: Optional[torch.Tensor] = None) -> torch.Tensor:
        """start, end: (B, 1) float32 -> (B, n_time, width)."""
        if self.n_time == 1:
            position = start
        else:
            if self.clamp:
                end = end.clamp(self.pos_min, self.pos_max)
            steps = torch.arange(0, self.n_time, dtype=torch.float, device=start.device).view(1, self.n_time)
            position = start + (end - start) * (steps / self.n_time)  # (B, n_time)
        normalised = (position - self.pos_min) / (self.pos_max - self.pos_min)
        bins = (self.bins * normalised).floor().long()
        if bool((bins < 0).any()) or bool((bins >= self.bins).any()):
            raise ValueError(f"conditioning value outside [{self.pos_min}, {self.pos_max})")
        return self.emb(bins)


class LabelConditioner(nn.Module):
    """``y_emb``: label -> (start token (B, 1, W), time signal (B, n_ctx, W))."""

    def __init__(self, config: JukeboxConfig) -> None:
        super().__init__()
        genre_bins, artist_bins = config.y_bins
        width, n_time, bins = config.prior_width, config.n_ctx, config.t_bins
        self.bow_genre_emb = SimpleEmbedding(genre_bins, width)
        self.artist_emb = SimpleEmbedding(artist_bins, width)
        sr = SAMPLE_RATE
        self.total_length_emb = RangeEmbedding(1, bins, (config.min_duration * sr, config.max_duration * sr), width)
        self.absolute_pos_emb = RangeEmbedding(n_time, bins, (0.0, config.max_duration * sr), width)
        self.relative_pos_emb = RangeEmbedding(n_time, bins, (0.0, 1.0), width, clamp=True)

    def forward(self, total_length: torch.Tensor, offset: torch.Tensor, length: torch.Tensor,
                artist: torch.Tensor, genre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lengths/offset in samples, (B, 1) int64; artist (B, 1); genre (B, G) with -1 = empty."""
        artist_emb = self.artist_emb(artist)  # (B, 1, W)
        mask = (genre >= 0).float().unsqueeze(2)
        genre_emb = (self.bow_genre_emb(genre.clamp(0)) * mask).sum(dim=1, keepdim=True)
        start_token = genre_emb + artist_emb
        total, start = total_length.float(), offset.float()
        end = (offset + length).float()
        time_signal = (self.total_length_emb(total) + self.absolute_pos_emb(start, end)
                       + self.relative_pos_emb(start / total, end / total))
        return start_token, time_signal
