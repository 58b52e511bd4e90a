"""Architecture of the Jukebox VQ-VAE and 5B top-level prior, as data.

The ``5b`` preset reproduces the hyper-parameters of OpenAI's public ``5b`` checkpoints
(``vqvae.pth.tar``, ``prior_level_2.pth.tar``) exactly, so the modules built from it have the
state-dict keys and shapes listed in ``shared/spec/jukebox/*.keys.json``. The ``tiny`` preset keeps
the same topology (3 VQ-VAE levels with hop 128, row/column/previous-row attention, label
conditioning) at toy widths, so tests and benchmarks run in seconds with random weights.

Feature-extraction constants (layer, rate, conditioning) follow jukemirlib, the reference
implementation EDGE used: https://github.com/rodrigo-castellon/jukemirlib.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import ModelConfig
from ..errors import InputError

#: Jukebox works on mono audio at this rate (Hz).
SAMPLE_RATE: int = 44100
#: EDGE extracts layer 66 (``data/audio_extraction/jukebox_features.py``).
DEFAULT_LAYER: int = 66
#: jukemirlib's own default layer.
JUKEMIRLIB_DEFAULT_LAYER: int = 36
#: jukemirlib conditions on a 62 s "total length" (the 5B prior needs > 60 s).
CONDITIONING_TOTAL_SECONDS: int = 62
#: Artist and genre used for conditioning: "unknown" has id 0 in Jukebox's v2 id tables.
UNKNOWN_ARTIST_ID: int = 0
UNKNOWN_GENRE_ID: int = 0


@dataclass(frozen=True)
class JukeboxConfig(ModelConfig):
    """VQ-VAE + top-level prior hyper-parameters (field names follow Jukebox's ``hparams.py``)."""

    # --- VQ-VAE (hparams ``vqvae``) ---
    levels: int = 3
    downs_t: tuple[int, ...] = (3, 2, 2)
    strides_t: tuple[int, ...] = (2, 2, 2)
    emb_width: int = 64
    l_bins: int = 2048
    vq_width: int = 32
    vq_depth: int = 4
    m_conv: float = 1.0
    dilation_growth_rate: int = 3
    hvqvae_multipliers: tuple[int, ...] = (2, 1, 1)
    # --- top-level prior (hparams ``prior_5b``) ---
    n_ctx: int = 8192
    prior_width: int = 4800
    prior_depth: int = 72
    heads: int = 8
    attn_order: int = 2
    blocks: int = 128
    m_attn: float = 0.25
    m_mlp: float = 1.0
    # --- label conditioning (hparams ``labels``) ---
    y_bins: tuple[int, ...] = (120, 4111)
    t_bins: int = 128
    max_bow_genre_size: int = 5
    min_duration: float = 60.0
    max_duration: float = 600.0
    #: dtype the checkpoint stores the transformer matrices in (``fp16_params=True``).
    matrix_dtype: str = "float16"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "5b": {},
        "tiny": {
            "emb_width": 8,
            "l_bins": 32,
            "vq_width": 4,
            "vq_depth": 1,
            "hvqvae_multipliers": (1, 1, 1),
            "n_ctx": 1024,
            "prior_width": 16,
            "prior_depth": 6,
            "heads": 2,
            "blocks": 16,
            "y_bins": (4, 6),
            "t_bins": 8,
        },
    }

    def __post_init__(self) -> None:
        if not (len(self.downs_t) == len(self.strides_t) == len(self.hvqvae_multipliers) == self.levels):
            raise InputError(
                f"downs_t {self.downs_t}, strides_t {self.strides_t} and hvqvae_multipliers "
                f"{self.hvqvae_multipliers} must each have `levels`={self.levels} entries"
            )
        if self.n_ctx % self.blocks:
            raise InputError(f"n_ctx {self.n_ctx} must be a multiple of blocks {self.blocks}")
        if int(self.m_attn * self.prior_width) % self.heads:
            raise InputError(
                f"attention width {int(self.m_attn * self.prior_width)} must divide into {self.heads} heads"
            )
        if self.matrix_dtype not in ("float16", "float32", "bfloat16"):
            raise InputError(f"matrix_dtype must be float16/float32/bfloat16, got {self.matrix_dtype!r}")

    @property
    def hop_length(self) -> int:
        """Audio samples per top-level token (128 for ``5b``)."""
        return math.prod(s**d for s, d in zip(self.strides_t, self.downs_t))

    @property
    def token_rate(self) -> float:
        """Top-level tokens per second of audio (344.53 for ``5b``)."""
        return SAMPLE_RATE / self.hop_length

    @property
    def block_ctx(self) -> int:
        """Tokens per attention row (64 for ``5b``)."""
        return self.n_ctx // self.blocks

    @property
    def attn_width(self) -> int:
        """Width of queries/keys/values (``m_attn * width`` = 1200 for ``5b``)."""
        return int(self.m_attn * self.prior_width)

    @property
    def mlp_width(self) -> int:
        """Hidden width of each MLP (4800 for ``5b``)."""
        return int(self.m_mlp * self.prior_width)

    def check_layer(self, layer: int) -> int:
        """Validate a 1-based transformer layer index; returns it."""
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= self.prior_depth:
            raise InputError(
                f"Jukebox layer must be an integer in 1..{self.prior_depth}, got {layer!r} "
                f"(EDGE uses {DEFAULT_LAYER}, jukemirlib defaults to {JUKEMIRLIB_DEFAULT_LAYER})"
            )
        return layer
