"""Jukebox 5B-prior layer activations (4800-d music features) without jukemirlib.

Music-conditioned dance models (EDGE) condition on jukemirlib features: activations of a layer
of OpenAI Jukebox's 5B top-level prior. jukemirlib is not on PyPI and caps clips at 23.8 s, so
this package rebuilds the computation on its own modules, whose state-dict keys equal OpenAI's
checkpoints: any length (windowed), only layers ``<= L`` loaded, safe checkpoint reading.

Entry points: :func:`extract_jukebox_features`, :func:`load_jukebox`,
:class:`JukeboxFeatureExtractor`, :func:`convert_jukebox_checkpoint`.
"""
from .checkpoint_io import convert_jukebox_checkpoint, read_jukebox_state_dict
from .config import DEFAULT_LAYER, JUKEMIRLIB_DEFAULT_LAYER, SAMPLE_RATE, JukeboxConfig
from .extractor import JukeboxFeatureExtractor, extract_jukebox_features, load_jukebox
from .memory import JukeboxMemoryError
from .prior import TopLevelPrior
from .vqvae import VQVAE

__all__ = [
    "DEFAULT_LAYER",
    "JUKEMIRLIB_DEFAULT_LAYER",
    "SAMPLE_RATE",
    "JukeboxConfig",
    "JukeboxFeatureExtractor",
    "JukeboxMemoryError",
    "TopLevelPrior",
    "VQVAE",
    "convert_jukebox_checkpoint",
    "extract_jukebox_features",
    "load_jukebox",
    "read_jukebox_state_dict",
]
