"""Writing an :class:`SMPLMotion` as BVH, the motion format Blender, Maya and MotionBuilder import.

What we write (and :mod:`.bvh_reader` reads back exactly):

* the 24 SMPL joints named by :data:`SMPL_JOINT_NAMES` (``pelvis`` ... ``right_hand``), children in
  SMPL order; leaves (feet, head, hands) get an ``End Site`` half a bone beyond the joint;
* ``OFFSET`` = SMPL's neutral rest bone vectors in **centimetres** (import into Blender with
  scale 0.01 to get metres); the root ``OFFSET`` is 0 and the root position channels hold the
  pelvis position itself (Blender's reading);
* y up (z-up motions are turned with :meth:`SMPLMotion.to_up_axis` first), the body facing +z;
* channels: root ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``, other joints
  ``Zrotation Xrotation Yrotation``, i.e. ``R = Rz @ Rx @ Ry`` (BVH's left-to-right intrinsic
  order), in degrees; numbers fixed-point with 6 decimals (1e-8 rad, 1e-8 m).

Betas are not stored (BVH has no body shape); the skeleton is always SMPL's neutral one.
"""
from __future__ import annotations

import numpy as np
import torch

from ..body.rotations import axis_angle_to_matrix
from ..body.skeleton import NUM_JOINTS, PARENTS, SMPL_JOINT_NAMES, rest_offsets
from .euler import matrix_to_euler
from .format import SMPLMotion

ROTATION_ORDER = "ZXY"
CM_PER_M = 100.0
_ROT_CHANNELS = " ".join(f"{axis}rotation" for axis in ROTATION_ORDER)
_ROOT_CHANNELS = f"CHANNELS 6 Xposition Yposition Zposition {_ROT_CHANNELS}"
_JOINT_CHANNELS = f"CHANNELS 3 {_ROT_CHANNELS}"


def _children() -> list[list[int]]:
    children: list[list[int]] = [[] for _ in range(NUM_JOINTS)]
    for joint in range(1, NUM_JOINTS):
        children[PARENTS[joint]].append(joint)
    return children


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in values)


def hierarchy_order() -> list[int]:
    """SMPL joint indices in the order the BVH lists them (depth-first), i.e. the MOTION column order."""
    children, order, stack = _children(), [], [0]
    while stack:
        joint = stack.pop()
        order.append(joint)
        stack.extend(reversed(children[joint]))
    return order


def _hierarchy_lines(offsets_cm: np.ndarray) -> list[str]:
    children = _children()
    lines = ["HIERARCHY"]

    def emit(joint: int, depth: int) -> None:
        pad = "\t" * depth
        keyword = "ROOT" if joint == 0 else "JOINT"
        offset = np.zeros(3) if joint == 0 else offsets_cm[joint]
        lines.extend([f"{pad}{keyword} {SMPL_JOINT_NAMES[joint]}", f"{pad}{{", f"{pad}\tOFFSET {_fmt(offset)}",
                      f"{pad}\t{_ROOT_CHANNELS if joint == 0 else _JOINT_CHANNELS}"])
        for child in children[joint]:
            emit(child, depth + 1)
        if not children[joint]:
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {_fmt(0.5 * offsets_cm[joint])}",
                          f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    return lines


def motion_channels(motion: SMPLMotion) -> np.ndarray:
    """``(N, 6 + 3 * 23)`` float64 MOTION rows of a y-up motion: root cm, then ZXY degrees per joint."""
    matrices = axis_angle_to_matrix(torch.from_numpy(motion.poses.astype(np.float64))).numpy()
    euler = matrix_to_euler(matrices, ROTATION_ORDER)                 # (N, 24, 3) degrees
    order = hierarchy_order()
    return np.concatenate([motion.trans.astype(np.float64) * CM_PER_M, euler[:, order].reshape(len(euler), -1)], 1)


def motion_to_bvh(motion: SMPLMotion) -> str:
    """The BVH text of ``motion`` (converted to y up first if it is z up)."""
    motion = motion.to_up_axis("y")
    offsets_cm = rest_offsets(dtype=torch.float64).numpy() * CM_PER_M
    lines = _hierarchy_lines(offsets_cm)
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {1.0 / motion.fps:.12g}"]
    lines += [_fmt(row) for row in motion_channels(motion)]
    return "\n".join(lines) + "\n"
