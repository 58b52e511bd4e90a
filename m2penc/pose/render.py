"""OpenPose-coloured skeleton images from POSE_KEYPOINT, as a ComfyUI IMAGE batch.

Draws like DWPose / controlnet_aux ``draw_bodypose`` (GUIDANCE_MAPS.md section 4): each limb is a
filled ellipse from joint to joint, 4 px half-width, in its OpenPose colour; the whole canvas is then
dimmed to 60 % (uint8 truncation); finally every detected keypoint is a full-colour disc of radius 4.
Sizes are fixed in pixels. As in DWPose, coordinates are truncated with ``int()`` - the limb centre,
half-length and angle (whole degrees) and the keypoint centres - and the ellipse outline is
``cv2.ellipse2Poly``'s (1 degree steps, rounded to whole pixels). Drawing uses PIL, so no OpenCV is
needed; edges differ from cv2's fill rules by single pixels at most.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import InputError
from .openpose import COLORS_RGB, KEYPOINT_RADIUS, LIMB_DIMMING, LIMBS, NUM_DRAWN_LIMBS, STICK_HALF_WIDTH
from .pose_keypoint import PoseKeypoint, validate_pose_keypoint

#: cv2.ellipse2Poly's outline angles (0..360 in 1 degree steps, as DWPose calls it).
_ELLIPSE_T = np.radians(np.arange(0, 361))
_ELLIPSE_COS, _ELLIPSE_SIN = np.cos(_ELLIPSE_T), np.sin(_ELLIPSE_T)
#: DWPose dims limbs with ``(canvas * 0.6).astype(np.uint8)``; the same map as a lookup table.
_DIM_LUT = (np.arange(256) * LIMB_DIMMING).astype(np.uint8)


def _limb_polygon(a: tuple[float, float], b: tuple[float, float]) -> list[tuple[int, int]]:
    """cv2.ellipse2Poly(int centre, (int(len/2), 4), int(angle), 0, 360, 1) for joints ``a``, ``b`` (x, y px)."""
    cx, cy = int((a[0] + b[0]) / 2), int((a[1] + b[1]) / 2)
    half_length = int(math.hypot(b[0] - a[0], b[1] - a[1]) / 2)
    angle = math.radians(int(math.degrees(math.atan2(a[1] - b[1], a[0] - b[0]))))
    ex, ey = half_length * _ELLIPSE_COS, STICK_HALF_WIDTH * _ELLIPSE_SIN
    xs = np.rint(cx + ex * math.cos(angle) - ey * math.sin(angle)).astype(int)   # rint: cvRound's half-to-even
    ys = np.rint(cy + ex * math.sin(angle) + ey * math.cos(angle)).astype(int)
    keep = np.ones(xs.shape, dtype=bool)
    keep[1:] = (np.diff(xs) != 0) | (np.diff(ys) != 0)                           # drop repeated points
    return list(zip(xs[keep].tolist(), ys[keep].tolist()))


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
            x, y = int(x), int(y)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=COLORS_RGB[i])


def render_frame(frame: dict) -> np.ndarray:
    """One POSE_KEYPOINT frame -> uint8 ``(H, W, 3)`` skeleton image (all people)."""
    w, h = frame["canvas_width"], frame["canvas_height"]
    people = [np.asarray(p["pose_keypoints_2d"], dtype=np.float64).reshape(-1, 3) for p in frame["people"]]
    canvas = Image.new("RGB", (w, h))
    for points in people:
        _draw_person(canvas, points)
    canvas = Image.fromarray(_DIM_LUT[np.asarray(canvas)])
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
