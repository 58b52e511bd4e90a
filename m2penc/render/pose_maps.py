"""A posed body model over a whole motion -> Champ's four guidance maps, mask and keypoints, batch by batch.

One call renders what Champ's data pipeline makes with SMPL + Blender + DWPose (GUIDANCE_MAPS.md):
depth, normal, semantic and DWPose-skeleton images, the body mask and OpenPose-18 keypoints, all from
ONE fixed camera (default: :func:`.camera.frame_motion` over the whole motion, so the dancer moves
within the frame). Frames are processed ``batch_size`` at a time with progress ticks and cancel checks.

Memory: float IMAGE maps are 3 MB per map per 512 x 512 frame; a 3-minute dance (2700 frames) would
be ~35 GB for all maps. Use :func:`iter_pose_maps` (one batch at a time) or ``as_uint8=True`` for long
motions; :func:`render_pose_maps` concatenates every batch and suits short clips.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional, Protocol

import numpy as np
import torch

from ..errors import InputError
from ..pose.pose_keypoint import keypoints_to_pose_keypoint
from ..pose.render import render_frame
from ..progress import NO_CONTROL, RunControl
from .camera import PinholeCamera, frame_motion
from .keypoints import body_keypoints
from .maps import depth_map, gray_to_rgb, mask_map, normal_map, semantic_map, to_image, vertex_normals
from .palettes import part_colors
from .rasterize import rasterize

if TYPE_CHECKING:
    from .appearance import Appearance

#: Image-like outputs, in Champ's guidance order, then the mask.
IMAGE_KEYS = ("depth", "normal", "semantic", "skeleton")


class BodyLike(Protocol):
    """What the renderer needs of a body model; ``..body.model.BodyModel`` (open body, SMPL) provides it."""

    faces: torch.Tensor          # (F, 3) long, counter-clockwise seen from outside
    part_labels: torch.Tensor    # (V,) long, SMPL part 0..23
    landmarks: dict              # "nose", "right_eye", "left_eye", "right_ear", "left_ear" -> vertex index

    def __call__(self, poses: torch.Tensor, trans: torch.Tensor, betas: Optional[torch.Tensor] = None):
        """-> an output with ``vertices (B, V, 3)`` and ``joints (B, 24, 3)``, metres, y-up world."""


def render_mesh_maps(vertices: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor,
                     camera: PinholeCamera, appearance: Optional["Appearance"] = None
                     ) -> dict[str, torch.Tensor]:
    """World vertices ``(B, V, 3)`` -> uint8 ``depth (B, H, W)``, ``normal``/``semantic (B, H, W, 3)``, ``mask (B, H, W)``.

    ``colors``: ``(V, 3)`` uint8 per-vertex semantic colours (:func:`.palettes.part_colors`).
    ``appearance``: also ``appearance (B, H, W, 3)`` uint8 (:mod:`.appearance`), shaded on these fragments
    when it takes one sample per pixel.
    """
    cam_vertices = camera.world_to_camera(vertices)                         # fp32 whatever the input
    fragments = rasterize(camera.project(cam_vertices), faces, camera.height, camera.width)
    normals = vertex_normals(cam_vertices, faces)
    maps = {"depth": depth_map(fragments),
            "normal": normal_map(fragments, faces, normals),
            "semantic": semantic_map(fragments, faces, colors),
            "mask": mask_map(fragments)}
    if appearance is not None:
        maps["appearance"] = appearance.render(vertices, faces, camera, fragments, normals)
    return maps


def skeleton_maps(keypoints: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``(B, 18, 3)`` canvas keypoints -> uint8 ``(B, H, W, 3)`` DWPose-style skeleton images."""
    frames = keypoints_to_pose_keypoint(keypoints, width, height)
    return torch.from_numpy(np.stack([render_frame(f) for f in frames]))


def _check_motion(poses: torch.Tensor, trans: torch.Tensor, batch_size: int) -> None:
    if poses.ndim != 3 or poses.shape[1:] != (24, 3) or poses.shape[0] < 1:
        raise InputError(f"poses must be (frames, 24, 3) SMPL axis-angle with frames >= 1, got {tuple(poses.shape)}")
    if tuple(trans.shape) != (poses.shape[0], 3):
        raise InputError(f"trans must be ({poses.shape[0]}, 3) to match the poses, got {tuple(trans.shape)}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")


