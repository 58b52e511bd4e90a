"""EDGE's 151-d frames <-> SMPLMotion, foot contacts, and long-form stitching (REPORT.md sections 3, 4, 8).

Rotations are compared as matrices (an axis-angle ``v`` and ``v (1 - 2 pi / |v|)`` are one rotation).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from m2pdance.m2penc.body.rotations import axis_angle_to_matrix, matrix_to_rotation_6d
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.motion import SMPLMotion
from m2pdance.m2penc.motion.edge.representation import (
    FRAME_DIM, _edge_quaternion_to_axis_angle, _edge_quaternions, foot_contacts, frames_to_motion, motion_to_frames, stitch_windows,
    window_weights, windows_to_motion,
)

REPO = Path(__file__).resolve().parents[4]
VECTORS = Path(os.environ.get("M2P_EDGE_VECTORS", REPO.parent / "shared" / "spec" / "edge"))


def matrices(aa) -> torch.Tensor:
    aa = aa.detach().double() if isinstance(aa, torch.Tensor) else torch.tensor(np.array(aa), dtype=torch.float64)
    return axis_angle_to_matrix(aa)


def assert_same_rotations(a, b, atol: float = 1e-5) -> None:
    torch.testing.assert_close(matrices(a), matrices(b), atol=atol, rtol=0)


def frames_from(root: torch.Tensor, aa: torch.Tensor) -> torch.Tensor:
    """``(T, 151)`` frames with zero contacts from root ``(T, 3)`` and axis-angles ``(T, 24, 3)``."""
    rot6d = matrix_to_rotation_6d(axis_angle_to_matrix(aa.double())).reshape(len(root), -1)
    return torch.cat([torch.zeros(len(root), 4, dtype=torch.float64), root.double(), rot6d], -1).float()


def test_frame_layout_and_round_trip(make_motion, rot_err):
    motion = make_motion(frames=12, up_axis="z")
    frames = motion_to_frames(motion)
    assert frames.shape == (12, FRAME_DIM) and frames.dtype == torch.float32
    torch.testing.assert_close(frames[:, 4:7], torch.tensor(motion.trans))
    back = frames_to_motion(frames)
    assert back.up_axis == "z" and back.fps == 30 and back.num_frames == 12
    assert rot_err(back.poses, motion.poses) < 1e-5
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-6)
    torch.testing.assert_close(motion_to_frames(back), frames, atol=1e-5, rtol=0)


def test_y_up_and_60fps_motions_are_turned_and_resampled(make_motion):
    motion = make_motion(frames=20, fps=60.0, up_axis="y")
    frames = motion_to_frames(motion)
    expected = motion_to_frames(motion.to_up_axis("z").resample(30.0))
    assert frames.shape == (10, FRAME_DIM)
    torch.testing.assert_close(frames, expected)


def test_6d_decoding_matches_edge_vectors():
    path = VECTORS / "tiny_edge.safetensors"
    if not path.is_file():
        pytest.skip(f"EDGE test vectors not found at {path} (set M2P_EDGE_VECTORS)")
    t = load_file(str(path))
    six, expected = t["rot6d.in"].reshape(-1, 24, 6), t["rot6d.axis_angle"].reshape(-1, 24, 3)
    frames = torch.cat([torch.zeros(len(six), 7), six.reshape(len(six), -1)], -1)
    assert_same_rotations(frames_to_motion(frames).poses, expected, atol=1e-4)


def test_contacts_of_a_planted_and_a_sliding_foot():
    frames = 10
    poses = torch.zeros(frames, 24, 3, dtype=torch.float64)
    poses[:, 2, 0] = 0.1 * torch.arange(frames)           # right hip swings 0.1 rad/frame: right foot moves
    root = torch.zeros(frames, 3, dtype=torch.float64)    # left leg untouched: left foot planted
    contacts = foot_contacts(poses, root)
    assert torch.equal(contacts[:, [0, 2]], torch.ones(frames, 2))               # left ankle, left toes
    assert torch.equal(contacts[:-1, [1, 3]], torch.zeros(frames - 1, 2))        # right ankle, right toes
    assert torch.equal(contacts[-1], torch.ones(4))                              # last frame is always 1
    motion = SMPLMotion(poses.numpy(), root.numpy() + [[0.0, 0.0, 0.9]], fps=30.0, up_axis="z")
    torch.testing.assert_close(motion_to_frames(motion)[:, :4], contacts.float())


def test_contact_threshold_is_one_centimetre_per_frame():
    root = torch.zeros(5, 3, dtype=torch.float64)
    slow, fast = root.clone(), root.clone()
    slow[:, 0] = 0.009 * torch.arange(5)
    fast[:, 0] = 0.011 * torch.arange(5)
    rest = torch.zeros(5, 24, 3, dtype=torch.float64)
    assert torch.equal(foot_contacts(rest, slow), torch.ones(5, 4))
    assert torch.equal(foot_contacts(rest, fast)[:-1], torch.zeros(4, 4))


def test_root_crossfade_weights_sum_to_one():
    for count, window in ((1, 150), (2, 150), (5, 150), (4, 6)):
        weights, half = window_weights(count, window), window // 2
        total = torch.zeros(window + half * (count - 1), dtype=torch.float64)
        for i in range(count):
            total[i * half:i * half + window] += weights[i]
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-12, rtol=0)
    w = window_weights(3, 150)
    assert w[1, 0] == 0 and w[1, 74] == 1 and w[1, 75] == 1 and w[1, 149] == 0   # ramps include 0 and 1


def test_windows_that_agree_in_the_overlaps_reproduce_the_sequence(make_motion, rot_err):
    count, window, half = 4, 30, 15
    motion = make_motion(frames=window + half * (count - 1), up_axis="z", seed=3)
    sequence = motion_to_frames(motion)
    windows = sequence.unfold(0, window, half).transpose(1, 2)                  # (B, L, 151)
    root, poses = stitch_windows(windows)
    assert root.shape == (75, 3) and poses.shape == (75, 24, 3)
    torch.testing.assert_close(root, torch.tensor(motion.trans), atol=1e-5, rtol=0)
    assert rot_err(poses.numpy(), motion.poses) < 1e-5
    stitched = windows_to_motion(windows)
    assert stitched.up_axis == "z" and stitched.num_frames == 75


def test_overlaps_crossfade_roots_and_slerp_rotations():
    window, half = 8, 4
    root = torch.stack([torch.zeros(window, 3), torch.ones(window, 3)])
    aa = torch.zeros(2, window, 24, 3)
    aa[1, :, 5, 2] = 2.0                                   # window 1: joint 5 turned 2 rad about z
    windows = torch.stack([frames_from(root[i], aa[i]) for i in range(2)])
    out_root, poses = stitch_windows(windows)
    s = torch.linspace(0, 1, half)
    torch.testing.assert_close(out_root[half:window, 0], s, atol=1e-6, rtol=0)  # 0 * (1 - s) + 1 * s
    torch.testing.assert_close(poses[half:window, 5, 2], 2.0 * s, atol=1e-5, rtol=0)   # slerp: angle linear in s
    torch.testing.assert_close(poses[window:, 5, 2], torch.full((half,), 2.0), atol=1e-5, rtol=0)


def test_lerp_branch_is_not_renormalized_like_edge():
    """Close rotations (1 - dot < 0.01) are lerped; the angle comes out scaled by the quaternion norm."""
    window, half = 6, 3                                     # overlap weights s = (0, 0.5, 1)
    aa = torch.zeros(2, window, 24, 3)
    aa[0, :, 1, 2], aa[1, :, 1, 2] = 1.0, 1.2              # quaternion dot = cos(0.1) = 0.995: lerp branch
    windows = torch.stack([frames_from(torch.zeros(window, 3), aa[i]) for i in range(2)])
    _, poses = stitch_windows(windows)
    norm = math.cos(0.05)                                   # |(q(1.0) + q(1.2)) / 2|
    assert poses[half + 1, 1, 2].item() == pytest.approx(1.1 * norm, abs=1e-6)
    assert 1.1 - poses[half + 1, 1, 2].item() > 1e-3        # visibly shorter than the normalized 1.1


def test_unnormalized_conversion_of_a_negative_w_quaternion_is_the_same_rotation():
    q = torch.tensor([[-0.3, 0.5, -0.2, 0.78]], dtype=torch.float64)
    q = q / q.norm()
    aa = _edge_quaternion_to_axis_angle(q)
    assert math.pi < aa.norm().item() < 2 * math.pi                             # pytorch3d 0.7.2's range
    assert_same_rotations(aa, _edge_quaternion_to_axis_angle(-q), atol=1e-9)


def test_quaternion_signs_are_pytorch3d_072s():
    """EDGE's quaternions (pytorch3d 0.7.2 matrix_to_quaternion): the largest |component| is positive, w may be < 0."""
    rot = axis_angle_to_matrix(torch.randn(1000, 3, dtype=torch.float64) * 2)
    quats = _edge_quaternions(rot)
    largest = quats.gather(-1, quats.abs().argmax(-1, keepdim=True))
    assert (largest > 0).all() and (quats[:, 0] < 0).any()
    torch.testing.assert_close(axis_angle_to_matrix(_edge_quaternion_to_axis_angle(quats)), rot, atol=1e-9, rtol=0)


def test_single_window_and_bad_inputs():
    frames = frames_from(torch.randn(6, 3), torch.randn(6, 24, 3))
    root, poses = stitch_windows(frames[None])
    torch.testing.assert_close(root, frames[:, 4:7])
    assert_same_rotations(poses, frames_to_motion(frames).poses)
    with pytest.raises(InputError, match=r"\(B, L, 151\)"):
        stitch_windows(frames)
    with pytest.raises(InputError, match="even"):
        stitch_windows(torch.zeros(2, 5, FRAME_DIM))
    with pytest.raises(InputError, match="NaN"):
        frames_to_motion(torch.full((3, FRAME_DIM), float("nan")))
    with pytest.raises(InputError, match=r"\(T, 151\)"):
        frames_to_motion(torch.zeros(3, 150))
