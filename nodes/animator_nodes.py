"""Pose Video for Animator: a dance (MOTION or POSE_KEYPOINT) -> the skeleton video, face crops and
keypoints that Wan2.2-Animate, UniAnimate-DiT, SteadyDancer, SCAIL and VACE take, placed on the
reference photo's person. The rules per target and the drawing live in ``m2penc.pose.animator``,
the placement in ``m2penc.pose.retarget``; this module adds the MOTION side (projection with the
render camera, clay head renders behind the face crops) and the ComfyUI schema.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..m2penc.body import make_body
from ..m2penc.errors import InputError
from ..m2penc.pose.animator import (
    FACE_VIDEO_SIZE, PRESETS, AnimatorPlan, clay_shading, draw_face_crops, draw_pose_video, face_boxes,
    face_crop_window, fit_frames, get_preset, plan_pose_video, pose_keypoint_sequence, resample_keypoints,
)
from ..m2penc.pose.retarget import PlaneMap, box_from_fractions, fit_to_box, photo_to_canvas
from ..m2penc.progress import RunControl
from ..m2penc.render.camera import PinholeCamera
from ..m2penc.render.keypoints import body_keypoints
from ..m2penc.render.maps import normal_map, vertex_normals
from ..m2penc.render.pose_maps import motion_camera
from ..m2penc.render.rasterize import rasterize
from ..m2penc.timeline import DEFAULT_FPS
from . import _comfy
from .types import Motion, PoseKeypoint

CATEGORY = "M2PDance/pose"
FRAME_FITS = {"pad (hold last pose)": "pad", "trim": "trim"}
PLACEMENTS = {"match photo person": "first_frame", "fit whole dance in box": "sequence", "keep framing": None}
#: Frames posed and projected per body-model call (one progress tick each).
PROJECT_BATCH = 32
#: Largest pose video + face crops built in memory (float32 IMAGE batches), in bytes.
MAX_OUTPUT_BYTES = 6 * 1024**3
MAX_SIZE = 4096
#: SMPL parts rendered behind the face crops (neck, head) and frames rasterised at once.
HEAD_PARTS = (12, 15)
HEAD_BATCH = 8


def _preset_help() -> str:
    return "; ".join(f"{p.name}: {p.label}" + (f", {p.fps:g} fps" if p.fps else "") +
                     (f", x{p.size_multiple} px" if p.size_multiple > 1 else "") +
                     (f", {p.frame_rule} frames, {p.window}-frame windows" if p.window else "")
                     for p in PRESETS.values())


def _box_inputs() -> list[io.Float.Input]:
    defaults = {"box_x0": 0.0, "box_y0": 0.0, "box_x1": 1.0, "box_y1": 1.0}
    edge = {"box_x0": "left", "box_y0": "top", "box_x1": "right", "box_y1": "bottom"}
    return [io.Float.Input(name, default=value, min=0.0, max=1.0, step=0.001,
                           tooltip=f"The person's {edge[name]} edge in the reference photo, as a fraction of the "
                                   "photo's width/height (0..1; no reference: of the video canvas). Default: the "
                                   "whole photo.")
            for name, value in defaults.items()]


def _check_inputs(width: Optional[int], height: Optional[int],
                  box: tuple[Optional[float], ...]) -> Optional[str]:
    """A problem with the constant inputs, or None. Linked inputs arrive as None at validation (ComfyUI
    validates before running the graph) and are checked again, with their values, in ``execute``."""
    if width is not None and height is not None and (width <= 0) != (height <= 0):
        return f"set both width and height, or both to 0 for the preset's size; got {width}x{height}"
    if None in box:
        return None
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        return f"the person box needs box_x0 < box_x1 and box_y0 < box_y1 within 0..1, got ({x0}, {y0}, {x1}, {y1})"
    return None


# -- MOTION: projection and head renders ---------------------------------------------------------------

def _motion_keypoints(motion, plan: AnimatorPlan, control: RunControl):
    """The dance's used frames as canvas keypoints ``(N, 18, 3)`` (one fixed camera framing the whole
    dance, as Render Pose Maps), plus the body, poses, translations and camera for head renders."""
    motion = motion.to_up_axis("y").resample(plan.fps)
    assert motion.num_frames == plan.resampled_frames, (motion.num_frames, plan.resampled_frames)
    motion = motion.slice(0, plan.used_frames)
    body = make_body("open", device=_comfy.device())
    poses, trans = motion.to_torch()
    camera = motion_camera(body, poses, trans, plan.width, plan.height)
    points = []
    for start in range(0, poses.shape[0], PROJECT_BATCH):
        with torch.no_grad():
            out = body(poses[start:start + PROJECT_BATCH].to(body.faces.device),
                       trans[start:start + PROJECT_BATCH].to(body.faces.device))
        points.append(body_keypoints(out.joints, out.vertices, body.landmarks, camera).cpu())
        control.tick("project dance", min(start + PROJECT_BATCH, poses.shape[0]), poses.shape[0])
    return torch.cat(points).double().numpy(), body, poses, trans, camera


def _mapped_camera(camera: PinholeCamera, mapping: PlaneMap) -> PinholeCamera:
    """The camera whose keypoints are ``mapping`` of ``camera``'s (keypoints are pixel coordinates - 0.5)."""
    return replace(camera, fx=camera.fx * mapping.sx, fy=camera.fy * mapping.sy,
                   cx=mapping.sx * (camera.cx - 0.5) + mapping.dx + 0.5,
                   cy=mapping.sy * (camera.cy - 0.5) + mapping.dy + 0.5)


