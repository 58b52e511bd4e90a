"""The beat choreographer without audio: timing on the beats, speed limits, feet, determinism.

Bounds checked here (stated in the code): every joint slower than ``MAX_JOINT_SPEED`` = 5 m/s and
every local joint rotation slower than ``MAX_ANGULAR_SPEED`` = 12 rad/s (so at most 12 / fps rad
between frames), both as finite differences at the output fps; the lowest foot joint 0..7 mm above
the floor (y = 0) and no foot joint below it; a planted foot (< 5 mm up at both frames) moving at
most 0.3 m/s and on average under 2 cm/s.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2pdance.m2penc.body.rotations import axis_angle_to_quaternion
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval.beat_alignment import beat_alignment_score, motion_beat_frames
from m2pdance.m2penc.motion import SMPLMotion
from m2pdance.m2penc.motion.choreography import (
    FALLBACK_BPM, MAX_ANGULAR_SPEED, MAX_JOINT_SPEED, MOVES, check_joint_speed, choreograph, ground, joint_positions,
    mirror, plan_dance,
)
from m2pdance.m2penc.motion.choreography.moves import LOOPS, REST, Pose, flatten_feet, to_axis_angle

FEET = [7, 8, 10, 11]


def _beats(bpm: float, seconds: float, seed: int = 0, jitter: float = 0.01) -> np.ndarray:
    """A beat grid from 0.3 s with Gaussian timing jitter (a real tracker is never exact)."""
    grid = np.arange(0.3, seconds, 60.0 / bpm)
    return grid + np.random.default_rng(seed).normal(0.0, jitter, grid.size)


def _positions(motion: SMPLMotion) -> np.ndarray:
    return joint_positions(motion.poses.astype(np.float64), motion.trans.astype(np.float64))


def _dances():
    """(bpm, fps, seed, intensity) covering slow to very fast music, all frame rates, loud dancing."""
    for bpm, fps, seed, intensity in [(60, 15, 0, 1.0), (90, 30, 1, 1.0), (120, 60, 2, 1.0), (160, 30, 3, 1.5),
                                      (200, 60, 4, 2.0), (140, 24, 5, 1.0)]:
        beats = _beats(bpm, 20.0, seed)
        energy = np.random.default_rng(seed).uniform(0, 1, beats.size)
        yield pytest.param(choreograph(beats, 20.0, fps, energy=energy, seed=seed, intensity=intensity),
                           id=f"{bpm}bpm-{fps}fps-x{intensity:g}")


DANCES = list(_dances())


def test_output_format():
    motion = choreograph(_beats(120, 12.0), 12.0, 30, seed=0)
    assert isinstance(motion, SMPLMotion)
    assert (motion.num_frames, motion.fps, motion.up_axis) == (360, 30.0, "y")
    assert choreograph(_beats(100, 5.0), 4.99, 15, seed=0).num_frames == math.floor(4.99 * 15)   # 74
    assert choreograph(_beats(100, 5.0), 5.0, 29.97, seed=0).num_frames == 149
    assert choreograph(_beats(100, 5.0), 5.0, 30, seed=0, num_frames=123).num_frames == 123


def test_same_seed_same_dance_other_seed_other_moves():
    beats = _beats(110, 30.0)
    a, b = choreograph(beats, 30.0, 30, seed=7), choreograph(beats, 30.0, 30, seed=7)
    assert np.array_equal(a.poses, b.poses) and np.array_equal(a.trans, b.trans)
    plans = [[(s.move.name, s.side, s.beats) for s in plan_dance(beats, 30.0, 30, seed=seed).segments]
             for seed in range(4)]
    assert all(plans[0] != other for other in plans[1:])
    assert not np.allclose(a.poses, choreograph(beats, 30.0, 30, seed=8).poses)
    chosen = {name for plan in plans for name, _, _ in plan}
    assert len(chosen) >= 5                                    # the library gets used, not one move


@pytest.mark.parametrize("motion", DANCES)
def test_speed_and_rotation_limits(motion: SMPLMotion):
    fps = motion.fps
    speed = np.linalg.norm(np.diff(_positions(motion), axis=0), axis=-1) * fps           # (T - 1, 24) m/s
    assert speed.max() <= MAX_JOINT_SPEED
    quats = axis_angle_to_quaternion(torch.from_numpy(motion.poses.astype(np.float64))).numpy()
    step = 2 * np.arccos(np.clip(np.abs((quats[1:] * quats[:-1]).sum(-1)), 0, 1))       # (T - 1, 24) rad
    assert step.max() <= MAX_ANGULAR_SPEED / fps
    assert speed.max() > 1.0                                   # ... and it does dance


@pytest.mark.parametrize("motion", DANCES)
def test_feet_on_the_floor_and_planted_feet_still(motion: SMPLMotion):
    positions = _positions(motion)
    heights = positions[:, FEET, 1]
    assert heights.min() >= -1e-5                              # no foot joint below the floor (float32 output)
    assert heights.min(axis=1).max() <= 0.007                  # the lowest one on it, every frame
    for foot in ((7, 10), (8, 11)):
        up = positions[:, foot, 1].min(axis=1)
        planted = (up[1:] < 0.005) & (up[:-1] < 0.005)
        slide = np.linalg.norm(np.diff(positions[:, foot][:, :, [0, 2]].mean(axis=1), axis=0), axis=-1) * motion.fps
        assert planted.mean() > 0.3
        assert slide[planted].max() <= 0.3 and slide[planted].mean() <= 0.02
    assert np.linalg.norm(motion.trans[:, [0, 2]], axis=1).max() < 0.6   # balanced moves: no wandering off


@pytest.mark.parametrize("bpm", [80, 120, 160])
def test_kinematic_beats_on_the_music_beats(bpm: float):
    """At 60 fps Bailando's motion beats (speed minima) fall on the given beats."""
    beats = _beats(bpm, 15.0, jitter=0.0)
    motion = choreograph(beats, 15.0, 60, seed=1)
    music = np.round(beats * 60).astype(int)
    music = music[(music > 10) & (music < motion.num_frames - 10)]
    motion_beats = motion_beat_frames(_positions(motion))
    assert beat_alignment_score(music, motion_beats) >= 0.85
    nearest = np.abs(motion_beats[:, None] - music[None, :]).min(axis=1)
    inside = (motion_beats > 10) & (motion_beats < motion.num_frames - 10)
    assert np.mean(nearest[inside] <= 3) >= 0.85              # few extra stops between beats


