"""Placing a 2D skeleton sequence on the person of a reference photo: boxes, canvas maps, uniform fits.

An animator (Wan-Animate, UniAnimate-DiT, ...) copies the photo's person and moves it along the pose
video; if the skeleton is bigger, smaller or elsewhere than the person in the photo, the generated
person changes size or drifts on the first frame. Here the skeleton is moved and scaled (never
stretched: one scale for x and y, so limb proportions stay those of the dance) so that its estimated
person box lands on the photo's person box.

Coordinates are canvas pixels with pixel ``i``'s centre at ``i`` (POSE_KEYPOINT's convention, see
:mod:`.heatmaps`): an image ``W`` pixels wide spans ``[-0.5, W - 0.5]``. A box is ``(x0, y0, x1, y1)``
in those coordinates; a box given as fractions ``f`` of an image side becomes ``f * side - 0.5``.

The photo reaches the animator centre-cropped to the video's aspect ratio and resized, as
:func:`..reference_image.fit_crop` prepares it (and as ComfyUI's ``common_upscale(..., "center")``
does in WanAnimateToVideo). :func:`photo_to_canvas` is that crop and resize as a map of coordinates,
so a box drawn on the photo is the box on the video canvas.

**Person extent of a skeleton frame** (:func:`person_extent`). Keypoints stop at the eyes and ankles;
a person box (a detector's, or one a user draws) runs from the top of the head to the soles. The
extent is the keypoints' box grown by :data:`HEAD_TOP_ABOVE_EYES` above the eyes,
:data:`SOLES_BELOW_ANKLES` below the ankles and :data:`SIDE_MARGIN` left and right, all as fractions
of the eye-to-ankle height (measured on the pack's open body: 0.047-0.051 above the eyes,
0.056-0.057 below the ankles, 0.02-0.05 beside the outermost joints with the arms down). Using the
eyes and ankles, not the highest and lowest keypoint, keeps raised arms out of the person's height.

**Fits** (:func:`fit_to_box`):

* ``"first_frame"`` - the person extent of the first frame that shows the person gets the box's
  height and horizontal centre (its top on the box's top). Height, not width: the box width of a person depends on where their
  arms are, their height does not. This is what pose-alignment tools do (UniAnimate's and Wan-Animate's
  retargeting scale the driving pose to the reference person from the first frame).
* ``"sequence"`` - the union of every frame's person extent fits inside the box, centred, touching it
  on one axis: nothing of the dance leaves the box (use it when there is no photo to match).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from ..errors import InputError
from .openpose import NUM_BODY_KEYPOINTS

Box = tuple[float, float, float, float]
FitMode = Literal["first_frame", "sequence"]
FIT_MODES: tuple[str, ...] = ("first_frame", "sequence")

#: OpenPose-18 indices used to estimate a person's extent.
EYES = (14, 15)
HEAD = (0, 14, 15, 16, 17)
ANKLES = (10, 13)
#: Person box beyond the keypoints, as fractions of the eye-to-ankle height (module docstring).
HEAD_TOP_ABOVE_EYES = 0.05
SOLES_BELOW_ANKLES = 0.057
SIDE_MARGIN = 0.03
#: When eyes or ankles are not visible: margins as fractions of the keypoints' own box height.
FALLBACK_MARGIN = 0.05


@dataclass(frozen=True)
class PlaneMap:
    """An axis-aligned map of canvas coordinates: ``x' = sx * x + dx``, ``y' = sy * y + dy``.

    A retargeting fit has ``sx == sy`` (:meth:`uniform`), which keeps every length ratio of the
    skeleton; the photo-to-canvas map may differ by a rounding pixel between axes.
    """

    sx: float
    sy: float
    dx: float
    dy: float

    @classmethod
    def uniform(cls, scale: float, dx: float, dy: float) -> "PlaneMap":
        return cls(float(scale), float(scale), float(dx), float(dy))

    @classmethod
    def identity(cls) -> "PlaneMap":
        return cls(1.0, 1.0, 0.0, 0.0)

    def apply(self, keypoints: np.ndarray) -> np.ndarray:
        """``(..., K, 3)`` [x, y, c] -> the same array mapped; confidences unchanged (a copy)."""
        out = np.array(keypoints, dtype=np.float64, copy=True)
        out[..., 0] = self.sx * out[..., 0] + self.dx
        out[..., 1] = self.sy * out[..., 1] + self.dy
        return out

    def apply_box(self, box: Box) -> Box:
        x0, y0, x1, y1 = box
        return (self.sx * x0 + self.dx, self.sy * y0 + self.dy, self.sx * x1 + self.dx, self.sy * y1 + self.dy)

    def then(self, other: "PlaneMap") -> "PlaneMap":
        """This map followed by ``other``."""
        return PlaneMap(other.sx * self.sx, other.sy * self.sy, other.sx * self.dx + other.dx,
                        other.sy * self.dy + other.dy)


def _check_size(width: int, height: int, what: str) -> None:
    if not (int(width) == width and int(height) == height and width >= 1 and height >= 1):
        raise InputError(f"{what} size must be positive whole pixels, got {width}x{height}")


def box_from_fractions(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box:
    """A box given as fractions of an image's width and height (0..1) -> pixel box (module convention)."""
    _check_size(width, height, "image")
    values = (x0, y0, x1, y1)
    if not all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in values) or not (x0 < x1 and y0 < y1):
        raise InputError(f"a person box needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (fractions of the photo), "
                         f"got x0={x0}, y0={y0}, x1={x1}, y1={y1}")
    return (x0 * width - 0.5, y0 * height - 0.5, x1 * width - 0.5, y1 * height - 0.5)