def _head_renders(body, poses: torch.Tensor, trans: torch.Tensor, camera: PinholeCamera, boxes: np.ndarray,
                  control: RunControl) -> np.ndarray:
    """Clay renders of the open body's head and neck through each frame's face crop, uint8 ``(N, 512, 512, 3)``.

    Only the head and neck faces are rasterised (the crop's shoulders are the skeleton's), a batch of
    frames at a time, each projected by its own crop camera (same pose as ``camera``, cropped intrinsics).
    """
    device = body.faces.device
    keep = torch.isin(body.part_labels.to(device), torch.tensor(HEAD_PARTS, device=device))
    faces = body.faces[keep[body.faces].all(dim=1)]
    total = poses.shape[0]
    out = np.zeros((total, FACE_VIDEO_SIZE, FACE_VIDEO_SIZE, 3), dtype=np.uint8)
    for start in range(0, total, HEAD_BATCH):
        with torch.no_grad():
            vertices = body(poses[start:start + HEAD_BATCH].to(device),
                            trans[start:start + HEAD_BATCH].to(device)).vertices
        cam_vertices = camera.world_to_camera(vertices)
        screen = torch.stack([camera.crop(*face_crop_window(boxes[start + j]), FACE_VIDEO_SIZE).project(cam_vertices[j])
                              for j in range(vertices.shape[0])])
        fragments = rasterize(screen, faces, FACE_VIDEO_SIZE, FACE_VIDEO_SIZE)
        normals = normal_map(fragments, faces, vertex_normals(cam_vertices, faces))
        out[start:start + vertices.shape[0]] = clay_shading(normals.cpu())
        control.tick("head renders", start + vertices.shape[0], total)
    return out


# -- placement -----------------------------------------------------------------------------------------

def _placement(points: np.ndarray, placement: str, box: tuple[float, float, float, float], reference,
               plan: AnimatorPlan, source_canvas: Optional[tuple[int, int]]) -> tuple[PlaneMap, str]:
    """The map from the dance's keypoint coordinates to the output canvas, and a note of it."""
    mode = PLACEMENTS[placement]
    if mode is None:
        if source_canvas is None:
            return PlaneMap.identity(), "placement: kept the render camera's framing of the whole dance"
        mapping = photo_to_canvas(*source_canvas, plan.width, plan.height)
        return mapping, (f"placement: kept the keypoints' framing ({source_canvas[0]}x{source_canvas[1]} canvas "
                         f"centre-cropped and scaled to {plan.width}x{plan.height})")
    if reference is not None:
        if not isinstance(reference, torch.Tensor) or reference.ndim != 4:
            raise InputError(f"reference must be an IMAGE (batch, height, width, channels), got "
                             f"{getattr(reference, 'shape', type(reference).__name__)}")
        photo = (int(reference.shape[2]), int(reference.shape[1]))
    else:
        photo = (plan.width, plan.height)
    photo_box = box_from_fractions(*box, *photo)
    target = photo_to_canvas(*photo, plan.width, plan.height).apply_box(photo_box)
    mapping = fit_to_box(points, target, mode)
    what = "the first frame's person" if mode == "first_frame" else "the whole dance"
    where = f"the {photo[0]}x{photo[1]} photo" if reference is not None else "the canvas"
    return mapping, (f"placement: {what} fitted to box ({box[0]:g}, {box[1]:g}, {box[2]:g}, {box[3]:g}) of {where} "
                     f"-> canvas ({target[0]:.0f}, {target[1]:.0f})-({target[2]:.0f}, {target[3]:.0f}) px, "
                     f"uniform scale {mapping.sx:.3f}")


