"""Euler angles in BVH's convention, for any order of the three axes (numpy, float64).

A BVH joint with channels ``Zrotation Xrotation Yrotation`` and values ``(a, b, c)`` degrees has
the local rotation ``R = Rz(a) @ Rx(b) @ Ry(c)``: channels are applied left to right as
rotations about the joint's moving (intrinsic) axes, matrices act on column vectors. ``order``
below is that channel order as a string of axis letters, e.g. ``"ZXY"``.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError

_AXES = {"X": 0, "Y": 1, "Z": 2}


def _axes(order: str) -> tuple[int, int, int]:
    order = order.upper()
    if len(order) != 3 or set(order) != set("XYZ"):
        raise InputError(f"rotation order must use X, Y and Z once each (e.g. 'ZXY'), got {order!r}")
    return _AXES[order[0]], _AXES[order[1]], _AXES[order[2]]


def axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """``(...,)`` angles in radians about axis 0/1/2 (X/Y/Z) -> ``(..., 3, 3)`` matrices."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(np.shape(angle) + (3, 3))
    i, j = (axis + 1) % 3, (axis + 2) % 3
    out[..., axis, axis] = 1.0
    out[..., i, i], out[..., i, j] = c, -s
    out[..., j, i], out[..., j, j] = s, c
    return out


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """``(..., 3)`` degrees, in channel order -> ``(..., 3, 3)``; ``R = R_o0 @ R_o1 @ R_o2``."""
    axes = _axes(order)
    radians = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    mats = [axis_rotation(axis, radians[..., n]) for n, axis in enumerate(axes)]
    return mats[0] @ mats[1] @ mats[2]


def matrix_to_euler(matrix: np.ndarray, order: str) -> np.ndarray:
    """``(..., 3, 3)`` -> ``(..., 3)`` degrees in channel order, the inverse of :func:`euler_to_matrix`.

    The middle angle is in ``[-90, 90]``, the others in ``(-180, 180]``. At gimbal lock (middle
    angle +-90) the last angle is set to 0 and the first one carries the whole twist.
    """
    i, j, k = _axes(order)
    sign = 1.0 if (j - i) % 3 == 1 else -1.0          # +1 for cyclic orders (XYZ, YZX, ZXY)
    m = np.asarray(matrix, dtype=np.float64)
    cos_b = np.hypot(m[..., i, i], m[..., i, j])
    b = np.arctan2(sign * m[..., i, k], cos_b)
    a = np.arctan2(-sign * m[..., j, k], m[..., k, k])
    c = np.arctan2(-sign * m[..., i, j], m[..., i, i])
    locked = cos_b < 1e-9
    if locked.any():
        # R = R_i(a) @ R_j(+-90): its j column is R_i(a)'s, so a = atan2(R[k, j], R[j, j]) * sign.
        a = np.where(locked, np.arctan2(sign * m[..., k, j], m[..., j, j]), a)
        c = np.where(locked, 0.0, c)
    return np.rad2deg(np.stack([a, b, c], axis=-1))
