"""EDGE's denoiser architecture as data (:class:`EDGEConfig`), saved inside every weights file.

EDGE (Tseng et al., CVPR 2023) released one model size: a 512-wide, 8-layer FiLM transformer
denoising 150-frame (5 s at 30 fps) windows of 151-d motion, conditioned on 4800-d Jukebox
features (``jukebox``) or on EDGE's 35-d librosa features (``baseline``). Its ``null_cond_embed``
is ``(1, seq_len, D)``, which ties a set of weights to windows of exactly ``seq_len`` frames.
``tiny`` is the size of the parity vectors in ``../shared/spec/edge`` (REPORT.md §9).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...config import ModelConfig
from ...errors import InputError
from ..pickle_layouts import EDGE_FPS

#: Music feature width per kind (REPORT.md §4): Jukebox layer 66, or EDGE's librosa columns.
FEATURE_DIMS: dict[str, int] = {"jukebox": 4800, "baseline": 35}
#: The 151-d motion frame: 4 foot contacts, root position, 24 joints x 6D rotation.
MOTION_FEATURES = 151


@dataclass(frozen=True)
class EDGEConfig(ModelConfig):
    """EDGE ``DanceDecoder`` hyper-parameters (EDGE.py defaults unless a preset says otherwise).

    Attributes:
        feature_kind: music features the model reads, ``"jukebox"`` or ``"baseline"``.
        cond_feature_dim: their width (4800 or 35); must match ``feature_kind``.
        nfeats: motion features per frame (151).
        seq_len: frames per window; the null condition is ``(1, seq_len, latent_dim)``.
        latent_dim: transformer width D (the time MLP is 4D wide).
        ff_size: feed-forward width of every encoder/decoder layer.
        num_layers: FiLM decoder layers (the music encoder always has 2 layers, as in EDGE).
        num_heads: attention heads (D must divide by them).
        dropout: training dropout (the samplers run the model in eval mode).
        fps: frame rate of the motion and the music features (EDGE: 30).
    """

    feature_kind: str = "jukebox"
    cond_feature_dim: int = FEATURE_DIMS["jukebox"]
    nfeats: int = MOTION_FEATURES
    seq_len: int = 150
    latent_dim: int = 512
    ff_size: int = 1024
    num_layers: int = 8
    num_heads: int = 8
    dropout: float = 0.1
    fps: float = EDGE_FPS

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "jukebox": {},
        "baseline": {"feature_kind": "baseline", "cond_feature_dim": FEATURE_DIMS["baseline"]},
        "tiny": {
            "feature_kind": "baseline", "cond_feature_dim": FEATURE_DIMS["baseline"], "latent_dim": 64,
            "ff_size": 128, "num_layers": 2, "num_heads": 4, "seq_len": 30,
        },
    }

    def __post_init__(self) -> None:
        if self.feature_kind not in FEATURE_DIMS:
            raise InputError(f"EDGEConfig.feature_kind must be one of {sorted(FEATURE_DIMS)}, "
                             f"got {self.feature_kind!r}")
        if self.cond_feature_dim != FEATURE_DIMS[self.feature_kind]:
            raise InputError(
                f"EDGEConfig: {self.feature_kind!r} features are {FEATURE_DIMS[self.feature_kind]}-d but "
                f"cond_feature_dim is {self.cond_feature_dim}; set feature_kind to match the features")
        if self.latent_dim < 4 or self.latent_dim % 2 or self.latent_dim % self.num_heads:
            raise InputError(f"EDGEConfig.latent_dim must be even, >= 4 and divisible by num_heads "
                             f"({self.num_heads}), got {self.latent_dim}")
        if self.seq_len < 2 or self.nfeats < 1 or self.ff_size < 1 or self.num_layers < 1:
            raise InputError(f"EDGEConfig sizes must be positive (seq_len >= 2), got seq_len={self.seq_len}, "
                             f"nfeats={self.nfeats}, ff_size={self.ff_size}, num_layers={self.num_layers}")
