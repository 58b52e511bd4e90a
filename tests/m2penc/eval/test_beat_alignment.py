"""Music beats, motion beats and Bailando's Beat Alignment Score."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2pdance.m2penc.audio.features import extract_music_features
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval.beat_alignment import (
    beat_alignment_score, beat_frames_from_features, motion_beat_frames, music_beat_frames,
)

SR, BPM, SECONDS, FPS = 22050, 120.0, 6.0, 15


def _clicks() -> dict:
    y = 1e-3 * np.random.default_rng(0).standard_normal(int(SECONDS * SR))
    n = int(0.03 * SR)
    for t in np.arange(0.25, SECONDS - 0.1, 60 / BPM):
        y[int(t * SR): int(t * SR) + n] += np.exp(-np.arange(n) / 300) * np.sin(2 * np.pi * 1500 * np.arange(n) / SR)
    return {"waveform": torch.from_numpy(y.astype(np.float32))[None, None], "sample_rate": SR}


def test_bas_definition():
    assert beat_alignment_score([10, 20, 30], [10, 20, 30]) == 1.0
    assert beat_alignment_score([10], [13, 40]) == pytest.approx(math.exp(-9 / 18))
    # averaged over music beats: extra motion beats do not lower the score
    assert beat_alignment_score([10, 20], [10, 15, 20, 25]) == 1.0
    assert beat_alignment_score([10, 20], []) == 0.0
    with pytest.raises(InputError, match="music beat"):
        beat_alignment_score([], [1, 2])


def test_motion_beats_at_speed_minima():
    frames = 120
    stops = np.array([20, 50, 80, 110])
    t = np.arange(frames)
    speed = 1.0 + 0.0 * t
    for s in stops:
        speed -= 0.9 * np.exp(-((t - s) ** 2) / (2 * 4.0**2))
    position = np.cumsum(speed)
    joints = np.stack([position, 2 * position], axis=1)[:, :, None] * np.ones((1, 1, 2))  # (F, 2, 2)
    beats = motion_beat_frames(joints)
    assert len(beats) == len(stops)
    assert np.abs(beats - stops).max() <= 1


def test_motion_beats_skip_undetected_joints():
    frames = 60
    t = np.arange(frames)
    x = np.cumsum(1.0 - 0.9 * np.exp(-((t - 30) ** 2) / 32.0))
    points = np.zeros((frames, 18, 3))
    points[:, :, 0], points[:, :, 2] = x[:, None], 1.0
    points[::7, 5] = 0.0  # a flickering joint reported as [0, 0, 0]
    (beat,) = motion_beat_frames(points, has_confidence=True)
    assert abs(beat - 30) <= 1  # speed[t] is the step t -> t + 1


def test_music_beats_match_feature_column():
    audio = _clicks()
    beats = music_beat_frames(audio, FPS)
    clicks_at = np.arange(0.25, SECONDS - 0.1, 60 / BPM) * FPS
    assert all(np.min(np.abs(clicks_at - b)) <= 1 for b in beats) and len(beats) >= len(clicks_at) - 2
    column = beat_frames_from_features(extract_music_features(audio, fps=FPS))
    np.testing.assert_array_equal(beats, column)
    assert beat_alignment_score(beats, beats + 1) == pytest.approx(math.exp(-1 / 18))
