"""Music beats, motion beats and Bailando's Beat Alignment Score."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2pdance.m2penc.audio.features import extract_music_features
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval.beat_alignment import (
    beat_alignment, beat_alignment_score, beat_frames_from_features, motion_beat_frames, music_beat_frames,
    pose_keypoint_beat_alignment,
)
from m2pdance.m2penc.pose.pose_keypoint import keypoints_to_pose_keypoint, pose_keypoint_to_keypoints

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


def _dance_with_pauses_at(pauses: np.ndarray, frames: int) -> np.ndarray:
    """``(F, 3, 3)`` joints whose mean speed dips at ``pauses`` (speed[t] is the step t -> t + 1)."""
    t = np.arange(frames - 1)
    speed = 1.0 + 0.0 * t
    for p in pauses:
        speed -= 0.9 * np.exp(-((t - p) ** 2) / (2 * 2.0**2))
    position = np.concatenate([[0.0], np.cumsum(speed)])
    return position[:, None, None] * np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.5]])


def test_pauses_on_the_beats_score_higher_than_shifted_or_random_beats():
    audio = _clicks()
    fps = 30
    music = music_beat_frames(audio, fps)
    frames = int(SECONDS * fps)
    on_beat = beat_alignment(_dance_with_pauses_at(music, frames), music)
    half_beat = int(round(fps * 60 / BPM / 2))
    shifted = beat_alignment(_dance_with_pauses_at(music + half_beat, frames), music)
    rng = np.random.default_rng(0)
    random_music = np.sort(rng.choice(np.arange(frames - 1), size=len(music), replace=False))
    shuffled = beat_alignment(_dance_with_pauses_at(music, frames), random_music)
    assert on_beat.score > 0.9
    assert on_beat.score > shifted.score + 0.5 and on_beat.score > shuffled.score + 0.3
    inner = music[(music > 10) & (music < frames - 10)]                 # smoothing bends the ends
    assert np.abs(on_beat.motion_beats[:, None] - inner[None, :]).min(axis=0).max() <= 1
    assert on_beat.speed.shape == (frames - 1,)


def test_beat_alignment_keeps_music_beats_inside_the_motion():
    joints = _dance_with_pauses_at(np.array([10, 30]), 41)            # speed curve of 40 steps
    result = beat_alignment(joints, np.array([10, 30, 39, 40, 55]))
    np.testing.assert_array_equal(result.music_beats, [10, 30, 39])   # Bailando: beats < len(speed)
    assert result.score == pytest.approx(beat_alignment_score([10, 30, 39], motion_beat_frames(joints)))
    with pytest.raises(InputError, match="no music beat"):
        beat_alignment(joints, np.array([40, 80]))


def test_pose_keypoint_bas_equals_the_array_bas():
    frames = 90
    rng = np.random.default_rng(3)
    path = _dance_with_pauses_at(np.array([15, 40, 62, 80]), frames)[:, 0, 0]
    points = np.zeros((frames, 18, 3))
    points[..., 0] = 100 + 3 * path[:, None] + rng.normal(scale=0.5, size=(frames, 18))
    points[..., 1] = 200 + np.arange(18) * 10 + rng.normal(scale=0.5, size=(frames, 18))
    points[..., 2] = 1.0
    points[rng.random((frames, 18)) < 0.1] = 0.0                        # undetected joints
    pose = keypoints_to_pose_keypoint(points, 512, 512)
    music = np.array([14, 41, 60, 81, 95])
    from_pose = pose_keypoint_beat_alignment(pose, music)
    from_array = beat_alignment(pose_keypoint_to_keypoints(pose), music, has_confidence=True)
    assert from_pose.score == from_array.score
    np.testing.assert_array_equal(from_pose.motion_beats, from_array.motion_beats)
    expected = beat_alignment_score(music[music < frames - 1], motion_beat_frames(points, has_confidence=True))
    assert from_pose.score == pytest.approx(expected) and from_pose.score > 0.5
    with pytest.raises(InputError, match="person"):
        pose_keypoint_beat_alignment(pose, music, person=-1)
    empty = keypoints_to_pose_keypoint(np.zeros((frames, 18, 3)), 512, 512)
    with pytest.raises(InputError, match="no detected body keypoint"):
        pose_keypoint_beat_alignment(empty, music)


def test_music_beats_at_a_rate_the_tracker_does_not_take():
    audio = _clicks()
    at_30 = music_beat_frames(audio, 30)
    at_25 = music_beat_frames(audio, 25)                       # 15360 / 25 is not whole: tracked at 30
    np.testing.assert_array_equal(at_25, np.unique(np.rint(at_30 * 25 / 30)))
    clicks_at = np.arange(0.25, SECONDS - 0.1, 60 / BPM) * 25
    assert all(np.min(np.abs(clicks_at - b)) <= 1 for b in at_25)
    with pytest.raises(InputError, match="fps"):
        music_beat_frames(audio, 0)
