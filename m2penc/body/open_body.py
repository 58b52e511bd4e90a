"""The open body: an SMPL-compatible skinned mesh that needs no files (the default body).

It is NOT SMPL and holds nothing of SMPL's data. It shares only SMPL's public skeleton facts
(:mod:`.skeleton`: the 24-joint tree, joint order and neutral rest offsets), so any SMPL motion
poses it, its joints match :func:`.skeleton.forward_kinematics` exactly, and its part labels are
SMPL part indices, which is what Champ's semantic map and the keypoint renderer need.

How it is built (deterministically, in float64, on the CPU, at construction):

* one closed capsule mesh per SMPL part (:mod:`.open_body_parts`): elliptic tapered capsules for
  the limbs, torso sections, hands and feet, an ellipsoid head. The body is the union of the 24
  closed, outward-oriented meshes, which overlap at the joints (no stitching, so nothing can tear);
* skinning: a part's vertices follow its own joint, except within a band around each joint it
  meets, where up to :data:`JOINT_SHARE` of the weight moves smoothly (smoothstep) to the joint on
  the other side, so elbows and knees bend smoothly (where two bands overlap, the shares shrink so
  the owner keeps half). Rows sum to 1 and the owner always has the largest weight, so
  ``part_labels`` (argmax) is the part a vertex belongs to;
* landmarks (nose, eyes, ears) are the head vertices nearest fixed points on the head ellipsoid.

``detail`` scales the tessellation: 1.0 gives ~5k vertices and ~10k faces.

Shape: there is no shape space. ``betas`` is accepted for interface compatibility, shape-checked
and ignored: every open body has the same neutral shape (bone lengths are SMPL's neutral ones).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from ..errors import InputError
from .model import BodyModel, BodyOutput, linear_blend_skinning
from .open_body_parts import Blend, PartSpec, part_specs
from .primitives import capsule_mesh
from .skeleton import NUM_JOINTS, forward_kinematics, rest_joints, rest_offsets

#: Largest weight a part's vertex gives to the joint across a joint it meets (< 0.5: owner wins).
JOINT_SHARE = 0.45
#: Landmark targets on the head ellipsoid: (x, y, z) fractions of its semi-axes from its centre.
_LANDMARK_TARGETS = {
    "nose": (0.0, -0.15, 1.0), "right_eye": (-0.4, 0.15, 0.9), "left_eye": (0.4, 0.15, 0.9),
    "right_ear": (-1.0, 0.0, -0.05), "left_ear": (1.0, 0.0, -0.05),
}


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _blend_share(vertices: torch.Tensor, blend: Blend) -> torch.Tensor:
    """``(N,)`` weight the vertices give to ``blend.partner``, in ``[0, JOINT_SHARE]``."""
    center = torch.tensor(blend.center, dtype=vertices.dtype)
    axis = torch.tensor(blend.axis, dtype=vertices.dtype)
    along = (vertices - center) @ axis
    if blend.side == "start":
        share = 1.0 - _smoothstep(along / blend.band)
    else:
        share = _smoothstep(1.0 + along / blend.band)
    if blend.reach is not None:
        radial = torch.linalg.vector_norm(vertices - center - along[:, None] * axis, dim=1)
        share = share * (1.0 - _smoothstep((radial - blend.reach) / 0.03))
    return JOINT_SHARE * share


def skin_weights(vertices: torch.Tensor, part: PartSpec) -> torch.Tensor:
    """``(N, 24)`` skinning weights of one part's vertices ``(N, 3)``: rows sum to 1."""
    weights = torch.zeros(vertices.shape[0], NUM_JOINTS, dtype=vertices.dtype)
    for blend in part.blends:
        weights[:, blend.partner] += _blend_share(vertices, blend)
    # Where two bands overlap (short parts), shrink the shares so the owner keeps half.
    shared = weights.sum(dim=1, keepdim=True)
    weights = weights * (0.5 / shared.clamp(min=0.5))
    weights[:, part.owner] = 1.0 - weights.sum(dim=1)
    return weights


