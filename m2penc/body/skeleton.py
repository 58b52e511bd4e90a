"""The SMPL 24-joint skeleton as data, and batched forward kinematics on it.

Joint order, parents and the neutral rest-pose bone offsets are SMPL's (as EDGE's ``SMPLSkeleton``
uses them; ``smpl_skeleton.json`` beside this file). Offsets are in metres in SMPL's body frame:
**y up**, the body facing **+z**, its left side at **+x**. Every body model in the pack (the
licensed SMPL through ``smplx`` and the open body) uses this tree and order, so motions, semantic
part indices and keypoint mappings are interchangeable.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from ..errors import InputError
from .rotations import axis_angle_to_matrix

_DATA = json.loads((Path(__file__).with_name("smpl_skeleton.json")).read_text())

#: EDGE's short names, SMPL order (0 root/pelvis ... 23 right hand).
JOINT_NAMES: tuple[str, ...] = tuple(_DATA["joint_names"])
#: SMPL's joint names in the same order (the names Champ's semantic palette uses).
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
NUM_JOINTS = 24
#: Parent of each joint (-1 for the root); parents always precede children.
PARENTS: tuple[int, ...] = tuple(int(p) for p in _DATA["parents"])
#: Joints EDGE uses for foot contact: left/right ankle, left/right toes.
FOOT_JOINTS: tuple[int, ...] = (7, 8, 10, 11)


def rest_offsets(device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(24, 3)`` rest-pose bone vectors (joint minus parent), metres, y up; row 0 is zero."""
    return torch.tensor(_DATA["offsets_m"], device=device, dtype=dtype)


def rest_joints(offsets: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(..., 24, 3)`` rest-pose joint positions from offsets ``(..., 24, 3)`` (default SMPL's)."""
    offsets = rest_offsets() if offsets is None else offsets
    joints = [offsets[..., 0, :]]
    for j in range(1, NUM_JOINTS):
        joints.append(joints[PARENTS[j]] + offsets[..., j, :])
    return torch.stack(joints, dim=-2)


def forward_kinematics(rotations: torch.Tensor, root_translation: torch.Tensor,
                       offsets: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """World joint positions and rotations of posed skeletons.

    Args:
        rotations: ``(..., 24, 3)`` axis-angle local rotations, or ``(..., 24, 3, 3)`` matrices.
        root_translation: ``(..., 3)`` position of joint 0.
        offsets: ``(24, 3)`` or ``(..., 24, 3)`` bone vectors (default: SMPL's neutral rest pose).
    Returns:
        ``(positions (..., 24, 3), world_rotations (..., 24, 3, 3))`` in the dtype and device of
        ``rotations``.
    """
    if rotations.shape[-1] == 3 and rotations.shape[-2] == NUM_JOINTS:
        local = axis_angle_to_matrix(rotations)
    elif rotations.shape[-2:] == (3, 3) and rotations.shape[-3] == NUM_JOINTS:
        local = rotations
    else:
        raise InputError(f"rotations must be (..., 24, 3) axis-angle or (..., 24, 3, 3) matrices, got {tuple(rotations.shape)}")
    if root_translation.shape[-1] != 3 or root_translation.shape[:-1] != local.shape[:-3]:
        raise InputError(f"root_translation must be {(*local.shape[:-3], 3)}, got {tuple(root_translation.shape)}")
    if offsets is None:
        offsets = rest_offsets(local.device, local.dtype)
    offsets = offsets.to(local.device, local.dtype)
    world_rot = [local[..., 0, :, :]]
    positions = [root_translation.to(local.dtype)]
    for j in range(1, NUM_JOINTS):
        parent = PARENTS[j]
        positions.append(positions[parent] + (world_rot[parent] @ offsets[..., j, :, None])[..., 0])
        world_rot.append(world_rot[parent] @ local[..., j, :, :])
    return torch.stack(positions, dim=-2), torch.stack(world_rot, dim=-3)
