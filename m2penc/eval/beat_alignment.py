"""Music beats, motion beats and the Beat Alignment Score (BAS), all in video frames.

BAS follows Bailando (``utils/beat_align_score.py``, also what EDGE's users are pointed to):

* motion beats: local minima (``scipy.signal.argrelextrema(..., np.less)``) of the mean joint
  speed ``v_t = mean_j ||p_{t+1, j} - p_{t, j}||``, Gaussian-smoothed with sigma = 5 frames;
* music beats: librosa's beat tracker (the beat column of EDGE's baseline features);
* ``BAS = (1 / |B_music|) * sum_{b in B_music} exp(-min_{d in B_motion} (d - b)^2 / (2 sigma^2))``
  with ``sigma^2 = 9`` frames^2, i.e. averaged over *music* beats (FACT's original averages over
  motion beats instead; the two are not interchangeable).

:func:`beat_alignment` scores joint positions against music beats and keeps what a plot needs
(the smoothed speed curve and both beat lists); :func:`pose_keypoint_beat_alignment` does the
same for a video's POSE_KEYPOINT frames (body keypoints ``(F, 18, 3)``, undetected joints skipped).
As in Bailando (``get_mb(key, length)`` with ``length = len(kinetic_vel)``), only music beats
inside the ``F - 1`` frames of the speed curve count.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from ..audio.baseline import FEATURE_SAMPLE_RATE, beat_frames, hop_length_for, onset_envelope
from ..audio.featureset import BASELINE, COL_BEAT, MusicFeatures
from ..audio.io import resample, to_mono, validate_audio
from ..errors import InputError
from ..pose.pose_keypoint import PoseKeypoint, pose_keypoint_to_keypoints
from ..timeline import frame_count

#: Bailando's smoothing of the joint-speed curve, in frames.
MOTION_SMOOTHING_SIGMA = 5.0
#: Bailando's BAS tolerance: sigma^2 = 9 frames^2 (sigma = 3 frames).
BAS_SIGMA_SQUARED = 9.0
#: Music at a frame rate that does not divide the feature rate is beat-tracked at this rate.
FALLBACK_TRACKING_FPS = 30.0


def music_beat_frames(audio: Mapping[str, Any], fps: float, start_bpm: Optional[float] = None) -> np.ndarray:
    """Beat frame indices of an AUDIO dict at ``fps`` (same tracker as the baseline features).

    A rate dividing the 15360 Hz feature rate (8, 10, 12, 15, 16, 20, 24, 30, 60, ...) is tracked
    at that rate, exactly the beat column of the baseline features. Any other rate (25, 29.97, ...)
    is tracked at :data:`FALLBACK_TRACKING_FPS` (EDGE's 30) and each beat time rounded to the
    nearest frame at ``fps``.
    """
    audio = validate_audio(audio)
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    fps = float(fps)
    native = float(FEATURE_SAMPLE_RATE / fps).is_integer()
    tracking_fps = fps if native else FALLBACK_TRACKING_FPS
    mono = resample(to_mono(audio["waveform"])[0], audio["sample_rate"], FEATURE_SAMPLE_RATE)[0].numpy()
    hop = hop_length_for(tracking_fps)
    num_frames = frame_count(audio["waveform"].shape[-1], audio["sample_rate"], fps)
    beats = beat_frames(onset_envelope(mono, hop), hop, start_bpm)
    if not native:
        beats = np.unique(np.rint(beats * (fps / tracking_fps)).astype(np.int64))
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


def smoothed_joint_speed(keypoints: np.ndarray, sigma: float = MOTION_SMOOTHING_SIGMA,
                         has_confidence: bool = False) -> np.ndarray:
    """Bailando's kinetic velocity curve: mean joint speed per frame step, Gaussian-smoothed.

    Args:
        keypoints: ``(F, J, D)`` joint positions (2D pixels or 3D metres); with
            ``has_confidence`` the last column is a confidence and joints at 0 are ignored
            (e.g. body keypoints read from POSE_KEYPOINT, ``(F, 18, 3)``).
        sigma: Gaussian smoothing of the speed curve, in frames (Bailando: 5).
    Returns:
        ``(F - 1,)`` float64; entry ``t`` is the step from frame ``t`` to ``t + 1`` (units of
        ``keypoints`` per frame).
    """
    points = np.asarray(keypoints, dtype=np.float64)
    if points.ndim != 3 or points.shape[0] < 3:
        raise InputError(f"keypoints must be (frames >= 3, joints, dims), got {points.shape}")
    return gaussian_filter1d(_mean_joint_speed(points, has_confidence), sigma)


def motion_beat_frames(keypoints: np.ndarray, sigma: float = MOTION_SMOOTHING_SIGMA,
                       has_confidence: bool = False) -> np.ndarray:
    """Frames where :func:`smoothed_joint_speed` (same arguments) has a local minimum."""
    return argrelextrema(smoothed_joint_speed(keypoints, sigma, has_confidence), np.less)[0]


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


@dataclass(frozen=True)
class BeatAlignment:
    """A BAS with what went into it (for plots and reports), all in frames of one frame rate.

    Attributes:
        score: Bailando's BAS in ``[0, 1]``.
        speed: ``(F - 1,)`` smoothed mean joint speed (:func:`smoothed_joint_speed`).
        music_beats: music beat frames inside the speed curve (``< F - 1``), the ones scored.
        motion_beats: local minima of ``speed``.
    """

    score: float
    speed: np.ndarray
    music_beats: np.ndarray
    motion_beats: np.ndarray


def beat_alignment(keypoints: np.ndarray, music_beats: np.ndarray, has_confidence: bool = False,
                   sigma: float = MOTION_SMOOTHING_SIGMA) -> BeatAlignment:
    """Bailando's BAS of joint positions against music beats given in the same frames.

    Args:
        keypoints: ``(F, J, D)`` joint positions, F >= 3 (see :func:`smoothed_joint_speed`).
        music_beats: music beat frame indices (e.g. :func:`music_beat_frames` at the keypoints'
            frame rate); beats at or after frame ``F - 1`` are dropped, as Bailando does.
        has_confidence: the last column of ``keypoints`` is a confidence (0 = not detected).
        sigma: smoothing of the speed curve in frames (Bailando: 5).
    Raises:
        InputError: bad shapes, or no music beat inside the motion.
    """
    speed = smoothed_joint_speed(keypoints, sigma, has_confidence)
    beats = np.asarray(music_beats, dtype=np.int64).reshape(-1)
    inside = beats[(beats >= 0) & (beats < speed.shape[0])]
    if inside.size == 0:
        raise InputError(f"no music beat falls inside the motion's {speed.shape[0] + 1} frames "
                         f"({beats.size} beat(s) in the music): the motion is too short, or its frame rate "
                         f"does not match the music's")
    motion_beats = argrelextrema(speed, np.less)[0]
    return BeatAlignment(beat_alignment_score(inside, motion_beats), speed, inside, motion_beats)


def pose_keypoint_beat_alignment(frames: PoseKeypoint, music_beats: np.ndarray, person: int = 0,
                                 sigma: float = MOTION_SMOOTHING_SIGMA) -> BeatAlignment:
    """BAS of a video's POSE_KEYPOINT frames (comfyui_controlnet_aux layout, one dict per frame).

    The body keypoints of ``person`` become ``(F, 18, 3)`` [x, y, c] pixels
    (:func:`~..pose.pose_keypoint.pose_keypoint_to_keypoints`; a frame without that person is all
    zeros); joints with ``c = 0`` in either frame of a step are left out of that step's mean speed.
    ``music_beats`` are frame indices at the video's frame rate.
    """
    if isinstance(person, bool) or not isinstance(person, int) or person < 0:
        raise InputError(f"person must be an index >= 0, got {person!r}")
    keypoints = pose_keypoint_to_keypoints(frames, person)
    if not (keypoints[..., 2] > 0).any():
        raise InputError(f"POSE_KEYPOINT has no detected body keypoint for person {person} in any of its "
                         f"{len(frames)} frames")
    return beat_alignment(keypoints, music_beats, has_confidence=True, sigma=sigma)
