"""Music beats, motion beats and the Beat Alignment Score (BAS), all in video frames.

BAS follows Bailando (``utils/beat_align_score.py``, also what EDGE's users are pointed to):

* motion beats: local minima (``scipy.signal.argrelextrema(..., np.less)``) of the mean joint
  speed ``v_t = mean_j ||p_{t+1, j} - p_{t, j}||``, Gaussian-smoothed with sigma = 5 frames;
* music beats: librosa's beat tracker (the beat column of EDGE's baseline features);
* ``BAS = (1 / |B_music|) * sum_{b in B_music} exp(-min_{d in B_motion} (d - b)^2 / (2 sigma^2))``
  with ``sigma^2 = 9`` frames^2, i.e. averaged over *music* beats (FACT's original averages over
  motion beats instead; the two are not interchangeable).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from ..audio.baseline import FEATURE_SAMPLE_RATE, beat_frames, hop_length_for, onset_envelope
from ..audio.featureset import BASELINE, COL_BEAT, MusicFeatures
from ..audio.io import resample, to_mono, validate_audio
from ..errors import InputError

#: Bailando's smoothing of the joint-speed curve, in frames.
MOTION_SMOOTHING_SIGMA = 5.0
#: Bailando's BAS tolerance: sigma^2 = 9 frames^2 (sigma = 3 frames).
BAS_SIGMA_SQUARED = 9.0


def music_beat_frames(audio: Mapping[str, Any], fps: float, start_bpm: Optional[float] = None) -> np.ndarray:
    """Beat frame indices of an AUDIO dict at ``fps`` (same tracker as the baseline features)."""
    audio = validate_audio(audio)
    mono = resample(to_mono(audio["waveform"])[0], audio["sample_rate"], FEATURE_SAMPLE_RATE)[0].numpy()
    hop = hop_length_for(fps)
    num_frames = int(np.floor(audio["waveform"].shape[-1] / audio["sample_rate"] * fps + 1e-9))
    beats = beat_frames(onset_envelope(mono, hop), hop, start_bpm)
    return beats[beats < num_frames]


def beat_frames_from_features(music: MusicFeatures) -> np.ndarray:
    """Beat frame indices stored in the beat one-hot column of baseline features."""
    if music.kind != BASELINE:
        raise InputError(f"only baseline music features carry a beat column, got {music.kind!r}")
    return np.flatnonzero(music.features[:, COL_BEAT].numpy() > 0.5)


def _mean_joint_speed(points: np.ndarray, has_confidence: bool) -> np.ndarray:
    """``(F, J, D)`` -> ``(F - 1,)`` mean displacement per frame (joints missing at either end skipped)."""
    if not has_confidence:
        return np.linalg.norm(points[1:] - points[:-1], axis=-1).mean(axis=1)
    xy, present = points[..., :-1], points[..., -1] > 0
    both = present[1:] & present[:-1]                                   # (F - 1, J)
    step = np.linalg.norm(xy[1:] - xy[:-1], axis=-1) * both
    return step.sum(axis=1) / np.maximum(both.sum(axis=1), 1)


def motion_beat_frames(keypoints: np.ndarray, sigma: float = MOTION_SMOOTHING_SIGMA,
                       has_confidence: bool = False) -> np.ndarray:
    """Frames where the smoothed mean joint speed has a local minimum.

    Args:
        keypoints: ``(F, J, D)`` joint positions (2D pixels or 3D metres); with
            ``has_confidence`` the last column is a confidence and joints at 0 are ignored
            (e.g. body keypoints read from POSE_KEYPOINT, ``(F, 18, 3)``).
        sigma: Gaussian smoothing of the speed curve, in frames (Bailando: 5).
    """
    points = np.asarray(keypoints, dtype=np.float64)
    if points.ndim != 3 or points.shape[0] < 3:
        raise InputError(f"keypoints must be (frames >= 3, joints, dims), got {points.shape}")
    speed = _mean_joint_speed(points, has_confidence)
    return argrelextrema(gaussian_filter1d(speed, sigma), np.less)[0]


def beat_alignment_score(music_beats: np.ndarray, motion_beats: np.ndarray,
                         sigma_squared: float = BAS_SIGMA_SQUARED) -> float:
    """Bailando's BAS: mean over music beats of ``exp(-(nearest motion beat distance)^2 / (2 sigma^2))``.

    No motion beats at all scores 0. At least one music beat is required.
    """
    music = np.asarray(music_beats, dtype=np.float64).reshape(-1)
    motion = np.asarray(motion_beats, dtype=np.float64).reshape(-1)
    if music.size == 0:
        raise InputError("BAS needs at least one music beat; the music has no detectable beat")
    if motion.size == 0:
        return 0.0
    nearest = np.min((motion[None, :] - music[:, None]) ** 2, axis=1)
    return float(np.mean(np.exp(-nearest / (2 * sigma_squared))))