def test_every_move_stops_on_the_beat_and_mirrors():
    for move in MOVES:
        for k in range(move.beats):
            before, at, after = move(np.array([k - 1e-4, k, k + 1e-4]))
            assert np.abs(after - before).max() < 1e-6, (move.name, k)         # zero angular velocity
        keys = move(np.arange(move.beats + 1, dtype=float))
        # every beat interval moves some joint by > 0.3 rad: even motion, so no beat loses its stop
        assert (np.abs(np.diff(keys, axis=0)).max(axis=(1, 2)) > 0.3).all(), move.name
        assert np.allclose(mirror(mirror(keys)), keys)
        assert np.allclose(move(np.array([0.25]), side=-1), mirror(move(np.array([0.25]))))


def test_every_loop_rests_still_on_the_beat_and_repeats_each_beat():
    for loop in LOOPS:
        assert loop.beats == 1
        for k in (0, 1, 5):
            before, at, after = loop(np.array([k - 1e-4, k, k + 1e-4]))
            assert np.abs(after - before).max() < 1e-6, (loop.name, k)       # zero angular velocity on the beat
            assert np.allclose(at, REST), (loop.name, k)                       # at the resting stance
        inside = np.linspace(0.05, 0.95, 19)
        assert np.allclose(loop(inside), loop(inside + 3.0))                   # the same loop every beat
        assert np.abs(loop(np.array([0.5]))[0] - REST).max() > 0.3, loop.name  # and it does move
    assert sorted(loop.level for loop in LOOPS) == [loop.level for loop in LOOPS]


def test_looped_dance_is_a_function_of_the_local_music():
    """``looped``: the pose at a beat depends on that beat's music, not on the song's start or the seed."""
    beats = _beats(120, 20.0, jitter=0.0)                    # on the frame grid: 0.3 s + k * 0.5 s at 30 fps
    energy = np.random.default_rng(0).uniform(0, 1, beats.size)
    full = choreograph(beats, 20.0, 30, energy=energy, seed=0, variety="looped")
    assert np.array_equal(full.poses, choreograph(beats, 20.0, 30, energy=energy, seed=5, variety="looped").poses)
    plan = plan_dance(beats, 20.0, 30, energy=energy, variety="looped")
    assert all(s.beats == 1 for s in plan.segments) and len({s.move.name for s in plan.segments}) >= 3
    # the same music from its 7th beat on: the later poses are the same
    cut = 7
    later = choreograph(beats[cut:] - beats[cut], 20.0 - beats[cut], 30, energy=energy[cut:], seed=0,
                        variety="looped")
    offset = int(round(beats[cut] * 30))
    frames = np.arange(offset + 60, offset + 240)
    assert np.abs(full.poses[frames] - later.poses[frames - offset]).max() < 1e-4
    motion_beats = motion_beat_frames(_positions(full))
    music = np.round(beats * 30).astype(int)
    nearest = np.abs(motion_beats[:, None] - music[None, :]).min(axis=1)
    assert np.mean(nearest <= 1) >= 0.9                      # one stop per beat, on the beat