def _part_mesh(part: PartSpec, detail: float) -> tuple[torch.Tensor, torch.Tensor]:
    scale = detail * part.detail
    segments = max(6, 2 * round(8 * scale))
    cap_rings = max(2, round(4 * scale))
    return capsule_mesh(part.capsule, segments, cap_rings, spacing=0.035 / scale)


def _landmarks(vertices: torch.Tensor, head_range: range, head: PartSpec) -> dict[str, int]:
    """Head-vertex indices nearest to the landmark targets on the head ellipsoid."""
    capsule = head.capsule
    center = torch.tensor(capsule.start, dtype=vertices.dtype)
    semi = torch.tensor([capsule.radii_start[0], capsule.cap_end, capsule.radii_start[1]], dtype=vertices.dtype)
    head_vertices = vertices[head_range.start:head_range.stop]
    found = {}
    for name, fractions in _LANDMARK_TARGETS.items():
        target = center + torch.tensor(fractions, dtype=vertices.dtype) * semi
        found[name] = head_range.start + int(torch.linalg.vector_norm(head_vertices - target, dim=1).argmin())
    return found


def build_open_mesh(detail: float = 1.0) -> dict:
    """Build the open body's rest mesh (float64, CPU).

    Returns:
        dict with ``vertices (V, 3)``, ``faces (F, 3)`` long, ``weights (V, 24)``,
        ``face_parts (F,)`` long (owner part of each face) and ``landmarks`` (name -> vertex).
    """
    if not (isinstance(detail, (int, float)) and math.isfinite(detail) and 0.25 <= detail <= 4.0):
        raise InputError(f"open body detail must be a number in [0.25, 4], got {detail!r}")
    parts = part_specs(rest_joints(rest_offsets(dtype=torch.float64)))
    vertices, faces, weights, face_parts, ranges = [], [], [], [], {}
    count = 0
    for part in parts:
        v, f = _part_mesh(part, detail)
        vertices.append(v)
        faces.append(f + count)
        weights.append(skin_weights(v, part))
        face_parts.append(torch.full((f.shape[0],), part.owner, dtype=torch.long))
        ranges[part.owner] = range(count, count + v.shape[0])
        count += v.shape[0]
    vertices = torch.cat(vertices)
    return {
        "vertices": vertices, "faces": torch.cat(faces), "weights": torch.cat(weights),
        "face_parts": torch.cat(face_parts), "landmarks": _landmarks(vertices, ranges[15], parts[15]),
    }


class OpenBody(BodyModel):
    """The file-free SMPL-compatible body (see the module docstring). ``detail`` in [0.25, 4]."""

    rest_vertices: torch.Tensor
    rest_joints: torch.Tensor
    offsets: torch.Tensor
    face_parts: torch.Tensor

    def __init__(self, detail: float = 1.0):
        mesh = build_open_mesh(detail)
        super().__init__(mesh["faces"], mesh["weights"].float(), mesh["landmarks"])
        self.detail = float(detail)
        self.register_buffer("rest_vertices", mesh["vertices"].float())
        self.register_buffer("offsets", rest_offsets())
        self.register_buffer("rest_joints", rest_joints(rest_offsets()))
        self.register_buffer("face_parts", mesh["face_parts"])

    def forward(self, poses: torch.Tensor, trans: torch.Tensor,
                betas: Optional[torch.Tensor] = None) -> BodyOutput:
        """``poses (B, 24, 3)``, ``trans (B, 3)`` (pelvis), ``betas`` ignored -> :class:`BodyOutput`."""
        self.check_inputs(poses, trans, betas)
        like = self.rest_vertices
        joints, world_rotations = forward_kinematics(poses.to(like), trans.to(like), self.offsets)
        vertices = linear_blend_skinning(like, self.lbs_weights, world_rotations, joints, self.rest_joints)
        return BodyOutput(vertices=vertices, joints=joints)
