"""OpenPose-coloured skeleton images from POSE_KEYPOINT, as a ComfyUI IMAGE batch.

Draws like DWPose / controlnet_aux ``draw_bodypose``: each limb is a filled ellipse from joint
to joint, 4 px half-width, in its OpenPose colour; the whole canvas is then dimmed to 60 %;
finally every detected keypoint is a full-colour disc of radius 4. Drawing uses PIL, so no
OpenCV is needed; edges differ from cv2's by antialiasing-free rounding only.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import InputError
from .openpose import COLORS_RGB, KEYPOINT_RADIUS, LIMB_DIMMING, LIMBS, NUM_DRAWN_LIMBS, STICK_HALF_WIDTH
from .pose_keypoint import PoseKeypoint, validate_pose_keypoint

#: Points on each limb ellipse's outline.
_ELLIPSE_POINTS = 36


def _limb_polygon(a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]]:
    """Outline of the ellipse spanning joints ``a`` and ``b`` (x, y pixels)."""
    cx, cy = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    half_length = math.hypot(b[0] - a[0], b[1] - a[1]) / 2
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    points = []
    for i in range(_ELLIPSE_POINTS):
        t = 2 * math.pi * i / _ELLIPSE_POINTS
        ex, ey = half_length * math.cos(t), STICK_HALF_WIDTH * math.sin(t)
        points.append((cx + ex * cos_a - ey * sin_a, cy + ex * sin_a + ey * cos_a))
    return points


def _draw_person(canvas: Image.Image, points: np.ndarray) -> None:
    """Limbs of one person (DWPose order); keypoints are drawn after the dimming pass."""
    draw = ImageDraw.Draw(canvas)
    for i, (j, k) in enumerate(LIMBS[:NUM_DRAWN_LIMBS]):
        if points[j, 2] > 0 and points[k, 2] > 0:
            draw.polygon(_limb_polygon(tuple(points[j, :2]), tuple(points[k, :2])), fill=COLORS_RGB[i])


def _draw_keypoints(canvas: Image.Image, points: np.ndarray) -> None:
    draw = ImageDraw.Draw(canvas)
    r = KEYPOINT_RADIUS
    for i, (x, y, c) in enumerate(points):
        if c > 0:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=COLORS_RGB[i])


def render_frame(frame: dict) -> np.ndarray:
    """One POSE_KEYPOINT frame -> uint8 ``(H, W, 3)`` skeleton image (all people)."""
    w, h = frame["canvas_width"], frame["canvas_height"]
    people = [np.asarray(p["pose_keypoints_2d"], dtype=np.float64).reshape(-1, 3) for p in frame["people"]]
    canvas = Image.new("RGB", (w, h))
    for points in people:
        _draw_person(canvas, points)
    canvas = Image.fromarray((np.asarray(canvas) * LIMB_DIMMING).astype(np.uint8))
    for points in people:
        _draw_keypoints(canvas, points)
    return np.asarray(canvas)


def render_pose_keypoint(frames: PoseKeypoint) -> torch.Tensor:
    """POSE_KEYPOINT -> IMAGE batch: float32 ``(F, H, W, 3)`` in [0, 1]; all frames must share a canvas size."""
    validate_pose_keypoint(frames)
    sizes = {(f["canvas_height"], f["canvas_width"]) for f in frames}
    if len(sizes) != 1:
        raise InputError(f"all POSE_KEYPOINT frames must have one canvas size to form a batch, got {sorted(sizes)}")
    images = np.stack([render_frame(f) for f in frames])
    return torch.from_numpy(images).float().div_(255.0)