class PoseVideoForAnimator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDancePoseVideoForAnimator",
            display_name="Pose Video for Animator",
            category=CATEGORY,
            description="Turn a dance (MOTION from Music to Motion / Beat Choreographer / Load Motion, or "
                        "POSE_KEYPOINT from M2PEnc Guidance or a pose estimator) into the DWPose skeleton video that "
                        "Wan2.2-Animate, UniAnimate-DiT, SteadyDancer, SCAIL or VACE take: sizes, frame rate and frame "
                        "counts made to fit the chosen target (4n+1 frames, multiples of 16), the skeleton placed on "
                        "the reference photo's person, plus 512x512 head crops for Wan-Animate's face_video. The note "
                        "output lists every change made.",
            inputs=[
                io.Combo.Input("preset", options=list(PRESETS), default="wan_animate",
                               tooltip="The animator the video is for. " + _preset_help()),
                io.Int.Input("width", default=0, min=0, max=MAX_SIZE, step=8,
                             tooltip="Video width in pixels; 0 (with height 0) = the preset's size. Rounded to the "
                                     "nearest multiple the target needs."),
                io.Int.Input("height", default=0, min=0, max=MAX_SIZE, step=8,
                             tooltip="Video height in pixels; 0 (with width 0) = the preset's size."),
                io.Float.Input("fps", default=0.0, min=0.0, max=120.0, step=0.5,
                               tooltip="Frame rate of the video; 0 = the preset's rate (Wan family 16 as in ComfyUI's "
                                       "templates - Wan-Animate's own scripts use 30; UniAnimate-DiT 15; 'free' keeps "
                                       "the dance's). The dance is resampled to it."),
                io.Int.Input("length", default=0, min=0, max=100000,
                             tooltip="Frames wanted at that rate; 0 = the whole dance. Longer than the dance holds "
                                     "the last pose. The count is then rounded to the target's rule."),
                io.Combo.Input("frame_fit", options=list(FRAME_FITS), default="pad (hold last pose)",
                               tooltip="How counts are made valid (e.g. 4n+1): pad = round up by holding the last "
                                       "pose (nothing lost), trim = round down (drops up to 3 end frames)."),
                io.Boolean.Input("whole_windows", default=False,
                                 tooltip="For chained targets (wan_animate 77-frame, scail 81-frame windows): also pad "
                                         "or trim to whole windows. Off: the last window is padded by the core node."),
                io.Combo.Input("placement", options=list(PLACEMENTS), default="match photo person",
                               tooltip="match photo person: the first frame's person gets the box's height and centre "
                                       "(limb proportions kept). fit whole dance in box: the whole dance stays inside "
                                       "the box. keep framing: no placement (MOTION: framed by the render camera)."),
                *_box_inputs(),
                io.Float.Input("source_fps", default=DEFAULT_FPS, min=1.0, max=120.0, step=0.5,
                               tooltip="Frame rate of a POSE_KEYPOINT dance (connect the fps of the node that made "
                                       "it; M2PEnc Guidance: 15). A MOTION carries its own rate."),
                Motion.Input("motion", optional=True,
                             tooltip="A 3D dance (Music to Motion (EDGE), Beat Choreographer, Load Motion); rendered "
                                     "with the open body. Connect this or pose_keypoint."),
                PoseKeypoint.Input("pose_keypoint", optional=True,
                                   tooltip="2D keypoints per frame (M2PEnc Guidance, DWPose); the first person is "
                                           "used. Connect this or motion."),
                io.Image.Input("reference", optional=True,
                               tooltip="The photo the animator will animate: only its size is used, to map the "
                                       "person box onto the video as the animator crops the photo (centre crop)."),
            ],
            outputs=[
                io.Image.Output(display_name="pose_video",
                                tooltip="DWPose skeletons on black at width x height: the animator's pose_video / "
                                        "control_video."),
                io.Image.Output(display_name="face_video",
                                tooltip="512x512 head crops per frame for WanAnimateToVideo's face_video: a head-pose "
                                        "proxy (skeleton head, clay head for a MOTION), not a real face. Made for "
                                        "every preset."),
                PoseKeypoint.Output(display_name="pose_keypoint",
                                    tooltip="The drawn keypoints: placed, resampled and padded, in pixels of the "
                                            "video canvas."),
                io.Float.Output(display_name="fps", tooltip="Frame rate of the videos."),
                io.Int.Output(display_name="frames", tooltip="Frame count of the videos (valid for the preset)."),
                io.String.Output(display_name="note", tooltip="What was changed to fit the target: sizes rounded, "
                                                              "fps resampled, frames padded or trimmed, placement."),
            ],
        )

    @classmethod
    def validate_inputs(cls, width, height, box_x0, box_y0, box_x1, box_y1) -> bool | str:
        return _check_inputs(width, height, (box_x0, box_y0, box_x1, box_y1)) or True

    @classmethod
    def execute(cls, preset, width, height, fps, length, frame_fit, whole_windows, placement, box_x0, box_y0,
                box_x1, box_y1, source_fps, motion=None, pose_keypoint=None, reference=None) -> io.NodeOutput:
        box = (box_x0, box_y0, box_x1, box_y1)
        problem = _check_inputs(width, height, box)
        if problem:
            raise InputError(problem)
        if (motion is None) == (pose_keypoint is None):
            both = "both are" if motion is not None else "neither is"
            raise InputError("connect exactly one dance to Pose Video for Animator: a MOTION (Music to Motion, Beat "
                             f"Choreographer, Load Motion) or a POSE_KEYPOINT (M2PEnc Guidance); {both} connected")
        if frame_fit not in FRAME_FITS or placement not in PLACEMENTS:
            raise InputError(f"frame_fit must be one of {list(FRAME_FITS)} and placement one of {list(PLACEMENTS)}, "
                             f"got {frame_fit!r} and {placement!r}")
        target = get_preset(preset)
        control = _comfy.run_control()
        notes: list[str] = []
        if motion is not None:
            if not all(hasattr(motion, a) for a in ("resample", "to_up_axis", "num_frames", "fps")):
                raise InputError(f"motion must be an SMPL motion (M2P_MOTION), got {type(motion).__name__}")
            plan = plan_pose_video(target, motion.num_frames, motion.fps, width, height, fps, length,
                                   FRAME_FITS[frame_fit], bool(whole_windows))
            _check_memory(plan)
            points, body, poses, trans, camera = _motion_keypoints(motion, plan, control)
            source_canvas = None
        else:
            points, source_canvas, people = pose_keypoint_sequence(pose_keypoint)
            plan = plan_pose_video(target, points.shape[0], source_fps, width, height, fps, length,
                                   FRAME_FITS[frame_fit], bool(whole_windows), source_size=source_canvas)
            _check_memory(plan)
            points = resample_keypoints(points, source_fps, plan.fps)[:plan.used_frames]
            if people > 1:
                notes.append(f"POSE_KEYPOINT has up to {people} people per frame: the first one is used")
        mapping, placed = _placement(points, placement, box, reference, plan, source_canvas)
        points = fit_frames(mapping.apply(points), plan)
        video, pose = draw_pose_video(points, plan.width, plan.height, control)
        boxes = face_boxes(points, plan.width, plan.height)
        backgrounds = None
        if motion is not None:
            heads = _head_renders(body, poses, trans, _mapped_camera(camera, mapping), boxes, control)
            backgrounds = np.concatenate([heads, np.repeat(heads[-1:], plan.padded, axis=0)])
        faces = draw_face_crops(points, boxes, FACE_VIDEO_SIZE, backgrounds, control)
        if not target.takes_face_video:
            notes.append(f"face_video: {target.name} does not take one (made anyway)")
        note = "\n".join([*plan.notes, placed, *notes])
        return io.NodeOutput(video, faces, pose, float(plan.fps), int(plan.frames), note, ui=ui.PreviewText(note))


def _check_memory(plan: AnimatorPlan) -> None:
    per_frame = (plan.width * plan.height + FACE_VIDEO_SIZE ** 2) * 3 * 4
    if plan.frames * per_frame > MAX_OUTPUT_BYTES:
        raise InputError(f"{plan.frames} frames at {plan.width}x{plan.height} (+ 512x512 face crops) would need "
                         f"{plan.frames * per_frame / 1024**3:.1f} GB; shorten the dance (length) or lower "
                         "width/height")
