"""Rotation conversions in torch, batched over any leading shape, on any device and dtype.

Conventions (shared by the whole pack):

* axis-angle ``(..., 3)``: rotation vector, angle = norm (SMPL/AIST++ poses);
* rotation matrices ``(..., 3, 3)`` act on column vectors: ``p' = R @ p``;
* quaternions ``(..., 4)`` are ``(w, x, y, z)``, scalar first;
* 6D ``(..., 6)`` is the first two **rows** of the matrix (pytorch3d's and EDGE's layout),
  turned back by Gram-Schmidt: ``b1 = n(a1)``, ``b2 = n(a2 - (b1.a2) b1)``, ``b3 = b1 x b2``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` rotation vectors -> ``(..., 3, 3)`` matrices (Rodrigues, exact near zero)."""
    return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` -> ``(..., 4)`` unit quaternions ``(w, x, y, z)``."""
    angle = torch.linalg.vector_norm(axis_angle, dim=-1, keepdim=True)
    half = angle * 0.5
    small = angle < 1e-6
    # sin(a/2)/a, with its Taylor series near 0 so the gradient and value stay finite.
    safe = torch.where(small, torch.ones_like(angle), angle)
    factor = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / safe)
    return torch.cat([torch.cos(half), axis_angle * factor], dim=-1)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` ``(w, x, y, z)`` (normalised here) -> ``(..., 3, 3)``."""
    w, x, y, z = F.normalize(quaternion, dim=-1).unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*quaternion.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 4)`` unit quaternions with ``w >= 0`` (stable branch per element)."""
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate solutions, each accurate where its denominator is largest (pytorch3d's idea).
    q_abs = torch.sqrt(torch.clamp(torch.stack([
        1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1), min=0))
    candidates = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], q_abs[..., 1] ** 2, m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], q_abs[..., 2] ** 2, m[..., 2, 1] + m[..., 1, 2]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 2, 0] + m[..., 0, 2], m[..., 2, 1] + m[..., 1, 2], q_abs[..., 3] ** 2], -1),
    ], dim=-2)                                                    # (..., 4 candidates, 4)
    denom = 2.0 * q_abs.clamp(min=0.1)[..., None]
    best = q_abs.argmax(dim=-1)
    quat = torch.gather(candidates / denom, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = F.normalize(quat, dim=-1)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` -> ``(..., 3)`` rotation vectors with angle in ``[0, pi]``."""
    q = F.normalize(quaternion, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    sin_half = torch.linalg.vector_norm(xyz, dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[..., :1])
    small = sin_half < 1e-6
    factor = torch.where(small, 2.0 + angle * angle / 12.0, angle / torch.where(small, torch.ones_like(sin_half), sin_half))
    return xyz * factor


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 3)``."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 6)``: the first two rows (EDGE / pytorch3d layout)."""
    return matrix[..., :2, :].reshape(*matrix.shape[:-2], 6)


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` -> ``(..., 3, 3)`` by Gram-Schmidt; rows ``(b1, b2, b3)``."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` of ``(..., 4)`` quaternions (``a`` applied after ``b``)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def quaternion_slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from ``a`` (t=0) to ``b`` (t=1) along the short arc.

    ``a``, ``b``: ``(..., 4)``; ``t`` broadcasts against ``(...,)``. Nearly equal quaternions fall
    back to normalised linear interpolation.
    """
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    dot = (a * b).sum(-1, keepdim=True)
    b = torch.where(dot < 0, -b, b)
    dot = dot.abs().clamp(max=1.0)
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    t = t.reshape(*t.shape, 1) if t.ndim else t
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    close = sin_theta < 1e-6
    safe = torch.where(close, torch.ones_like(sin_theta), sin_theta)
    wa = torch.where(close, 1 - t, torch.sin((1 - t) * theta) / safe)
    wb = torch.where(close, t, torch.sin(t * theta) / safe)
    return F.normalize(wa * a + wb * b, dim=-1)
