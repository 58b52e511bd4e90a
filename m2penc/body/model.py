"""The body-model interface every mesh body of the pack implements, and batched linear blend skinning.

A body model turns SMPL-style motion (24 axis-angle joint rotations and the world position of the
pelvis) into a posed triangle mesh. The renderer only sees this interface, so the licensed SMPL
(:mod:`.smpl`) and the file-free open body (:mod:`.open_body`) are interchangeable:

* ``faces`` ``(F, 3)`` long, counter-clockwise seen from outside (right-hand-rule normals point out);
* ``lbs_weights`` ``(V, 24)`` skinning weights, rows sum to 1;
* ``part_labels`` ``(V,)`` = ``argmax_j lbs_weights[v, j]``: Champ's rule for its semantic map, so
  labels are SMPL part indices 0..23 (``skeleton.SMPL_JOINT_NAMES``);
* ``landmarks``: vertex indices of the face keypoints in :data:`LANDMARK_NAMES`.

``trans`` is always the world position of joint 0 (the pelvis), as in
:func:`.skeleton.forward_kinematics`: a model whose rest pelvis is not at the origin shifts its
output so that ``joints[:, 0] == trans`` exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import nn

from ..errors import InputError
from .skeleton import NUM_JOINTS

#: Face keypoints every body model names (the COCO/OpenPose face points a renderer may draw).
LANDMARK_NAMES: tuple[str, ...] = ("nose", "right_eye", "left_eye", "right_ear", "left_ear")
#: Shape coefficients accepted by ``forward`` (SMPL's usual 10).
NUM_BETAS = 10


@dataclass
class BodyOutput:
    """A batch of posed bodies.

    Attributes:
        vertices: ``(B, V, 3)`` metres, SMPL body frame (y up, facing +z) plus ``trans``.
        joints: ``(B, 24, 3)`` posed SMPL joints, ``skeleton.JOINT_NAMES`` order; ``joints[:, 0] == trans``.
    """

    vertices: torch.Tensor
    joints: torch.Tensor


class BodyModel(nn.Module):
    """Base class: registers the mesh buffers (they follow ``.to()``) and checks ``forward`` inputs.

    Subclasses call ``super().__init__(faces, lbs_weights, landmarks)`` and implement
    :meth:`forward`.
    """

    faces: torch.Tensor
    lbs_weights: torch.Tensor
    part_labels: torch.Tensor

    def __init__(self, faces: torch.Tensor, lbs_weights: torch.Tensor, landmarks: Mapping[str, int]):
        super().__init__()
        faces = torch.as_tensor(faces).long()
        lbs_weights = torch.as_tensor(lbs_weights)
        num_vertices = lbs_weights.shape[0]
        assert lbs_weights.shape == (num_vertices, NUM_JOINTS), lbs_weights.shape
        assert faces.ndim == 2 and faces.shape[1] == 3, faces.shape
        assert int(faces.min()) >= 0 and int(faces.max()) < num_vertices, "face index out of range"
        assert set(landmarks) == set(LANDMARK_NAMES), sorted(landmarks)
        self.register_buffer("faces", faces.contiguous())
        self.register_buffer("lbs_weights", lbs_weights.contiguous())
        self.register_buffer("part_labels", lbs_weights.argmax(dim=1))
        self.landmarks: dict[str, int] = {name: int(landmarks[name]) for name in LANDMARK_NAMES}

    @property
    def num_vertices(self) -> int:
        """V, the number of mesh vertices."""
        return int(self.lbs_weights.shape[0])

    def check_inputs(self, poses: torch.Tensor, trans: torch.Tensor, betas: Optional[torch.Tensor]) -> int:
        """Validate ``forward``'s arguments; returns the batch size B."""
        if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3):
            raise InputError(f"poses must be (batch, 24, 3) axis-angle rotations, got {tuple(poses.shape)}")
        batch = poses.shape[0]
        if tuple(trans.shape) != (batch, 3):
            raise InputError(f"trans must be (batch, 3) = {(batch, 3)} (pelvis positions), got {tuple(trans.shape)}")
        if betas is not None and tuple(betas.shape) != (batch, NUM_BETAS):
            raise InputError(f"betas must be None or (batch, {NUM_BETAS}) = {(batch, NUM_BETAS)}, "
                             f"got {tuple(betas.shape)}")
        return batch

    def forward(self, poses: torch.Tensor, trans: torch.Tensor,
                betas: Optional[torch.Tensor] = None) -> BodyOutput:
        """Pose the body.

        Args:
            poses: ``(B, 24, 3)`` axis-angle rotations (joint 0 = global orientation).
            trans: ``(B, 3)`` world position of joint 0 (pelvis).
            betas: ``(B, 10)`` shape coefficients or None (each model documents its rule).
        Returns:
            :class:`BodyOutput` with ``(B, V, 3)`` vertices and ``(B, 24, 3)`` joints.
        """
        raise NotImplementedError(f"{type(self).__name__} is an abstract body: use OpenBody or load_smpl()")


def linear_blend_skinning(rest_vertices: torch.Tensor, weights: torch.Tensor, world_rotations: torch.Tensor,
                          posed_joints: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Pose rest vertices with linear blend skinning.

    Joint ``j`` moves a rest point ``p`` to ``R_j (p - J_j^rest) + J_j^posed`` (its world transform
    relative to the rest pose); a vertex goes to the ``weights``-blend of those points.

    Args:
        rest_vertices: ``(V, 3)`` rest-pose vertices.
        weights: ``(V, 24)`` skinning weights (rows sum to 1).
        world_rotations: ``(B, 24, 3, 3)`` world rotation of each joint (rest pose = identity).
        posed_joints: ``(B, 24, 3)`` world joint positions.
        rest_joints: ``(24, 3)`` rest-pose joint positions.
    Returns:
        ``(B, V, 3)`` posed vertices.
    """
    # Per joint: p -> R p + t with t = J_posed - R J_rest; blend R and t per vertex.
    offsets = posed_joints - (world_rotations @ rest_joints[..., None])[..., 0]        # (B, 24, 3)
    blended_rot = torch.einsum("vj,bjkl->bvkl", weights, world_rotations)             # (B, V, 3, 3)
    blended_offset = torch.einsum("vj,bjk->bvk", weights, offsets)                      # (B, V, 3)
    return (blended_rot @ rest_vertices[..., None])[..., 0] + blended_offset
