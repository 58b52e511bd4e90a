"""The one definition of the video timeline: the frame rate and how many frames music covers.

Frame ``i`` of a video is frame ``i`` of its music features and of its guidance, and lasts
``[i / fps, (i + 1) / fps)``. Music of ``S`` samples at ``sr`` Hz covers
``floor(S * fps / sr)`` whole frames -- computed here in exact rational arithmetic, so features,
Jukebox windows and the segment plan always agree (no ``+ 1e-9`` fudges, no frame that one part
of the pipeline counts and another does not). ``fps`` is taken as the nearest fraction with a
denominator up to 10^6, so ``30000 / 1001`` and ``29.97`` are both what they say.
"""
from __future__ import annotations

import math
from fractions import Fraction

from .errors import InputError

#: The paper's video rate (§4.1: 75 frames = 5 s at 15 fps), the default everywhere.
DEFAULT_FPS: float = 15.0


def rational_fps(fps: float) -> Fraction:
    """``fps`` as an exact fraction (denominator <= 10^6); must be positive and finite."""
    if not (isinstance(fps, (int, float, Fraction)) and math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1_000_000)


def frame_count(num_samples: int, sample_rate: int, fps: float) -> int:
    """Whole video frames in ``num_samples`` of audio at ``sample_rate``: ``floor(S * fps / sr)``, exactly."""
    if num_samples < 0 or sample_rate <= 0:
        raise InputError(f"need num_samples >= 0 and sample_rate > 0, got {num_samples} and {sample_rate}")
    return math.floor(Fraction(int(num_samples)) * rational_fps(fps) / int(sample_rate))


def resampled_frame_count(num_frames: int, source_fps: float, fps: float) -> int:
    """Frames of a ``num_frames``-frame sequence at ``source_fps`` resampled to ``fps``: one at ``k / fps`` for
    every ``k / fps`` up to the last source frame's time (what :meth:`..motion.SMPLMotion.resample` makes)."""
    if num_frames < 1:
        raise InputError(f"the dance must have at least one frame, got {num_frames}")
    rational_fps(source_fps)                                         # positive and finite, or InputError
    rational_fps(fps)
    if fps == source_fps:
        return int(num_frames)
    return int(math.floor((num_frames - 1) / (source_fps / fps) + 1e-9)) + 1
