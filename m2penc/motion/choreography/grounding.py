"""Floor contact for the choreographer: the pelvis trajectory that keeps the feet on the floor.

Why: the moves only bend joints. Where the body *is* follows from its legs, as for a real dancer:

* **height** - every frame the pelvis is placed so the lowest foot joint (SMPL ankles and toes,
  joints 7, 8, 10, 11) rests on the floor. A soft minimum (log-sum-exp, temperature
  :data:`SOFT_FLOOR`) keeps the pelvis height smooth when support passes from one foot to the
  other; it is never above the true minimum, so no foot joint goes below the floor and the lowest
  one floats at most ``SOFT_FLOOR * ln 4`` (7 mm) above it.
* **sideways / forward** - a foot within :data:`CONTACT_HEIGHT` of the floor is planted: from one
  frame to the next the pelvis moves by minus the planted feet's motion relative to the pelvis
  (weighted by how firmly each foot is down), so planted feet stay where they are and stepping or
  tilting the legs carries the body along. One foot always touches the floor (it is the lowest),
  so the pelvis is always driven by a support foot; the dancer never jumps.
"""
from __future__ import annotations

import numpy as np
import torch

from ...body.skeleton import forward_kinematics

#: Floor height (metres, y-up world).
FLOOR = 0.0
#: Softness of the lowest-foot minimum (metres).
SOFT_FLOOR = 0.005
#: A foot lower than this above the floor counts as (partly) planted (metres).
CONTACT_HEIGHT = 0.015
#: SMPL foot joints per side: (ankle, toes).
LEFT_FOOT, RIGHT_FOOT = (7, 10), (8, 11)


def joint_positions(poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """FK of SMPL axis-angle ``poses (T, 24, 3)`` at pelvis ``trans (T, 3)`` -> ``(T, 24, 3)`` metres, float64."""
    positions, _ = forward_kinematics(torch.as_tensor(poses, dtype=torch.float64),
                                      torch.as_tensor(trans, dtype=torch.float64))
    return positions.numpy()


def _soft_min(values: np.ndarray, temperature: float) -> np.ndarray:
    """``(T, J) -> (T,)``: ``-tau * log(sum exp(-v / tau))``, never above the row minimum."""
    low = values.min(axis=1)
    return low - temperature * np.log(np.exp(-(values - low[:, None]) / temperature).sum(axis=1))


def _contact_weight(height: np.ndarray) -> np.ndarray:
    """1 on the floor, falling smoothly to 0 at :data:`CONTACT_HEIGHT` and above."""
    return np.clip(1.0 - height / CONTACT_HEIGHT, 0.0, 1.0) ** 2


def ground(poses: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    """The pelvis translation ``(T, 3)`` (y up) that grounds SMPL axis-angle ``poses (T, 24, 3)``.

    The first frame's pelvis is above the world origin; later frames move only as the planted
    feet dictate (see the module docstring).
    """
    local = joint_positions(poses, np.zeros((poses.shape[0], 3)))       # pelvis at the origin
    feet = LEFT_FOOT + RIGHT_FOOT
    height = floor - _soft_min(local[:, feet, 1], SOFT_FLOOR)           # pelvis height per frame
    weights, slides = [], []
    for foot in (LEFT_FOOT, RIGHT_FOOT):
        above = local[:, foot, 1].min(axis=1) + height - floor          # foot height above the floor
        weight = _contact_weight(above)
        weights.append(np.minimum(weight[1:], weight[:-1]))             # planted at both frames
        slides.append(np.diff(local[:, foot][:, :, [0, 2]].mean(axis=1), axis=0))
    weight = np.stack(weights)                                           # (2, T - 1)
    total = weight.sum(axis=0)
    step = -(weight[..., None] * np.stack(slides)).sum(axis=0) / np.maximum(total, 1e-9)[:, None]
    step[total < 1e-9] = 0.0
    ground_xz = np.concatenate([np.zeros((1, 2)), np.cumsum(step, axis=0)])
    return np.stack([ground_xz[:, 0], height, ground_xz[:, 1]], axis=1)
