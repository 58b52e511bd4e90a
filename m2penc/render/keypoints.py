"""OpenPose-18 keypoints of a posed body, projected by the render camera, and what is made of them.

Mapping from the SMPL 24-joint skeleton (+ five head landmark vertices) to OpenPose-18 order.
OpenPose's "right_*" is the person's right, i.e. SMPL's right joints (2, 5, 8, 17, 19, 21):

====================  ==========================================================================
OpenPose keypoint     source
====================  ==========================================================================
nose, eyes, ears      the body model's ``landmarks`` vertices (surface points, as a detector sees)
neck                  midpoint of the shoulders, SMPL joints 16 and 17 (DWPose's neck is the mean
                      of its two shoulders; visible only if both are)
shoulders             SMPL 17 (right) / 16 (left)
elbows, wrists        SMPL 19 / 18, 21 / 20
hips                  SMPL hip joints 2 (right) / 1 (left). These are the femur heads; OpenPose's
                      hips sit a few cm lower and further out - kept as the joints, no offset guessed
knees, ankles         SMPL 5 / 4, 8 / 7
====================  ==========================================================================

Coordinates are the pack's canvas pixels (pixel ``i`` centred at ``i``, as POSE_KEYPOINT and
:mod:`..pose.heatmaps` use): the rasteriser's ``u`` minus 0.5. A keypoint has confidence 1 when it is
in front of the camera and on the canvas, else 0; occlusion is not considered (a detector would
usually still report it).
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..errors import InputError
from ..pose.heatmaps import DEFAULT_SIGMA, canvas_to_heatmap, keypoints_to_heatmaps
from ..pose.openpose import NUM_BODY_KEYPOINTS
from ..pose.pose_keypoint import PoseKeypoint, keypoints_to_pose_keypoint
from ..pose.render import render_pose_keypoint
from .camera import PinholeCamera
from .rasterize import DEFAULT_NEAR

#: OpenPose-18 index -> SMPL joint, for the keypoints that are joints.
OPENPOSE_FROM_SMPL: dict[int, int] = {
    2: 17, 3: 19, 4: 21, 5: 16, 6: 18, 7: 20, 8: 2, 9: 5, 10: 8, 11: 1, 12: 4, 13: 7,
}
#: OpenPose-18 index -> landmark vertex name of the body model.
OPENPOSE_FROM_LANDMARK: dict[int, str] = {0: "nose", 14: "right_eye", 15: "left_eye", 16: "right_ear", 17: "left_ear"}
NECK, NECK_FROM_SMPL = 1, (16, 17)
#: The M2PEnc heatmap grid (the paper's 64 x 64).
HEATMAP_GRID = 64


def openpose_points(joints: torch.Tensor, vertices: torch.Tensor, landmarks: Mapping[str, int]) -> torch.Tensor:
    """World OpenPose-18 points: ``joints (B, 24, 3)``, ``vertices (B, V, 3)`` -> ``(B, 18, 3)`` float32."""
    missing = sorted(set(OPENPOSE_FROM_LANDMARK.values()) - set(landmarks))
    if missing:
        raise InputError(f"the body model's landmarks lack {missing}; it needs vertex indices for "
                         f"{sorted(OPENPOSE_FROM_LANDMARK.values())}")
    if joints.ndim != 3 or joints.shape[1:] != (24, 3) or vertices.ndim != 3 or vertices.shape[0] != joints.shape[0]:
        raise InputError(f"need joints (B, 24, 3) and vertices (B, V, 3), got {tuple(joints.shape)} and {tuple(vertices.shape)}")
    out = joints.new_zeros(joints.shape[0], NUM_BODY_KEYPOINTS, 3, dtype=torch.float32)
    for op, smpl in OPENPOSE_FROM_SMPL.items():
        out[:, op] = joints[:, smpl].float()
    out[:, NECK] = joints[:, list(NECK_FROM_SMPL)].float().mean(dim=1)
    for op, name in OPENPOSE_FROM_LANDMARK.items():
        out[:, op] = vertices[:, int(landmarks[name])].float()
    return out


def project_keypoints(points: torch.Tensor, camera: PinholeCamera, near: float = DEFAULT_NEAR) -> torch.Tensor:
    """World points ``(B, K, 3)`` -> ``(B, K, 3)`` ``[x, y, confidence]`` in canvas pixels (centre of pixel i at i).

    Confidence is 1 for points with camera z > ``near`` whose pixel lies on the W x H canvas, else 0.
    """
    screen = camera.to_screen(points)
    u, v, z = screen.unbind(-1)
    on_canvas = (z > near) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    return torch.stack([u - 0.5, v - 0.5, on_canvas.float()], dim=-1)


def body_keypoints(joints: torch.Tensor, vertices: torch.Tensor, landmarks: Mapping[str, int],
                   camera: PinholeCamera) -> torch.Tensor:
    """OpenPose-18 ``(B, 18, 3)`` [x, y, confidence] of posed bodies; the neck needs both shoulders."""
    keypoints = project_keypoints(openpose_points(joints, vertices, landmarks), camera)
    keypoints[:, NECK, 2] *= keypoints[:, 2, 2] * keypoints[:, 5, 2]
    return keypoints


def keypoints_to_grid_heatmaps(keypoints: torch.Tensor, width: int, height: int, grid: int = HEATMAP_GRID,
                               sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """Canvas keypoints ``(B, K, 3)`` on a W x H frame -> M2PEnc target heatmaps ``(B, K, grid, grid)``."""
    on_grid = canvas_to_heatmap(keypoints.float(), (height, width), (grid, grid))
    return keypoints_to_heatmaps(on_grid, grid, grid, sigma)


def keypoints_to_pose(keypoints: torch.Tensor, width: int, height: int) -> PoseKeypoint:
    """``(B, 18, 3)`` canvas keypoints -> ComfyUI POSE_KEYPOINT (one person per frame; hidden points zeroed)."""
    return keypoints_to_pose_keypoint(keypoints, width, height)


def skeleton_images(keypoints: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``(B, 18, 3)`` canvas keypoints -> DWPose-style skeleton IMAGE batch, float32 ``(B, H, W, 3)``."""
    return render_pose_keypoint(keypoints_to_pose_keypoint(keypoints, width, height))
