"""ComfyUI's POSE_KEYPOINT type: build, validate, read back.

One dict per frame, in the layout both ComfyUI core (``SDPoseKeypointExtractor`` ->
``SDPoseDrawKeypoints``, comfy_extras/nodes_sdpose.py) and comfyui_controlnet_aux
(``encode_poses_as_dict``) use; tests/fixtures/pose_keypoint_layouts.json records both::

    {"people": [{"pose_keypoints_2d": [x, y, c] * 18,         # OpenPose-18 order, pixels
                 "foot_keypoints_2d": [x, y, c] * 6,          # COCO-WholeBody feet (core only)
                 "face_keypoints_2d": [x, y, c] * 70,         # 68 landmarks + body eyes 14, 15
                 "hand_left_keypoints_2d": [x, y, c] * 21,    # the person's left hand
                 "hand_right_keypoints_2d": [x, y, c] * 21}],
     "canvas_width": W, "canvas_height": H}

Every array is always present: core's draw node reshapes face (70) and both hands (21) without a
None check, so body-only (18-point) keypoints get all-zero face, hand and foot arrays. As in
controlnet_aux, a detected point is written ``[x, y, 1.0]`` and a missing one ``[0.0, 0.0, 0.0]``
(``binary_confidence=False`` keeps the real confidence; controlnet_aux's readers drop c < 1).
The validator also accepts what other producers write: None or absent face/hand/foot arrays and
68-point faces.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..errors import InputError
from .heatmaps import heatmap_to_canvas, heatmaps_to_keypoints
from .openpose import BODY, FACE, FEET, LEFT_HAND, NUM_BODY_KEYPOINTS, RIGHT_HAND, WHOLEBODY_KEYPOINTS

PoseKeypoint = list[dict[str, Any]]
#: controlnet_aux's DWPose treats scores below 0.3 as "not detected".
DEFAULT_MIN_CONFIDENCE = 0.3
_PART_KEYS = ("pose_keypoints_2d", "foot_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
              "hand_right_keypoints_2d")
#: Points per array as written; the face is DWPose's 68 landmarks + the body's right and left eye.
PART_POINTS = {"pose_keypoints_2d": NUM_BODY_KEYPOINTS, "foot_keypoints_2d": FEET.stop - FEET.start,
               "face_keypoints_2d": FACE.stop - FACE.start + 2,
               "hand_left_keypoints_2d": LEFT_HAND.stop - LEFT_HAND.start,
               "hand_right_keypoints_2d": RIGHT_HAND.stop - RIGHT_HAND.start}
#: Body keypoints appended to the 68 face landmarks (right eye, left eye), as controlnet_aux and core do.
FACE_EYES = [14, 15]
#: Point counts the validator accepts per array (68-point faces come from older writers).
_ACCEPTED_POINTS = {**{k: (n,) for k, n in PART_POINTS.items()}, "face_keypoints_2d": (68, 70)}


def _flatten(points: np.ndarray, min_confidence: float, binary: bool) -> list[float]:
    """``(K, 3)`` -> flat [x, y, c] * K; low-confidence (and zero-confidence) points become [0, 0, 0]."""
    out: list[float] = []
    for x, y, c in points.tolist():
        if c < min_confidence or c <= 0:
            out += [0.0, 0.0, 0.0]
        else:
            out += [float(x), float(y), 1.0 if binary else float(c)]
    return out


def _person(points: np.ndarray, min_confidence: float, binary: bool) -> dict[str, list[float]]:
    whole = points.shape[0] == WHOLEBODY_KEYPOINTS
    if not whole:                                # body only: feet, face (eyes too) and hands not detected
        points = np.concatenate([points, np.zeros((WHOLEBODY_KEYPOINTS - points.shape[0], 3))])
    eyes = points[FACE_EYES] if whole else np.zeros((len(FACE_EYES), 3))
    parts = {"pose_keypoints_2d": points[BODY], "foot_keypoints_2d": points[FEET],
             "face_keypoints_2d": np.concatenate([points[FACE], eyes]),
             "hand_left_keypoints_2d": points[LEFT_HAND], "hand_right_keypoints_2d": points[RIGHT_HAND]}
    return {key: _flatten(part, min_confidence, binary) for key, part in parts.items()}


def keypoints_to_pose_keypoint(keypoints: torch.Tensor | np.ndarray, canvas_width: int, canvas_height: int,
                               min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                               binary_confidence: bool = True) -> PoseKeypoint:
    """``(F, K, 3)`` [x, y, c] in canvas pixels (K = 18 or 134, DWPose whole-body order) -> POSE_KEYPOINT,
    one person per frame, every array present (see the module docstring)."""
    points = np.asarray(keypoints.detach().cpu() if isinstance(keypoints, torch.Tensor) else keypoints, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] not in (NUM_BODY_KEYPOINTS, WHOLEBODY_KEYPOINTS):
        raise InputError(f"keypoints must be (frames, 18 or 134, 3), got {points.shape}")
    return [{"people": [_person(frame, min_confidence, binary_confidence)],
             "canvas_width": int(canvas_width), "canvas_height": int(canvas_height)} for frame in points]


def heatmaps_to_pose_keypoint(heatmaps: torch.Tensor, canvas_width: int, canvas_height: int,
                              min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> PoseKeypoint:
    """M2PEnc heatmaps ``(F, K, h, w)`` (K = 18 or 134) -> POSE_KEYPOINT on a W x H canvas."""
    if heatmaps.ndim != 4:
        raise InputError(f"heatmaps must be (frames, keypoints, h, w), got {tuple(heatmaps.shape)}")
    points = heatmaps_to_keypoints(heatmaps)                               # (F, K, 3) heatmap px
    points = heatmap_to_canvas(points, tuple(heatmaps.shape[-2:]), (canvas_height, canvas_width))
    return keypoints_to_pose_keypoint(points, canvas_width, canvas_height, min_confidence)


def _check_part(value: Any, key: str, counts: Sequence[int], where: str) -> None:
    if value is None and key != "pose_keypoints_2d":                 # absent, or None as controlnet_aux writes
        return
    if not isinstance(value, list) or len(value) not in [3 * n for n in counts]:
        got = f"a list of {len(value)} numbers" if isinstance(value, list) else repr(type(value).__name__)
        raise InputError(f"{where}: {key} must be a flat [x, y, c] list of {' or '.join(str(3 * n) for n in counts)} "
                         f"numbers{'' if key == 'pose_keypoints_2d' else ' or None'}, got {got}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value):
        raise InputError(f"{where}: {key} holds non-numeric or non-finite values")


def _check_frame(frame: Any, index: int) -> None:
    where = f"POSE_KEYPOINT frame {index}"
    if not isinstance(frame, dict):
        raise InputError(f"{where} must be a dict, got {type(frame).__name__}")
    for key in ("canvas_width", "canvas_height"):
        if not isinstance(frame.get(key), int) or isinstance(frame.get(key), bool) or frame[key] <= 0:
            raise InputError(f"{where}: {key} must be a positive int, got {frame.get(key)!r}")
    if not isinstance(frame.get("people"), list):
        raise InputError(f"{where}: 'people' must be a list, got {type(frame.get('people')).__name__}")
    for p, person in enumerate(frame["people"]):
        if not isinstance(person, dict):
            raise InputError(f"{where} person {p} must be a dict")
        for key in _PART_KEYS:
            _check_part(person.get(key), key, _ACCEPTED_POINTS[key], f"{where} person {p}")


def validate_pose_keypoint(frames: Any) -> None:
    """Raise :class:`InputError` unless ``frames`` follows the POSE_KEYPOINT layout (core's or controlnet_aux's)."""
    if not isinstance(frames, list) or not frames:
        raise InputError(f"POSE_KEYPOINT must be a non-empty list of frame dicts, got {type(frames).__name__}")
    for i, frame in enumerate(frames):
        _check_frame(frame, i)


def pose_keypoint_to_keypoints(frames: PoseKeypoint, person: int = 0) -> np.ndarray:
    """Body keypoints of one person per frame: float ``(F, 18, 3)`` in canvas pixels (zeros if absent)."""
    validate_pose_keypoint(frames)
    out = np.zeros((len(frames), NUM_BODY_KEYPOINTS, 3))
    for i, frame in enumerate(frames):
        if person < len(frame["people"]):
            out[i] = np.asarray(frame["people"][person]["pose_keypoints_2d"], dtype=np.float64).reshape(-1, 3)
    return out