def test_grounding_keeps_a_planted_foot_still():
    """Tilting both legs (a hip sway) moves the pelvis, not the feet."""
    tilt = 0.15 * np.sin(np.linspace(0, 2 * np.pi, 60))
    pose = Pose(60).leg(1, out=-tilt).leg(-1, out=tilt)
    poses = to_axis_angle(flatten_feet(pose.angles))
    positions = joint_positions(poses, ground(poses))
    assert np.ptp(positions[:, 0, 0]) > 0.15                   # the pelvis sways about 20 cm
    assert np.abs(positions[:, FEET][:, :, [0, 2]] - positions[0, FEET][:, [0, 2]]).max() < 0.005
    assert positions[:, FEET, 1].min() >= 0 and positions[:, FEET, 1].min(axis=1).max() < 0.007


def test_no_beats_fallback_and_zero_intensity():
    motion = choreograph(np.array([]), 6.0, 30, seed=0)
    speed = np.linalg.norm(np.diff(_positions(motion), axis=0), axis=-1).mean(axis=1)
    beats = motion_beat_frames(_positions(motion))
    assert speed.max() > 0.01 and np.median(np.diff(beats)) == pytest.approx(30 * 60 / FALLBACK_BPM, abs=2)
    still = choreograph(_beats(120, 6.0), 6.0, 30, seed=0, intensity=0.0)
    assert np.ptp(still.poses, axis=0).max() < 1e-6
    assert np.allclose(still.poses[0], to_axis_angle(flatten_feet(REST[None]))[0], atol=1e-6)


def test_energy_makes_bigger_moves():
    beats = _beats(100, 20.0)
    quiet = choreograph(beats, 20.0, 30, energy=np.zeros(beats.size), seed=3)
    loud = choreograph(beats, 20.0, 30, energy=np.ones(beats.size), seed=3)
    spread = [np.linalg.norm(np.diff(_positions(m), axis=0), axis=-1).mean() for m in (quiet, loud)]
    assert spread[1] > 1.3 * spread[0]


def test_max_joint_speed_is_the_limit_and_lets_the_loops_reach_their_size():
    """The looped moves are bigger than 5 m/s allows at 120 BPM: at 8 m/s the hands travel further, and no
    joint passes the limit it was given."""
    beats = _beats(120, 12.0, jitter=0.0)
    energy = np.full(beats.size, 0.8)
    spans, peaks = [], []
    for limit in (MAX_JOINT_SPEED, 8.0):
        motion = choreograph(beats, 12.0, 30, energy=energy, variety="looped", max_joint_speed=limit)
        positions = _positions(motion)
        speed = np.linalg.norm(np.diff(positions, axis=0), axis=-1) * 30          # (T - 1, 24) m/s
        assert speed.max() <= limit
        peaks.append(speed.max())
        spans.append(np.ptp(positions[:, [22, 23], 1], axis=0).mean())            # hands' height range, m
    assert peaks[1] > 1.2 * MAX_JOINT_SPEED                                      # the new limit is used ...
    assert spans[1] > 1.3 * spans[0]                                             # ... for bigger moves
    assert spans[1] > 0.3                                                        # hands rise by over 30 cm
    same = choreograph(beats, 12.0, 30, energy=energy, variety="looped")
    assert np.array_equal(same.poses, choreograph(beats, 12.0, 30, energy=energy, variety="looped",
                                                  max_joint_speed=MAX_JOINT_SPEED).poses)
    assert check_joint_speed(8) == 8.0 and isinstance(check_joint_speed(8), float)
    with pytest.raises(InputError, match="got True"):
        check_joint_speed(True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(beat_times=np.array([1.0, 0.5, 2.0])), "strictly increasing"),
    (dict(beat_times=np.array([[0.5, 1.0]])), "1-D"),
    (dict(energy=np.ones(3)), "one value per beat"),
    (dict(intensity=3.0), "intensity"),
    (dict(duration=0.0), "duration"),
    (dict(duration=0.05), "at least 2"),
    (dict(fps=0), "fps"),
    (dict(onsets=np.array([np.nan])), "onsets"),
    (dict(max_joint_speed=0.0), "max_joint_speed"),
    (dict(max_joint_speed=50.0), "max_joint_speed"),
    (dict(max_joint_speed=float("nan")), "max_joint_speed"),
    (dict(max_joint_speed=True), "max_joint_speed"),
    (dict(max_joint_speed="fast"), "max_joint_speed"),
])
def test_errors_name_the_value_and_the_fix(kwargs, match):
    args = dict(beat_times=_beats(120, 4.0), duration=4.0, fps=30)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        choreograph(args.pop("beat_times"), args.pop("duration"), args.pop("fps"), **args)