def _batches(body: BodyLike, poses: torch.Tensor, trans: torch.Tensor, batch_size: int):
    device = body.faces.device
    for start in range(0, poses.shape[0], batch_size):
        with torch.no_grad():
            out = body(poses[start:start + batch_size].to(device), trans[start:start + batch_size].to(device))
        yield start, out.vertices, out.joints


def motion_camera(body: BodyLike, poses: torch.Tensor, trans: torch.Tensor, width: int, height: int,
                  batch_size: int = 64, **framing) -> PinholeCamera:
    """:func:`.camera.frame_motion` over every frame's mesh (only per-frame bounding boxes are kept)."""
    _check_motion(poses, trans, batch_size)
    boxes = [torch.stack([v.float().amin(1), v.float().amax(1)], dim=1).cpu()
             for _, v, _ in _batches(body, poses, trans, batch_size)]
    return frame_motion(torch.cat(boxes), width, height, **framing)


def _finish(maps: dict[str, torch.Tensor], as_uint8: bool) -> dict[str, torch.Tensor]:
    maps = {k: v.contiguous().cpu() for k, v in maps.items()}
    if as_uint8:
        return maps
    out = {k: to_image(maps[k]) for k in IMAGE_KEYS}
    out["mask"] = maps["mask"].float().div_(255.0)
    out["keypoints"] = maps["keypoints"]
    if "appearance" in maps:
        out["appearance"] = to_image(maps["appearance"])
    return out


def iter_pose_maps(body: BodyLike, poses: torch.Tensor, trans: torch.Tensor, camera: PinholeCamera,
                   batch_size: int = 16, control: RunControl = NO_CONTROL,
                   as_uint8: bool = False, appearance: Optional["Appearance"] = None
                   ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Yield ``(first_frame, maps)`` per batch; maps as in :func:`render_pose_maps`, on the CPU.

    ``appearance``: also the body's ``appearance`` frames (:mod:`.appearance`, IMAGE or uint8 like the maps).
    """
    _check_motion(poses, trans, batch_size)
    colors = part_colors(body.part_labels.to(body.faces.device))
    total = poses.shape[0]
    for start, vertices, joints in _batches(body, poses, trans, batch_size):
        control.check_cancel()
        maps = render_mesh_maps(vertices, body.faces, colors, camera, appearance)
        maps["depth"] = gray_to_rgb(maps["depth"])
        maps["keypoints"] = body_keypoints(joints, vertices, body.landmarks, camera)
        maps["skeleton"] = skeleton_maps(maps["keypoints"], camera.width, camera.height)
        yield start, _finish(maps, as_uint8)
        control.tick("render guidance", min(start + vertices.shape[0], total), total)


def render_pose_maps(body: BodyLike, poses: torch.Tensor, trans: torch.Tensor,
                     camera: Optional[PinholeCamera] = None, width: int = 512, height: int = 512,
                     batch_size: int = 16, control: RunControl = NO_CONTROL,
                     as_uint8: bool = False) -> dict:
    """Render a whole motion's guidance maps with one fixed camera.

    Args:
        body: a body model (see :class:`BodyLike`).
        poses: ``(N, 24, 3)`` SMPL axis-angle; trans: ``(N, 3)`` root translation (metres, y-up world).
        camera: the camera; ``None`` frames the whole motion (:func:`motion_camera`). Its image size
            must be ``width x height``.
        batch_size: frames rendered at once; control: progress ticks ("render guidance") and cancel.
        as_uint8: return bytes (4x smaller) instead of ComfyUI floats.
    Returns:
        ``{"depth", "normal", "semantic", "skeleton"}``: IMAGE ``(N, H, W, 3)`` float32 in [0, 1] on the
        /255 grid (uint8 with ``as_uint8``); ``"mask"``: MASK ``(N, H, W)`` in {0, 1} ({0, 255});
        ``"keypoints"``: ``(N, 18, 3)`` OpenPose-18 canvas pixels + confidence; ``"camera"``: the camera.
    """
    if camera is None:
        camera = motion_camera(body, poses, trans, width, height)
    if (camera.width, camera.height) != (width, height):
        raise InputError(f"the camera renders {camera.width}x{camera.height} but {width}x{height} was asked; "
                         "pass matching sizes or build the camera for this size")
    parts: dict[str, list[torch.Tensor]] = {}
    for _, maps in iter_pose_maps(body, poses, trans, camera, batch_size, control, as_uint8):
        for key, value in maps.items():
            parts.setdefault(key, []).append(value)
    out: dict = {key: torch.cat(values) for key, values in parts.items()}
    out["camera"] = camera
    return out
