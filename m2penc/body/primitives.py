"""Closed triangle meshes of swept elliptic capsules: the building block of the open body.

A :class:`Capsule` runs from ``start`` to ``end`` with an elliptic cross-section whose semi-axes
(``width`` along ``width_axis``, ``thickness`` across it) change linearly along the segment, closed
by half-ellipsoid caps of length ``cap_start``/``cap_end``. A zero-length capsule with an ``axis``
is an ellipsoid. The mesh is a latitude/longitude grid with one pole vertex at each cap tip, so it
is closed (every edge in exactly two triangles) and its triangles are counter-clockwise seen from
outside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Capsule:
    """One tapered elliptic capsule (all lengths in metres).

    Attributes:
        start, end: centre-line end points (equal for an ellipsoid, then ``axis`` is required).
        radii_start, radii_end: ``(width, thickness)`` cross-section semi-axes at each end.
        cap_start, cap_end: length of each half-ellipsoid cap along the centre line.
        width_axis: world direction of the ``width`` semi-axis (made orthogonal to the centre line).
        axis: centre-line direction when ``start == end``.
    """

    start: Vec3
    end: Vec3
    radii_start: tuple[float, float]
    radii_end: tuple[float, float]
    cap_start: float
    cap_end: float
    width_axis: Vec3 = (1.0, 0.0, 0.0)
    axis: Optional[Vec3] = None

    def frame(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """``(u, e1, e2, length)``: unit centre-line direction, width and thickness directions
        (``e1 x e2 = u``, right-handed) and the centre-line length, float64."""
        start, end = torch.tensor(self.start, dtype=torch.float64), torch.tensor(self.end, dtype=torch.float64)
        length = float(torch.linalg.vector_norm(end - start))
        if length > 1e-9:
            u = (end - start) / length
        else:
            assert self.axis is not None, "a zero-length capsule (ellipsoid) needs an axis"
            u, length = torch.nn.functional.normalize(torch.tensor(self.axis, dtype=torch.float64), dim=0), 0.0
        w = torch.tensor(self.width_axis, dtype=torch.float64)
        e1 = w - (w @ u) * u
        assert float(torch.linalg.vector_norm(e1)) > 1e-6, "width_axis must not be parallel to the capsule"
        e1 = e1 / torch.linalg.vector_norm(e1)
        return u, e1, torch.linalg.cross(u, e1), length


def _rings(capsule: Capsule, length: float, cap_rings: int, spacing: float) -> list[tuple[float, float, float]]:
    """``(t along the centre line, cross-section scale, taper fraction)`` per ring, start to end."""
    rings = []
    for i in range(1, cap_rings + 1):
        angle = 0.5 * math.pi * i / cap_rings
        rings.append((-capsule.cap_start * math.cos(angle), math.sin(angle), 0.0))
    body = max(1, math.ceil(length / spacing))
    rings += [(length * i / body, 1.0, i / body) for i in range(1, body)]
    # The end cap's equator coincides with the start cap's when the length is zero (ellipsoid).
    first = cap_rings if length > 0 else cap_rings - 1
    for i in range(first, 0, -1):
        angle = 0.5 * math.pi * i / cap_rings
        rings.append((length + capsule.cap_end * math.cos(angle), math.sin(angle), 1.0))
    return rings


def capsule_mesh(capsule: Capsule, segments: int, cap_rings: int, spacing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Triangulate a capsule.

    Args:
        capsule: the shape.
        segments: vertices around each ring (>= 3).
        cap_rings: rings per cap, pole excluded, equator included (>= 1).
        spacing: largest distance between rings along the straight part, metres.
    Returns:
        ``(vertices (N, 3) float64, faces (F, 3) long)`` with
        ``N = segments * rings + 2`` and ``F = 2 * segments * rings``.
    """
    u, e1, e2, length = capsule.frame()
    start = torch.tensor(capsule.start, dtype=torch.float64)
    ra = torch.tensor(capsule.radii_start, dtype=torch.float64)
    rb = torch.tensor(capsule.radii_end, dtype=torch.float64)
    phi = torch.arange(segments, dtype=torch.float64) * (2 * math.pi / segments)
    ring_dirs = torch.stack([torch.cos(phi), torch.sin(phi)], dim=1)                    # (S, 2)
    points = [start - capsule.cap_start * u]
    for t, scale, frac in _rings(capsule, length, cap_rings, spacing):
        radii = scale * (ra + frac * (rb - ra))                                         # (2,)
        section = ring_dirs * radii                                                     # (S, 2)
        points.append(start + t * u + section[:, :1] * e1 + section[:, 1:] * e2)
    points.append(start + (length + capsule.cap_end) * u)
    vertices = torch.cat([p.reshape(-1, 3) for p in points])
    return vertices, _grid_faces(segments, len(points) - 2)


def _grid_faces(segments: int, rings: int) -> torch.Tensor:
    """Faces of a pole / ``rings`` x ``segments`` grid / pole mesh, CCW seen from outside."""
    k = torch.arange(segments)
    k_next = (k + 1) % segments
    last_pole = 1 + rings * segments
    faces = [torch.stack([torch.zeros_like(k), 1 + k_next, 1 + k], dim=1)]             # start pole fan
    for r in range(rings - 1):
        a, b = 1 + r * segments + k, 1 + r * segments + k_next
        c, d = b + segments, a + segments
        faces += [torch.stack([a, b, c], dim=1), torch.stack([a, c, d], dim=1)]
    top = 1 + (rings - 1) * segments
    faces.append(torch.stack([torch.full_like(k, last_pole), top + k, top + k_next], dim=1))  # end pole fan
    return torch.cat(faces)
