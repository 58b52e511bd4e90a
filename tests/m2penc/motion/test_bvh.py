"""BVH: what we write (checked by an independent FK read of the text), round trips, other channel
orders and names, and malformed files."""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch

from m2pdance.m2penc.body.rotations import matrix_to_axis_angle
from m2pdance.m2penc.body.skeleton import JOINT_NAMES, SMPL_JOINT_NAMES, forward_kinematics, rest_offsets
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.motion import SMPLMotion, load_motion, motion_to_bvh, parse_bvh, save_motion
from m2pdance.m2penc.motion.euler import euler_to_matrix, matrix_to_euler


def _independent_fk(text: str) -> np.ndarray:
    """World joint positions (metres, hierarchy order) from BVH text, using scipy's intrinsic Euler."""
    Rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    head, motion = text.split("MOTION")
    joints, stack, pending = [], [], None
    for line in head.splitlines():
        words = line.split()
        if words and words[0] in ("ROOT", "JOINT"):
            pending = {"parent": stack[-1] if stack else None, "offset": None, "channels": []}
        elif words and words[0] == "End":
            pending = "end"
        elif words == ["{"]:
            if pending == "end":
                stack.append("end")
            else:
                joints.append(pending)
                stack.append(len(joints) - 1)
        elif words == ["}"]:
            stack.pop()
        elif words and words[0] == "OFFSET" and stack[-1] != "end":
            joints[stack[-1]]["offset"] = np.array(words[1:], float) / 100
        elif words and words[0] == "CHANNELS":
            joints[stack[-1]]["channels"] = words[2:]
    rows = np.array([line.split() for line in motion.strip().splitlines()[2:]], float)
    out, col = np.zeros((len(rows), len(joints), 3)), 0
    world = [None] * len(joints)
    for j, joint in enumerate(joints):
        ch = joint["channels"]
        values = rows[:, col:col + len(ch)]
        col += len(ch)
        rot_axes = "".join(c[0] for c in ch if c.endswith("rotation"))
        angles = values[:, [n for n, c in enumerate(ch) if c.endswith("rotation")]]
        local = Rotation.from_euler(rot_axes, angles, degrees=True).as_matrix()  # uppercase = intrinsic
        if joint["parent"] is None:
            out[:, j], world[j] = values[:, :3] / 100, local
        else:
            p = joint["parent"]
            out[:, j] = out[:, p] + (world[p] @ joint["offset"][:, None])[..., 0]
            world[j] = world[p] @ local
    return out


def test_written_file_layout(make_motion):
    motion = make_motion(frames=3, fps=60.0)
    text = motion_to_bvh(motion)
    assert text.startswith("HIERARCHY\nROOT pelvis\n{\n\tOFFSET 0.000000 0.000000 0.000000\n"
                           "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n")
    names = re.findall(r"(?:ROOT|JOINT) (\w+)", text)
    assert sorted(names) == sorted(SMPL_JOINT_NAMES) and text.count("End Site") == 5
    assert text.count("CHANNELS 3 Zrotation Xrotation Yrotation") == 23
    assert "\nMOTION\nFrames: 3\nFrame Time: 0.0166666666667\n" in text
    knee = text.split("JOINT left_knee")[1].split("OFFSET ")[1].split("\n")[0]
    np.testing.assert_allclose(np.array(knee.split(), float), rest_offsets(dtype=torch.float64)[4].numpy() * 100,
                               atol=1e-6)                                         # centimetres
    assert len(text.strip().splitlines()[-1].split()) == 6 + 23 * 3 and "e-" not in text.split("MOTION")[1]


def test_independent_fk_of_the_bvh_matches_ours(make_motion):
    motion = make_motion(frames=5, seed=2, up_axis="z")
    text = motion_to_bvh(motion)                         # written y-up
    order = [SMPL_JOINT_NAMES.index(n) for n in re.findall(r"(?:ROOT|JOINT) (\w+)", text)]
    ours, _ = forward_kinematics(*motion.to_up_axis("y").to_torch(dtype=torch.float64))
    np.testing.assert_allclose(_independent_fk(text), ours.numpy()[:, order], atol=1e-6)


def _near_pi_poses(rng, frames):
    axes = rng.normal(size=(frames, 24, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = np.pi - rng.choice([0.0, 1e-7, 1e-4, 1e-2], size=(frames, 24, 1))
    return (axes * angles).astype(np.float32)


@pytest.mark.parametrize("poses_kind", ["random", "near_pi", "gimbal"])
def test_round_trip_within_1e5_rad(tmp_path, make_motion, rot_err, poses_kind):
    motion = make_motion(frames=16, fps=30.0, seed=8, betas=np.ones(10))
    rng = np.random.default_rng(11)
    if poses_kind == "near_pi":
        motion = SMPLMotion(_near_pi_poses(rng, 16), motion.trans, fps=30.0)
    elif poses_kind == "gimbal":                         # X = +-90 deg: ZXY gimbal lock
        mats = euler_to_matrix(rng.uniform(-180, 180, (16, 24, 3)) * [1, 0, 1] + [0, 90, 0], "ZXY")
        mats[::2] = euler_to_matrix(rng.uniform(-180, 180, (8, 24, 3)) * [1, 0, 1] - [0, 90, 0], "ZXY")
        poses = matrix_to_axis_angle(torch.from_numpy(mats)).numpy()
        motion = SMPLMotion(poses, motion.trans, fps=30.0)
    back = load_motion(save_motion(motion, tmp_path / "m.bvh"))
    assert rot_err(back.poses, motion.poses) < 1e-5
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-7)
    assert (back.fps, back.up_axis, back.betas) == (30.0, "y", None)


def test_z_up_motion_comes_back_y_up(tmp_path, make_motion, rot_err):
    motion = make_motion(frames=6, up_axis="z", seed=9)
    back = load_motion(save_motion(motion, tmp_path / "z.bvh")).to_up_axis("z")
    assert rot_err(back.poses, motion.poses) < 1e-5
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-6)


