"""Audio -> top-level VQ-VAE tokens in bounded memory.

The top encoder runs at up to 22 kHz with 64 channels, so a whole song at once would need
gigabytes. Audio is encoded in chunks of ``chunk_tokens`` tokens, each padded on both sides
with real audio of at least the encoder's receptive field (:func:`.vqvae.top_encoder_receptive_field`)
and aligned to the hop, so the tokens are the same as encoding the whole clip at once.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..progress import NO_CONTROL, RunControl
from .vqvae import VQVAE, top_encoder_receptive_field

#: Tokens per encoder chunk (2**14 tokens = 47.6 s; about 1 GB of fp32 activations for ``5b``).
DEFAULT_CHUNK_TOKENS = 2**14


def chunk_margin_samples(vqvae: VQVAE) -> int:
    """Context kept on each side of a chunk, a whole number of hops."""
    hop = vqvae.config.hop_length
    return math.ceil(top_encoder_receptive_field(vqvae.config) / hop) * hop


@torch.no_grad()
def encode_tokens(vqvae: VQVAE, audio: np.ndarray, device: torch.device,
                  chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                  control: Optional[RunControl] = None) -> torch.Tensor:
    """Mono audio (S,) float32 in [-1, 1] -> tokens (S // hop,) int64 on ``device``."""
    control = control or NO_CONTROL
    hop = vqvae.config.hop_length
    n_tokens = len(audio) // hop
    margin = chunk_margin_samples(vqvae)
    starts = range(0, n_tokens, chunk_tokens)
    pieces = []
    for index, t0 in enumerate(starts):
        t1 = min(t0 + chunk_tokens, n_tokens)
        a0, a1 = max(0, t0 * hop - margin), min(len(audio), t1 * hop + margin)
        chunk = torch.from_numpy(np.ascontiguousarray(audio[a0:a1])).to(device)[None]  # (1, samples)
        tokens = vqvae.encode_top(chunk)[0]  # (samples // hop,)
        first = t0 - a0 // hop
        pieces.append(tokens[first: first + (t1 - t0)])
        control.tick("jukebox: encode audio", index + 1, len(starts))
    if not pieces:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat(pieces)
