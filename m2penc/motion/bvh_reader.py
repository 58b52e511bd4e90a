"""Reading BVH files on the SMPL skeleton back into an :class:`SMPLMotion`.

Accepted: any BVH whose hierarchy contains the 24 SMPL joints, named as in
:data:`SMPL_JOINT_NAMES` (``left_hip``) or EDGE's :data:`JOINT_NAMES` (``lhip``), case-insensitive,
each with SMPL's parent; extra leaf joints are ignored. Each SMPL joint needs 3 rotation channels
in any order (``Zrotation Xrotation Yrotation`` -> ``R = Rz @ Rx @ Ry``, degrees); the root's
``X/Y/Zposition`` channels (centimetres, the pelvis position, root ``OFFSET`` ignored as Blender
does) give ``trans``; without them ``trans`` is the root ``OFFSET``. Position channels on other
joints are ignored. The rotations are read as SMPL local rotations, so the BVH's rest pose must
be SMPL's (true for files from :mod:`.bvh_writer`); bone ``OFFSET`` values are not used.
The result is y up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch

from ..body.rotations import matrix_to_axis_angle
from ..body.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, SMPL_JOINT_NAMES
from ..errors import InputError
from .bvh_writer import CM_PER_M
from .euler import euler_to_matrix
from .format import SMPLMotion

_ALIASES = {n.lower(): j for names in (SMPL_JOINT_NAMES, JOINT_NAMES) for j, n in enumerate(names)}
#: Deepest joint nesting read (SMPL's is 8; full hand rigs stay far below), and the largest file.
MAX_DEPTH = 256
MAX_BVH_BYTES = 1024 ** 3
_CHANNELS = {f"{a}{kind}" for a in "XYZ" for kind in ("position", "rotation")}


@dataclass
class _Joint:
    name: str
    parent: Optional[int]
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    first_column: int = 0


class _Parser:
    """Recursive-descent reader of the HIERARCHY part; tokens carry their line number."""

    def __init__(self, text: str, name: str) -> None:
        self.name = name
        self.tokens = [(tok, n) for n, line in enumerate(text.splitlines(), 1) for tok in line.split()]
        self.pos = 0
        self.joints: list[_Joint] = []
        self.columns = 0

    def fail(self, what: str) -> InputError:
        tok, line = self.tokens[self.pos] if self.pos < len(self.tokens) else ("end of file", "-")
        return InputError(f"{self.name}: malformed BVH at line {line} ({tok!r}): {what}; "
                          f"re-export the file as BVH or check it was not truncated")

    def next(self) -> str:
        if self.pos >= len(self.tokens):
            raise self.fail("unexpected end of file")
        self.pos += 1
        return self.tokens[self.pos - 1][0]

    def expect(self, word: str) -> None:
        if self.next().upper() != word.upper():
            self.pos -= 1
            raise self.fail(f"expected {word!r}")

    def number(self) -> float:
        tok = self.next()
        try:
            return float(tok)
        except ValueError:
            self.pos -= 1
            raise self.fail("expected a number") from None

    def offset(self) -> np.ndarray:
        self.expect("OFFSET")
        return np.array([self.number() for _ in range(3)])

    def end_site(self) -> None:
        self.expect("Site")
        self.expect("{")
        self.offset()
        self.expect("}")

    def joint(self, parent: Optional[int], depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(f"joints nested deeper than {MAX_DEPTH} levels")
        index = len(self.joints)
        joint = _Joint(self.next(), parent, np.zeros(3))
        self.joints.append(joint)
        self.expect("{")
        joint.offset = self.offset()
        self.expect("CHANNELS")
        count = self.next()
        if not (count.isascii() and count.isdigit()):
            self.pos -= 1
            raise self.fail("expected the number of channels")
        for _ in range(int(count)):
            channel = self.next()
            if channel not in _CHANNELS:
                self.pos -= 1
                raise self.fail("unknown channel (expected X/Y/Z position/rotation)")
            joint.channels.append(channel)
        joint.first_column, self.columns = self.columns, self.columns + len(joint.channels)
        while True:
            word = self.next()
            if word.upper() == "JOINT":
                self.joint(index, depth + 1)
            elif word.upper() == "END":
                self.end_site()
            elif word == "}":
                return
            else:
                self.pos -= 1
                raise self.fail("expected JOINT, End Site or '}'")

    def hierarchy(self) -> list[_Joint]:
        self.expect("HIERARCHY")
        self.expect("ROOT")
        self.joint(None)
        return self.joints


def _frames(lines: list[str], columns: int, name: str, first_line: int) -> tuple[np.ndarray, float]:
    """The MOTION section -> ``(Frames, columns)`` values and the frame time."""
    head = [line.split(":", 1) for line in lines[:2]]
    if len(head) < 2 or head[0][0].strip().lower() != "frames" or head[1][0].strip().lower() != "frame time":
        raise InputError(f"{name}: malformed BVH near line {first_line}: MOTION must be followed by "
                         f"'Frames: N' and 'Frame Time: seconds'")
    try:
        count, frame_time = int(head[0][1]), float(head[1][1])
    except (ValueError, IndexError):
        raise InputError(f"{name}: malformed BVH near line {first_line}: bad 'Frames:'/'Frame Time:' value "
                         f"({lines[0].strip()!r}, {lines[1].strip()!r})") from None
    if count < 1:
        raise InputError(f"{name}: the BVH has {count} frames; a motion needs at least one frame")
    rows = [(n, line) for n, line in enumerate(lines[2:], first_line + 2) if line.strip()]
    if len(rows) < count:
        raise InputError(f"{name}: 'Frames: {count}' but only {len(rows)} frame lines; the file is truncated")
    values = np.empty((count, columns))
    for k, (n, line) in enumerate(rows[:count]):
        tokens = line.split()
        if len(tokens) != columns:
            raise InputError(f"{name}: line {n} has {len(tokens)} values, the hierarchy declares {columns} channels")
        try:
            values[k] = [float(t) for t in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise InputError(f"{name}: line {n}: {bad!r} is not a number; fix or re-export the file") from None
    return values, frame_time


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _smpl_joints(joints: list[_Joint], name: str) -> list[_Joint]:
    """The BVH joint for each SMPL joint, in SMPL order; names and parents checked."""
    by_smpl: dict[int, _Joint] = {}
    for joint in joints:
        index = _ALIASES.get(joint.name.lower())
        if index is not None and index not in by_smpl:
            by_smpl[index] = joint
    missing = [SMPL_JOINT_NAMES[j] for j in range(NUM_JOINTS) if j not in by_smpl]
    if missing:
        raise InputError(f"{name}: the BVH lacks SMPL joints {missing} (found {[j.name for j in joints]}); it must "
                         f"name the 24 SMPL joints (e.g. {SMPL_JOINT_NAMES[1]!r} or {JOINT_NAMES[1]!r})")
    for j in range(1, NUM_JOINTS):
        parent = by_smpl[j].parent
        if parent is None or _ALIASES.get(joints[parent].name.lower()) != PARENTS[j]:
            got = "none" if parent is None else joints[parent].name
            raise InputError(f"{name}: joint {by_smpl[j].name!r} has parent {got!r}, SMPL's is "
                             f"{SMPL_JOINT_NAMES[PARENTS[j]]!r}; the BVH is not on the SMPL skeleton")
    return [by_smpl[j] for j in range(NUM_JOINTS)]


def _rotation_columns(joint: _Joint, name: str) -> tuple[list[int], str]:
    cols = [n for n, c in enumerate(joint.channels) if c.endswith("rotation")]
    order = "".join(joint.channels[n][0] for n in cols)
    if len(cols) != 3 or len(set(order)) != 3:
        raise InputError(f"{name}: joint {joint.name!r} has channels {joint.channels}; each SMPL joint needs "
                         f"exactly 3 rotation channels (X, Y and Z)")
    return [joint.first_column + n for n in cols], order


def parse_bvh(text: str, name: str) -> SMPLMotion:
    """BVH text -> y-up :class:`SMPLMotion` (``name`` is the file name used in messages)."""
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if start is None:
        raise InputError(f"{name}: not a BVH file: no MOTION section; expected HIERARCHY ... MOTION ...")
    parser = _Parser("\n".join(lines[:start]), name)
    joints = parser.hierarchy()
    if parser.pos != len(parser.tokens):
        raise parser.fail("unexpected text after the root joint")
    values, frame_time = _frames(lines[start + 1:], parser.columns, name, start + 2)
    if not frame_time > 0:
        raise InputError(f"{name}: Frame Time must be positive seconds, got {frame_time}")
    smpl = _smpl_joints(joints, name)
    matrices = np.empty((len(values), NUM_JOINTS, 3, 3))
    for j, joint in enumerate(smpl):
        cols, order = _rotation_columns(joint, name)
        matrices[:, j] = euler_to_matrix(values[:, cols], order)
    poses = matrix_to_axis_angle(torch.from_numpy(matrices)).numpy()
    root = smpl[0]
    pos_cols = {c[0]: root.first_column + n for n, c in enumerate(root.channels) if c.endswith("position")}
    if set(pos_cols) == set("XYZ"):
        trans = values[:, [pos_cols["X"], pos_cols["Y"], pos_cols["Z"]]] / CM_PER_M
    else:
        trans = np.repeat(root.offset[None] / CM_PER_M, len(values), axis=0)
    fps = 1.0 / frame_time
    if abs(fps - round(fps, 3)) < 1e-6 * fps:   # Frame Time is written rounded: 1/60 -> 60, not 59.9999999
        fps = round(fps, 3)
    return SMPLMotion(poses, trans, fps=fps, up_axis="y")


def read_bvh(path: Union[str, os.PathLike]) -> SMPLMotion:
    """Load the BVH file at ``path`` (see the module docstring for what is accepted)."""
    name = os.path.basename(os.fspath(path))
    try:
        size = os.path.getsize(path)
        if size > MAX_BVH_BYTES:
            raise InputError(f"{name}: {size} bytes is more than the {MAX_BVH_BYTES} a BVH motion may be; "
                             "it was not read")
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        raise InputError(f"motion file not found: {path}") from None
    return parse_bvh(text, name)
