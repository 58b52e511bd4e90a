"""What the Jukebox models read: peak-normalised mono 44.1 kHz music, and the long-music settings.

This is the pack's one audio normalisation: jukemirlib scales every clip to ``max |x| = 1`` before
the VQ-VAE, and both Jukebox backends (:mod:`.extractor`, :mod:`.jukemirlib_backend`) call
:func:`peak_normalise` on what they are given, so callers pass plain mono audio.
"""
from __future__ import annotations

import numpy as np

from ..errors import AudioError, InputError

#: Default overlap between consecutive context windows (seconds of music).
DEFAULT_OVERLAP_SECONDS = 2.0
#: Highest frame rate accepted (the token rate is 344.5 Hz; FFT resampling needs fps below it).
MAX_FPS = 120.0


def peak_normalise(waveform: np.ndarray) -> np.ndarray:
    """(S,) float -> (S,) float32 scaled to max |x| = 1 (silence stays zero), as jukemirlib's loader."""
    audio = np.asarray(waveform, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"expected mono audio of shape (samples,), got shape {audio.shape}; mix down first")
    if not np.all(np.isfinite(audio)):
        raise AudioError("audio contains NaN or infinite samples")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return audio / peak if peak > 0 else audio


def check_fps(fps: float) -> None:
    """Jukebox features can be resampled to any rate in (0, :data:`MAX_FPS`]."""
    if not 0 < fps <= MAX_FPS:
        raise InputError(f"fps must be in (0, {MAX_FPS}], got {fps}")