def photo_to_canvas(photo_width: int, photo_height: int, canvas_width: int, canvas_height: int) -> PlaneMap:
    """Photo pixels -> canvas pixels when the photo is centre-cropped to the canvas aspect and resized.

    The crop is :func:`..reference_image.fit_crop`'s (same rounding): a wider photo keeps
    ``round(h * W / H)`` centre columns, a taller one ``round(w * H / W)`` centre rows; the resize maps
    pixel centres as ``align_corners=False`` interpolation does.
    """
    _check_size(photo_width, photo_height, "photo")
    _check_size(canvas_width, canvas_height, "canvas")
    target = canvas_width / canvas_height
    left, top, crop_w, crop_h = 0, 0, photo_width, photo_height
    if photo_width / photo_height > target:
        crop_w = max(1, round(photo_height * target))
        left = (photo_width - crop_w) // 2
    else:
        crop_h = max(1, round(photo_width / target))
        top = (photo_height - crop_h) // 2
    sx, sy = canvas_width / crop_w, canvas_height / crop_h
    return PlaneMap(sx, sy, (0.5 - left) * sx - 0.5, (0.5 - top) * sy - 0.5)


def _visible(points: np.ndarray, indices: tuple[int, ...]) -> np.ndarray:
    """Rows of ``points`` (K, 3) at ``indices`` whose confidence is positive."""
    rows = points[list(indices)]
    return rows[rows[:, 2] > 0]


def person_extent(keypoints: np.ndarray) -> Optional[Box]:
    """Estimated person box (head top to soles) of one frame's body keypoints ``(K >= 18, 3)``; None if empty.

    See the module docstring for the margins; without both eyes-or-head and ankles the keypoints' own
    box is grown by :data:`FALLBACK_MARGIN` of its height on every side.
    """
    body = np.asarray(keypoints, dtype=np.float64)[:NUM_BODY_KEYPOINTS]
    visible = body[body[:, 2] > 0]
    if len(visible) == 0:
        return None
    x0, y0 = visible[:, :2].min(axis=0)
    x1, y1 = visible[:, :2].max(axis=0)
    eyes = _visible(body, EYES)
    eyes = eyes if len(eyes) else _visible(body, HEAD)
    ankles = _visible(body, ANKLES)
    if len(eyes) and len(ankles):
        eye_y, ankle_y = float(eyes[:, 1].mean()), float(ankles[:, 1].max())
        span = ankle_y - eye_y
        if span > 0:
            return (x0 - SIDE_MARGIN * span, eye_y - HEAD_TOP_ABOVE_EYES * span,
                    x1 + SIDE_MARGIN * span, ankle_y + SOLES_BELOW_ANKLES * span)
    margin = FALLBACK_MARGIN * max(y1 - y0, x1 - x0, 1.0)
    return (x0 - margin, y0 - margin, x1 + margin, y1 + margin)


def sequence_extent(keypoints: np.ndarray) -> Optional[Box]:
    """Union of :func:`person_extent` over frames ``(F, K, 3)``; None if no frame has a visible point."""
    boxes = [b for b in (person_extent(frame) for frame in keypoints) if b is not None]
    if not boxes:
        return None
    array = np.asarray(boxes)
    return (float(array[:, 0].min()), float(array[:, 1].min()), float(array[:, 2].max()), float(array[:, 3].max()))


def _check_box(box: Box, what: str) -> None:
    if len(box) != 4 or not all(np.isfinite(v) for v in box) or not (box[2] > box[0] and box[3] > box[1]):
        raise InputError(f"{what} must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")


def fit_to_box(keypoints: np.ndarray, box: Box, mode: FitMode = "first_frame") -> PlaneMap:
    """The uniform map placing a skeleton sequence ``(F, K, 3)`` on ``box`` (module docstring: fits).

    Raises :class:`InputError` if the frames used have no visible keypoint.
    """
    if mode not in FIT_MODES:
        raise InputError(f"fit mode must be one of {FIT_MODES}, got {mode!r}")
    _check_box(box, "the person box")
    points = np.asarray(keypoints, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] < NUM_BODY_KEYPOINTS or not len(points):
        raise InputError(f"keypoints must be (frames, >= 18, 3), got {points.shape}")
    bx0, by0, bx1, by1 = box
    if mode == "first_frame":
        extent = next((e for e in (person_extent(frame) for frame in points) if e is not None), None)
        if extent is None:
            raise InputError("no frame of the dance has a visible keypoint, so it cannot be placed on the photo's "
                             "person; check the keypoints' confidences")
        scale = (by1 - by0) / (extent[3] - extent[1])
        return PlaneMap.uniform(scale, (bx0 + bx1) / 2 - scale * (extent[0] + extent[2]) / 2, by0 - scale * extent[1])
    extent = sequence_extent(points)
    if extent is None:
        raise InputError("no frame of the dance has a visible keypoint; nothing to place")
    scale = min((bx1 - bx0) / (extent[2] - extent[0]), (by1 - by0) / (extent[3] - extent[1]))
    return PlaneMap.uniform(scale, (bx0 + bx1) / 2 - scale * (extent[0] + extent[2]) / 2,
                            (by0 + by1) / 2 - scale * (extent[1] + extent[3]) / 2)