def _rewrite(text: str, order: str, names: tuple[str, ...]) -> str:
    """The same motion with every joint's rotation channels in ``order`` and joints renamed."""
    head, motion = text.split("MOTION\n")
    lines = motion.splitlines()
    rows = np.array([l.split() for l in lines[2:]], float)
    angles = rows[:, 6:].reshape(len(rows), -1, 3)
    root_rot = rows[:, 3:6]
    new = matrix_to_euler(euler_to_matrix(np.concatenate([root_rot[:, None], angles], 1), "ZXY"), order)
    rows = np.concatenate([rows[:, :3], new.reshape(len(rows), -1)], 1)
    channels = " ".join(f"{a}rotation" for a in order)
    head = head.replace("Zrotation Xrotation Yrotation", channels)
    for smpl, other in zip(SMPL_JOINT_NAMES, names):
        head = re.sub(rf"(ROOT|JOINT) {smpl}\n", rf"\1 {other.upper()}\n", head)
    body = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in rows)
    return f"{head}MOTION\n{lines[0]}\n{lines[1]}\n{body}\n"


@pytest.mark.parametrize("order", ["".join(p) for p in itertools.permutations("XYZ")])
def test_any_rotation_order_and_edge_names(make_motion, rot_err, order):
    motion = make_motion(frames=4, seed=12)
    text = _rewrite(motion_to_bvh(motion), order, JOINT_NAMES)
    assert "JOINT LHIP" in text
    back = parse_bvh(text, "other.bvh")
    assert rot_err(back.poses, motion.poses) < 1e-5
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-7)


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace("JOINT left_elbow", "JOINT l_elbow"), ["lacks SMPL joints ['left_elbow']", "found"]),
    (lambda t: t.replace("JOINT left_knee", "JOINT left_knee_x"), ["['left_knee']"]),
    (lambda t: t.replace("ROOT pelvis", "ROOT hips"), ["['pelvis']"]),
    (lambda t: t.replace("JOINT left_hip", "JOINT right_hip", 1).replace("JOINT right_hip\n\t{\n\t\tOFFSET -",
                                                                         "JOINT left_hip\n\t{\n\t\tOFFSET -"),
     ["has parent", "SMPL's is"]),
    (lambda t: t.replace("OFFSET 0.000000", "OFFSET 0.0abc", 1), ["line 4", "'0.0abc'", "expected a number"]),
    (lambda t: t.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation", 1), ["unknown channel"]),
    (lambda t: t.rsplit("\n", 2)[0] + "\n", ["'Frames: 3' but only 2 frame lines", "truncated"]),
    (lambda t: t[: t.rindex("\n", 0, -1)] + "\n1.0 nan? 2\n", ["declares 75 channels"]),
    (lambda t: t.replace("Frames: 3", "Frames: 0"), ["0 frames"]),
    (lambda t: t.replace("Frame Time: 0.0", "Frame Time: -0.0"), ["Frame Time must be positive"]),
    (lambda t: t.split("MOTION")[0], ["no MOTION section"]),
    (lambda t: t.replace("\nMOTION", "\n}\nMOTION", 1), ["unexpected text after the root joint"]),
])
def test_malformed_bvh_names_the_file(tmp_path, make_motion, edit, words):
    path = tmp_path / "broken_dance.bvh"
    path.write_text(edit(motion_to_bvh(make_motion(frames=3))))
    with pytest.raises(InputError) as info:
        load_motion(path)
    for word in ["broken_dance.bvh"] + words:
        assert word in str(info.value)


def test_bad_number_in_motion_line(tmp_path, make_motion):
    text = motion_to_bvh(make_motion(frames=2))
    lines = text.splitlines()
    values = lines[-1].split()
    values[10] = "1.2.3"
    lines[-1] = " ".join(values)
    path = tmp_path / "numbers.bvh"
    path.write_text("\n".join(lines))
    with pytest.raises(InputError, match=rf"numbers.bvh: line {len(lines)}: '1.2.3' is not a number"):
        load_motion(path)


def test_hostile_hierarchies_are_input_errors(tmp_path, make_motion, monkeypatch):
    from m2pdance.m2penc.motion import bvh_reader

    deep = ("HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 0\n" + "JOINT j\n{\nOFFSET 0 0 0\nCHANNELS 0\n" * 3000
            + "}\n" * 3001 + "MOTION\nFrames: 1\nFrame Time: 0.1\n\n")
    (tmp_path / "deep.bvh").write_text(deep)
    with pytest.raises(InputError, match=r"deep\.bvh: malformed BVH .*nested deeper than 256 levels"):
        load_motion(tmp_path / "deep.bvh")
    text = motion_to_bvh(make_motion(frames=2))
    (tmp_path / "digit.bvh").write_text(text.replace("CHANNELS 3 Zrotation", "CHANNELS \u00b3 Zrotation", 1))
    with pytest.raises(InputError, match=r"digit\.bvh: .*expected the number of channels"):
        load_motion(tmp_path / "digit.bvh")
    (tmp_path / "big.bvh").write_text(text)
    monkeypatch.setattr(bvh_reader, "MAX_BVH_BYTES", 100)
    with pytest.raises(InputError, match=r"big\.bvh: \d+ bytes is more than the 100 a BVH motion may be"):
        load_motion(tmp_path / "big.bvh")
