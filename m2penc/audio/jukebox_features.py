"""Jukebox activations as music features: which backend runs, on which weights.

The paper (sec. 2.1, 3.2.1) feeds M2PEnc 4800-d Jukebox vectors, one per video frame: the
residual stream of the 5B top-level prior after ``layer`` of its 72 layers, resampled from
the token rate (344.5 Hz) to the video fps. EDGE uses layer 66.

All Jukebox computation lives in :mod:`..jukebox`, which owns the model: its native
re-implementation and its jukemirlib cross-check (the pack's only jukemirlib code). This module
is a thin dispatcher from the user-facing backend names:

* ``"own"``: :class:`..jukebox.JukeboxFeatureExtractor`. The architecture comes from the files
  (``5b`` for OpenAI's checkpoints, the embedded config for self-describing files such as the
  tiny smoke weights), so the width is 4800 for real weights and e.g. 16 for tiny ones.
* ``"jukemirlib"``: :func:`..jukebox.jukemirlib_backend.extract_with_jukemirlib` (5b only).
* ``"auto"``: jukemirlib when it is importable and the device is CUDA, else ``"own"``.

Reuse of loaded models (loading the 5B prior takes tens of seconds and several GB): pass
``extractor=`` to hold one yourself, else :data:`LOADED`, an :class:`..jukebox.ExtractorCache`
with a single entry, keeps the most recent model between calls (keyed by the files' path, size
and mtime, layer, device, dtype). One entry bounds the memory at one model;
:func:`clear_loaded_jukebox` frees it.

:func:`plan_jukebox` does every check (backend, weights files, layer) without loading anything,
so errors come first and the feature cache can be consulted before any model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..errors import InputError, WeightsNotFoundError
from ..jukebox import DEFAULT_LAYER, SAMPLE_RATE, ExtractorCache, JukeboxConfig, JukeboxFeatureExtractor
from ..jukebox.files import PRIOR_FILENAME, VQVAE_FILENAME, require_weights_file
from ..jukebox.jukemirlib_backend import (JukeboxUnavailableError, extract_with_jukemirlib,
                                          jukemirlib_available, require_jukemirlib)
from ..jukebox.music_input import DEFAULT_OVERLAP_SECONDS
from ..jukebox.self_describing import check_stored_layers, config_for_files, weights_fingerprint
from ..progress import NO_CONTROL, RunControl

__all__ = [
    "BACKENDS", "DEFAULT_LAYER", "JUKEBOX_SAMPLE_RATE", "LOADED", "JukeboxRun", "JukeboxUnavailableError",
    "clear_loaded_jukebox", "plan_jukebox", "resolve_backend",
]

#: Jukebox's audio sample rate (Hz); backends receive mono audio at this rate.
JUKEBOX_SAMPLE_RATE = SAMPLE_RATE
BACKENDS: tuple[str, ...] = ("auto", "own", "jukemirlib")
#: Models loaded by calls without ``extractor=``: one entry, so at most one model stays in memory.
LOADED = ExtractorCache(maxsize=1)

PathLike = Union[str, Path]


def clear_loaded_jukebox() -> None:
    """Free the model kept in :data:`LOADED` (a caller-held ``extractor`` is not affected)."""
    LOADED.clear()


def resolve_backend(name: str, device: torch.device) -> str:
    """Map ``"auto"`` to a concrete backend; validate explicit names."""
    if name not in BACKENDS:
        raise InputError(f"jukebox_backend must be one of {BACKENDS}, got {name!r}")
    if name != "auto":
        return name
    return "jukemirlib" if jukemirlib_available() and device.type == "cuda" else "own"


def _weights_files(vqvae_path: Optional[PathLike], prior_path: Optional[PathLike]) -> tuple[Path, Path]:
    """Both files (or a folder holding them) must exist; the error names files, URLs and the fallback."""
    try:
        return (require_weights_file(vqvae_path, VQVAE_FILENAME, "Jukebox VQ-VAE"),
                require_weights_file(prior_path, PRIOR_FILENAME, "Jukebox top-level prior"))
    except WeightsNotFoundError as e:
        raise WeightsNotFoundError(f"{e} Or use the CPU-friendly 'baseline' music features.") from e


@dataclass(frozen=True, eq=False)
class JukeboxRun:
    """A checked Jukebox request; nothing is loaded until :meth:`run`.

    ``weights_id`` identifies the weights (``None``: an in-memory extractor, whose features
    cannot be cached safely); ``windows`` is (context tokens, overlap seconds), which changes
    features of long music.
    """

    backend: str
    layer: int
    device: torch.device
    dtype: torch.dtype
    weights_id: Optional[str]
    windows: tuple[int, float]
    vqvae_file: Optional[Path] = None
    prior_file: Optional[Path] = None
    extractor: Optional[JukeboxFeatureExtractor] = None

    def cache_extra(self) -> Optional[dict[str, Any]]:
        """What besides audio/layer/fps/window decides the features; ``None``: do not cache."""
        if self.weights_id is None:
            return None
        # Both backends run the same files, so they share entries; precision does not.
        return {"dtype": str(self.dtype), "weights": self.weights_id, "windows": list(self.windows)}

    def run(self, y44k: np.ndarray, fps: float, num_frames: int, control: RunControl = NO_CONTROL) -> np.ndarray:
        """Mono 44.1 kHz float32 ``(S,)`` -> float32 ``(num_frames, width)``, windows laid on ``num_frames``."""
        if self.backend == "jukemirlib":
            return extract_with_jukemirlib(y44k, self.layer, fps, self.vqvae_file, self.prior_file,
                                           self.device, control, num_frames)
        extractor = self.extractor or LOADED.get(self.vqvae_file, self.prior_file, self.layer,
                                                 self.device, self.dtype)
        return extractor.extract(y44k, fps, self.layer, control, num_frames)


def _plan_with_extractor(extractor: JukeboxFeatureExtractor, layer: int, backend: str) -> JukeboxRun:
    if backend == "jukemirlib":
        raise InputError("an extractor was passed, which runs the built-in backend; use jukebox_backend="
                         "'own' or 'auto' with it, or drop the extractor to run jukemirlib")
    layer = extractor.check_layer(layer)
    return JukeboxRun("own", layer, extractor.device, extractor.dtype, extractor.weights_id,
                      (extractor.window_tokens, extractor.overlap_seconds), extractor=extractor)


def plan_jukebox(layer: int = DEFAULT_LAYER, backend: str = "auto", vqvae_path: Optional[PathLike] = None,
                 prior_path: Optional[PathLike] = None, device: torch.device = torch.device("cpu"),
                 dtype: torch.dtype = torch.float32,
                 extractor: Optional[JukeboxFeatureExtractor] = None) -> JukeboxRun:
    """Check a request without loading any model: backend installed, weights present, ``layer``
    within what the weights hold (1..72 for 5b, 1..depth of the embedded config otherwise).

    With ``extractor``, that model is used as is (its own device/dtype); paths are ignored.
    """
    if backend not in BACKENDS:
        raise InputError(f"jukebox_backend must be one of {BACKENDS}, got {backend!r}")
    if extractor is not None:
        return _plan_with_extractor(extractor, layer, backend)
    chosen = resolve_backend(backend, device)
    if chosen == "jukemirlib":
        require_jukemirlib()  # a missing package is reported before missing weights
    vqvae_file, prior_file = _weights_files(vqvae_path, prior_path)
    config = JukeboxConfig.preset("5b") if chosen == "jukemirlib" else config_for_files(vqvae_file, prior_file)
    layer = config.check_layer(layer)
    if chosen == "own":
        check_stored_layers(prior_file, layer)
    return JukeboxRun(chosen, layer, device, dtype, weights_fingerprint(vqvae_file, prior_file),
                      (config.n_ctx, DEFAULT_OVERLAP_SECONDS), vqvae_file, prior_file)
