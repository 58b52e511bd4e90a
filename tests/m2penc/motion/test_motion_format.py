"""SMPLMotion: validation, y/z up conversion (EDGE's convention), slicing and resampling, by value."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2pdance.m2penc.body.rotations import axis_angle_to_quaternion, quaternion_multiply, quaternion_to_matrix
from m2pdance.m2penc.body.skeleton import forward_kinematics
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.motion import SMPLMotion

R_X90 = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])     # +90 degrees about X


def _ok(frames=3):
    return np.zeros((frames, 24, 3)), np.zeros((frames, 3))


# -- validation ------------------------------------------------------------------------------
def test_arrays_are_float32_read_only_copies():
    poses, trans = _ok()
    motion = SMPLMotion(poses, trans, fps=30, betas=[0.1] * 10)
    assert motion.poses.dtype == motion.trans.dtype == motion.betas.dtype == np.float32
    assert (motion.num_frames, motion.duration, motion.fps) == (3, 0.1, 30.0)
    poses[0, 0, 0] = 5.0                                           # the caller's array is not shared
    assert motion.poses[0, 0, 0] == 0
    with pytest.raises(ValueError):
        motion.poses[0, 0, 0] = 1.0


@pytest.mark.parametrize("kwargs, words", [
    (dict(poses=np.zeros((3, 72))), ["(N, 24, 3)", "(3, 72)", "reshape"]),
    (dict(poses=np.zeros((3, 23, 3))), ["(N, 24, 3)", "(3, 23, 3)"]),
    (dict(poses=np.zeros((0, 24, 3)), trans=np.zeros((0, 3))), ["0 frames"]),
    (dict(trans=np.zeros((4, 3))), ["trans", "(3, 3)", "(4, 3)"]),
    (dict(fps=0), ["fps", "positive"]),
    (dict(fps=float("nan")), ["fps"]),
    (dict(fps="fast"), ["fps", "'fast'"]),
    (dict(betas=np.zeros((2, 10))), ["betas", "(2, 10)"]),
    (dict(up_axis="x"), ["up_axis", "'x'"]),
    (dict(poses=[["a"]]), ["poses", "numbers"]),
])
def test_invalid_construction_names_the_value(kwargs, words):
    poses, trans = _ok()
    args = dict(poses=poses, trans=trans, fps=30.0)
    args.update(kwargs)
    with pytest.raises(InputError) as info:
        SMPLMotion(**args)
    for word in words:
        assert word in str(info.value)


def test_non_finite_values_are_located():
    poses, trans = _ok(5)
    poses[3, 7, 1] = np.nan
    poses[4, 2, 0] = np.inf
    with pytest.raises(InputError, match=r"poses has 2 NaN/inf value\(s\), the first at frame 3, joint 7"):
        SMPLMotion(poses, trans, fps=30)
    poses, trans = _ok(5)
    trans[2, 1] = -np.inf
    with pytest.raises(InputError, match=r"trans has 1 NaN/inf value\(s\), the first at frame 2"):
        SMPLMotion(poses, trans, fps=30)
    with pytest.raises(InputError, match="betas"):
        SMPLMotion(*_ok(), fps=30, betas=[np.nan] * 10)


# -- up axis ---------------------------------------------------------------------------------
def test_y_to_z_is_edges_turn(make_motion, rot_err):
    motion = make_motion(frames=6)
    z = motion.to_up_axis("z")
    assert z.up_axis == "z" and z.to_up_axis("z") is z
    np.testing.assert_allclose(z.trans, motion.trans @ R_X90.T, atol=1e-6)
    x, y, zz = motion.trans.T
    np.testing.assert_allclose(z.trans, np.stack([x, -zz, y], 1), atol=0)
    q_x = torch.tensor([0.7071068, 0.7071068, 0.0, 0.0], dtype=torch.float64)
    root = axis_angle_to_quaternion(torch.tensor(motion.poses[:, 0], dtype=torch.float64))
    expected = quaternion_to_matrix(quaternion_multiply(q_x.expand_as(root), root))
    got = quaternion_to_matrix(axis_angle_to_quaternion(torch.tensor(z.poses[:, 0], dtype=torch.float64)))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(z.poses[:, 1:], motion.poses[:, 1:])
    back = z.to_up_axis("y")
    assert rot_err(back.poses, motion.poses) < 1e-6
    np.testing.assert_allclose(back.trans, motion.trans, atol=0)


def test_up_axis_turn_rotates_every_fk_joint(make_motion):
    motion = make_motion(frames=8, seed=3)
    z = motion.to_up_axis("z")
    pos_y, rot_y = forward_kinematics(*motion.to_torch(dtype=torch.float64))
    pos_z, rot_z = forward_kinematics(*z.to_torch(dtype=torch.float64))
    r = torch.tensor(R_X90)
    torch.testing.assert_close(pos_z, pos_y @ r.T, atol=2e-6, rtol=0)
    torch.testing.assert_close(rot_z, r @ rot_y, atol=2e-6, rtol=0)
    pos_back, _ = forward_kinematics(*z.to_up_axis("y").to_torch(dtype=torch.float64))
    torch.testing.assert_close(pos_back, pos_y, atol=2e-6, rtol=0)


# -- slicing and resampling ------------------------------------------------------------------
def test_slice(make_motion):
    motion = make_motion(frames=10, betas=np.ones(10))
    part = motion.slice(2, 5)
    np.testing.assert_array_equal(part.poses, motion.poses[2:5])
    np.testing.assert_array_equal(part.trans, motion.trans[2:5])
    assert part.fps == motion.fps
    np.testing.assert_array_equal(part.betas, motion.betas)
    np.testing.assert_array_equal(motion.slice(-3).trans, motion.trans[-3:])
    with pytest.raises(InputError, match=r"slice\(5, 5\) of a 10-frame motion is empty"):
        motion.slice(5, 5)


def _spinning(fps: float, frames: int):
    """Each joint turns at its own constant rate about its own fixed axis; the root moves at constant velocity."""
    rng = np.random.default_rng(7)
    axes = rng.normal(size=(24, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    rates = rng.uniform(-4.0, 4.0, size=(24, 1))                  # rad/s: up to ~5 rad over the clip
    velocity, start = np.array([0.3, -0.1, 1.2]), np.array([0.5, 0.9, -2.0])

    def at(t: np.ndarray):
        return axes * (rates * t[:, None, None]), start + velocity * t[:, None]
    poses, trans = at(np.arange(frames) / fps)
    return SMPLMotion(poses, trans, fps=fps), at


@pytest.mark.parametrize("new_fps", [25.0, 30.0, 90.0, 7.3])
def test_resample_constant_velocity_is_exact(new_fps, rot_err):
    motion, at = _spinning(60.0, 73)
    out = motion.resample(new_fps)
    last = (motion.num_frames - 1) / motion.fps
    expected_frames = int(math.floor(last * new_fps + 1e-9)) + 1
    assert out.num_frames == expected_frames and out.fps == new_fps
    poses, trans = at(np.arange(expected_frames) / new_fps)
    assert rot_err(out.poses, poses) < 2e-6
    np.testing.assert_allclose(out.trans, trans, atol=2e-6)


def test_60_to_30_fps_is_stride_2(make_motion, rot_err):
    motion = make_motion(frames=121, fps=60.0, seed=4)
    half = motion.resample(30)
    assert half.num_frames == 61
    assert rot_err(half.poses, motion.poses[::2]) < 1e-6
    np.testing.assert_array_equal(half.trans, motion.trans[::2])
    assert make_motion(frames=120, fps=60.0).resample(30).num_frames == 60
    assert motion.resample(60) is motion


def test_resample_single_frame_and_bad_fps(make_motion):
    one = make_motion(frames=1, fps=60.0)
    assert one.resample(30).num_frames == 1
    with pytest.raises(InputError, match="fps must be a positive"):
        one.resample(-5)


def test_to_torch(make_motion):
    poses, trans = make_motion(frames=4).to_torch(dtype=torch.float64)
    assert poses.shape == (4, 24, 3) and trans.shape == (4, 3) and poses.dtype == torch.float64
