"""Jukebox 5B-prior layer activations (4800-d music features) without jukemirlib.

Music-conditioned dance models (EDGE) condition on jukemirlib features: activations of a layer
of OpenAI Jukebox's 5B top-level prior. jukemirlib is not on PyPI and caps clips at 23.8 s, so
this package rebuilds the computation on its own modules, whose state-dict keys equal OpenAI's
checkpoints: any length (windowed), only layers ``<= L`` loaded, safe checkpoint reading.
jukemirlib itself stays available as a cross-check backend (:mod:`.jukemirlib_backend`, the
pack's only caller of it).

Entry points: :func:`extract_jukebox_features`, :func:`load_jukebox`,
:class:`JukeboxFeatureExtractor`, :class:`ExtractorCache` (reuse loaded models),
:func:`convert_jukebox_checkpoint`, :func:`save_jukebox_weights` and :func:`write_tiny_jukebox`
(self-describing files that load without a ``config`` argument).
"""
from .checkpoint_io import convert_jukebox_checkpoint, read_jukebox_state_dict
from .config import DEFAULT_LAYER, JUKEMIRLIB_DEFAULT_LAYER, SAMPLE_RATE, JukeboxConfig
from .extractor import JukeboxFeatureExtractor, extract_jukebox_features, load_jukebox
from .jukemirlib_backend import JukeboxUnavailableError, jukemirlib_available
from .memory import JukeboxMemoryError
from .prior import TopLevelPrior
from .random_weights import write_tiny_jukebox
from .reuse import ExtractorCache
from .self_describing import config_for_files, save_jukebox_weights
from .vqvae import VQVAE

__all__ = [
    "DEFAULT_LAYER",
    "JUKEMIRLIB_DEFAULT_LAYER",
    "SAMPLE_RATE",
    "ExtractorCache",
    "JukeboxConfig",
    "JukeboxFeatureExtractor",
    "JukeboxMemoryError",
    "JukeboxUnavailableError",
    "TopLevelPrior",
    "VQVAE",
    "config_for_files",
    "convert_jukebox_checkpoint",
    "extract_jukebox_features",
    "jukemirlib_available",
    "load_jukebox",
    "read_jukebox_state_dict",
    "save_jukebox_weights",
    "write_tiny_jukebox",
]
