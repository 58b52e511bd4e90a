"""The value every music feature extractor returns: a frame-aligned feature matrix plus its origin.

Kept apart from the extractors so that the cache, the encoder checks and the nodes can use the
type without importing librosa or Jukebox code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..timeline import DEFAULT_FPS as _TIMELINE_FPS

#: Extractor kinds and the feature width each produces.
BASELINE = "baseline"
JUKEBOX = "jukebox"
#: Column layout of EDGE's "baseline" librosa set (in this order, 35 columns).
N_MFCC = 20
N_CHROMA = 12
COL_ENVELOPE = 0                                  # onset strength envelope
COL_MFCC = slice(1, 1 + N_MFCC)                   # 20 MFCCs
COL_CHROMA = slice(COL_MFCC.stop, COL_MFCC.stop + N_CHROMA)  # 12 chroma CENS
COL_ONSET_PEAK = COL_CHROMA.stop                  # onset-peak one-hot
COL_BEAT = COL_ONSET_PEAK + 1                     # beat one-hot
BASELINE_DIM = COL_BEAT + 1
#: Width of the Jukebox 5B top prior (its transformer's residual stream).
JUKEBOX_DIM = 4800
FEATURE_DIMS: dict[str, int] = {BASELINE: BASELINE_DIM, JUKEBOX: JUKEBOX_DIM}
FEATURE_KINDS: tuple[str, ...] = tuple(FEATURE_DIMS)
#: The video frame rate, defined once in :mod:`..timeline` (re-exported for the feature code).
DEFAULT_FPS = _TIMELINE_FPS


@dataclass(frozen=True)
class MusicFeatures:
    """Per-video-frame music features.

    Attributes:
        features: float32 CPU tensor ``(N, D)``, ``N = floor(duration * fps)``, row ``i`` describes
            the music at time ``start_seconds + i / fps``.
        fps: frames per second of the rows.
        kind: ``"baseline"`` (D = 35) or ``"jukebox"`` (D = 4800 with the real 5B weights; the
            prior width of other weights, e.g. 16 for the tiny smoke model).
        layer: Jukebox prior layer (1-based), ``None`` for the baseline set.
        source_hash: content hash of the AUDIO the features were computed from (before trimming).
        start_seconds: where the first row sits in that audio.
    """

    features: torch.Tensor
    fps: float
    kind: str
    layer: Optional[int]
    source_hash: str
    start_seconds: float = 0.0

    @property
    def num_frames(self) -> int:
        """N, the number of video frames covered."""
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        """D, the feature width."""
        return int(self.features.shape[1])

    @property
    def duration_seconds(self) -> float:
        """Length of music covered, ``N / fps``."""
        return self.num_frames / self.fps
