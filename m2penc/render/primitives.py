"""Analytic meshes for tests, benchmarks and sanity renders: UV spheres, boxes, and a "bone body".

All meshes are closed, with faces counter-clockwise seen from outside (outward normal
``(v1 - v0) x (v2 - v0)``), the body model's convention. The bone body puts one ellipsoid on every
bone of the SMPL skeleton (plus a head sphere), labelled with the SMPL part of the bone's parent
joint, so it has body-like size, coverage and per-part labels without any body-model download;
:class:`BoneBodyModel` skins it rigidly to the skeleton behind the body-model interface.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..body.skeleton import NUM_JOINTS, PARENTS, forward_kinematics, rest_joints


@dataclass
class Mesh:
    """A triangle mesh: ``vertices (V, 3)`` float32, ``faces (F, 3)`` long, ``labels (V,)`` long."""

    vertices: torch.Tensor
    faces: torch.Tensor
    labels: torch.Tensor


def uv_sphere(center: Sequence[float] = (0.0, 0.0, 0.0), radius: float = 1.0,
              rings: int = 32, segments: int = 64, label: int = 0) -> Mesh:
    """Sphere with ``rings`` latitude bands and ``segments`` longitudes; poles at +-y."""
    theta = torch.arange(1, rings, dtype=torch.float64) * math.pi / rings        # polar angle from +y
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments
    st, ct = torch.sin(theta)[:, None], torch.cos(theta)[:, None]
    ring = torch.stack([st * torch.sin(phi), ct.expand(-1, segments), st * torch.cos(phi)], -1).reshape(-1, 3)
    verts = torch.cat([torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), ring,
                       torch.tensor([[0.0, -1.0, 0.0]], dtype=torch.float64)])
    faces = []
    s = segments
    for j in range(s):                                                         # caps
        faces.append([0, 1 + j, 1 + (j + 1) % s])
        base, last = 1 + (rings - 2) * s, verts.shape[0] - 1
        faces.append([last, base + (j + 1) % s, base + j])
    for i in range(rings - 2):                                                 # quads between rings
        for j in range(s):
            a, b = 1 + i * s + j, 1 + i * s + (j + 1) % s
            faces += [[a, a + s, b], [b, a + s, b + s]]
    vertices = (verts * radius + torch.tensor(center, dtype=torch.float64)).float()
    return Mesh(vertices, torch.tensor(faces), torch.full((verts.shape[0],), label))


def box(center: Sequence[float] = (0.0, 0.0, 0.0), size: Sequence[float] = (1.0, 1.0, 1.0), label: int = 0) -> Mesh:
    """Axis-aligned box with 4 own vertices per side (24 vertices, 12 faces), so smooth vertex normals
    equal the flat face normals."""
    signs = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=torch.float32)
    corners = signs * torch.tensor(size) / 2 + torch.tensor(center)
    # Corner index = 4*[x>0] + 2*[y>0] + [z>0]; each side listed counter-clockwise from outside.
    quads = torch.tensor([(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    quad = torch.arange(24).view(6, 4)
    faces = torch.cat([quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]])
    return Mesh(corners[quads.reshape(-1)], faces, torch.full((24,), label))


def merge(meshes: Sequence[Mesh]) -> Mesh:
    """One mesh from several (faces re-indexed)."""
    offsets = torch.tensor([0] + [m.vertices.shape[0] for m in meshes[:-1]]).cumsum(0)
    return Mesh(torch.cat([m.vertices for m in meshes]),
                torch.cat([m.faces + o for m, o in zip(meshes, offsets.tolist())]),
                torch.cat([m.labels for m in meshes]))


def _bone_ellipsoid(a: torch.Tensor, b: torch.Tensor, thickness: float, label: int, rings: int, segments: int) -> Mesh:
    """Unit sphere stretched along the bone ``a -> b`` (10 % overlap at each end)."""
    unit = uv_sphere(rings=rings, segments=segments, label=label)
    axis = b - a
    length = float(axis.norm()) * 1.2 / 2
    y = axis / axis.norm()
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(y[0])) < 0.9 else torch.tensor([0.0, 0.0, 1.0])
    x = torch.linalg.cross(helper, y)
    x = x / x.norm()
    z = torch.linalg.cross(x, y)
    scaled = unit.vertices * torch.tensor([thickness, length, thickness])
    unit.vertices = scaled @ torch.stack([x, y, z]) + (a + b) / 2
    return unit


def bone_body(joints: torch.Tensor, thickness: float = 0.06, rings: int = 12, segments: int = 24) -> Mesh:
    """Ellipsoids on the 23 bones of ``joints (24, 3)`` plus a 0.11 m head sphere at joint 15.

    Default tessellation: ~6.3k vertices, ~12.7k faces (SMPL has 6890 / 13776).
    """
    parts = [_bone_ellipsoid(joints[PARENTS[j]], joints[j], thickness * (1.6 if j in (3, 6, 9) else 1.0),
                             PARENTS[j], rings, segments) for j in range(1, NUM_JOINTS)]
    parts.append(uv_sphere(joints[15].tolist(), 0.11, rings, segments, label=15))
    return merge(parts)


@dataclass
class BodyOutput:
    """``vertices (B, V, 3)`` and ``joints (B, 24, 3)``, metres, y-up world."""

    vertices: torch.Tensor
    joints: torch.Tensor


class BoneBodyModel(torch.nn.Module):
    """:func:`bone_body` on SMPL's rest skeleton, rigidly skinned: each vertex follows its part's joint.

    Same interface as the pack's body models (``faces``, ``lbs_weights``, ``part_labels``,
    ``landmarks``, ``forward(poses, trans)``), for tests and benchmarks that must not need one.
    """

    def __init__(self, rings: int = 12, segments: int = 24) -> None:
        super().__init__()
        joints = rest_joints()
        mesh = bone_body(joints, rings=rings, segments=segments)
        self.register_buffer("rest_vertices", mesh.vertices)
        self.register_buffer("rest_joints", joints)
        self.register_buffer("faces", mesh.faces)
        self.register_buffer("part_labels", mesh.labels)
        self.register_buffer("lbs_weights", torch.nn.functional.one_hot(mesh.labels, NUM_JOINTS).float())
        head = (mesh.labels == 15).nonzero().squeeze(1)
        directions = {"nose": (0, 0, 1), "right_eye": (-0.3, 0.3, 1), "left_eye": (0.3, 0.3, 1),
                      "right_ear": (-1, 0, 0), "left_ear": (1, 0, 0)}
        offsets = mesh.vertices[head] - joints[15]
        self.landmarks = {name: int(head[(offsets @ torch.tensor(d, dtype=torch.float32)).argmax()])
                          for name, d in directions.items()}

    def forward(self, poses: torch.Tensor, trans: torch.Tensor, betas: Optional[torch.Tensor] = None) -> BodyOutput:
        """``poses (B, 24, 3)`` axis-angle, ``trans (B, 3)`` -> posed vertices and joints (``betas`` ignored)."""
        joints, rotations = forward_kinematics(poses, trans)
        rot = rotations[:, self.part_labels]                                   # (B, V, 3, 3)
        local = (self.rest_vertices - self.rest_joints[self.part_labels])[None, :, :, None]
        vertices = (rot @ local)[..., 0] + joints[:, self.part_labels]
        return BodyOutput(vertices, joints)
