"""Pose videos for the animators ComfyUI users drive today: presets, frame plans, drawing, face crops.

Wan2.2-Animate, UniAnimate-DiT, SteadyDancer, SCAIL and VACE all take a rendered skeleton video (an
IMAGE batch), and each has rules: sizes in multiples of 16 (32 for SCAIL), frame counts ``4n + 1``
(the Wan VAE packs 4 frames into one latent after the first), a native frame rate, and 77- or
81-frame generation windows. :data:`PRESETS` holds those facts as data, each with its source;
:func:`plan_pose_video` turns any requested size / fps / length and any dance length into sizes and
counts the target accepts, with a note of every change.

**Frame policy.** The dance is resampled to the target fps (the same frame-time rule as
:meth:`..motion.SMPLMotion.resample`: frames at ``k / fps`` up to the last source frame's time), then:

* ``"pad"`` (default): the count is rounded **up** to the next valid one by holding the last pose;
  nothing of the dance is lost, and the video runs up to three frames past the dance's end
  (silent if the music has ended; the animator's output keeps the music's timing from frame 0);
* ``"trim"``: rounded **down**, dropping up to three frames of the dance's end.

Frames are never shifted, so frame ``i`` stays at time ``i / fps`` and the music stays in sync. With
``whole_windows`` the count also fills whole chained windows (Wan-Animate: ``77 + 72k``, SCAIL:
``81 + 76k``), which the chained core nodes otherwise pad themselves by repeating the last pose.

**Drawing** (:func:`draw_pose_video`) is :mod:`.render`'s DWPose / controlnet_aux ``draw_bodypose``
(OpenPose colours, 4 px stick half-width, 4 px keypoint radius, limbs at 60 %) - the constants
controlnet_aux states (``stickwidth = 4``, ``cv2.circle(..., 4, ...)``, ``0.6``) and the ones
UniAnimate-DiT's ``dwpose/util.py`` draws with. ComfyUI's Wan-Animate template makes its pose
video with controlnet_aux's DWPreprocessor, so these are the sticks Wan-Animate sees in ComfyUI
(Wan's own preprocessing draws thinner, resolution-scaled sticks: ``max(min(H, W) // 200 - 1, 1)``).
Only the body is drawn; hand and face arrays of a whole-body POSE_KEYPOINT are carried through.

**Face crops** (:func:`draw_face_crops`). Wan-Animate's ``face_video`` is 512 x 512 face crops
(``WanAnimateToVideo`` resizes it to 512 x 512 with a centre crop; Wan's preprocessing cuts a square-ish
box around the face landmarks and resizes it to 512). A dance made from music has no face, so these
are a head-pose proxy, not a face: a square around the head keypoints (nose, eyes, ears), the same
size in every frame (:data:`FACE_BOX_TORSO_RATIO` of the median neck-to-hip length, so it does not
pump when the head turns), with the skeleton drawn at crop resolution in it (and the 68 face
landmarks as DWPose's white dots when the keypoints have them). A caller with a body model can put
a rendered head behind the sticks (``backgrounds``; :func:`clay_shading` turns a normal map into
a neutral clay head). ComfyUI's own Wan-Animate template feeds DWPose face-landmark drawings
there too; expression transfer needs a real face video.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import InputError
from ..progress import NO_CONTROL, RunControl
from ..timeline import rational_fps, resampled_frame_count
from .openpose import BODY, FACE, FEET, LEFT_HAND, NUM_BODY_KEYPOINTS, RIGHT_HAND, WHOLEBODY_KEYPOINTS
from .pose_keypoint import PoseKeypoint, keypoints_to_pose_keypoint, validate_pose_keypoint
from .render import render_frame
from .retarget import HEAD, PlaneMap

FrameFit = Literal["pad", "trim"]
FRAME_FITS: tuple[str, ...] = ("pad", "trim")
#: Wan-Animate's face_video side (WanAnimateToVideo upscales face_video to 512 x 512).
FACE_VIDEO_SIZE = 512
#: Face-crop side as a fraction of the median neck-to-mid-hip length (~0.18 of a person's height:
#: the whole head with a margin, like Wan's face boxes grown by 1.3 in area and toward the forehead).
FACE_BOX_TORSO_RATIO = 0.6
#: DWPose ``draw_facepose``: white landmark dots of radius 3.
FACE_POINT_RADIUS = 3
FACE_POINT_RGB = (255, 255, 255)
#: A neutral clay tone for rendered heads behind the face-crop sticks (RGB), and its ambient share.
CLAY_RGB = (214, 200, 186)
CLAY_AMBIENT = 0.25
NECK, RIGHT_HIP, LEFT_HIP = 1, 8, 11


@dataclass(frozen=True)
class FrameRule:
    """Valid frame counts ``step * n + remainder`` (n >= 0, count >= 1); ``step=1`` allows any count."""

    step: int = 1
    remainder: int = 0

    def __post_init__(self) -> None:
        if self.step < 1 or not 0 <= self.remainder < self.step:
            raise InputError(f"a frame rule needs step >= 1 and 0 <= remainder < step, got {self}")

    @property
    def minimum(self) -> int:
        """The smallest valid count."""
        return self.remainder if self.remainder >= 1 else self.step

    def valid(self, count: int) -> bool:
        return count >= self.minimum and count % self.step == self.remainder

    def __str__(self) -> str:
        return "any count" if self.step == 1 else f"{self.step}n+{self.remainder}"


@dataclass(frozen=True)
class AnimatorPreset:
    """What one animator accepts, as data (see :data:`PRESETS` for the values and their sources).

    Attributes:
        name: preset id; label: the model and the node that takes the pose video.
        fps: native frame rate; ``None`` keeps the dance's own rate.
        size_multiple: width and height must be multiples of it (1: any size).
        frame_rule: valid frame counts.
        window: frames per generation window (None: no windows).
        window_overlap: frames each window shares with the one before (chained: the continued frames;
            context windows: the sampler's default overlap).
        chained: True when long videos are made by chaining windows explicitly (core nodes with
            ``video_frame_offset``), so whole windows matter; False when the sampler slides context
            windows over any length itself.
        default_size: ``(width, height)`` used when none is asked (None: the source's canvas, or 512 x 512).
        takes_face_video: whether the target reads a ``face_video`` (Wan-Animate).
        sources: where each number comes from.
    """

    name: str
    label: str
    fps: Optional[float]
    size_multiple: int
    frame_rule: FrameRule
    window: Optional[int]
    window_overlap: int
    chained: bool
    default_size: Optional[tuple[int, int]]
    takes_face_video: bool
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.window is not None:
            assert self.frame_rule.valid(self.window), self
        if self.chained:                            # chained windows keep every count valid
            assert self.window is not None and 0 <= self.window_overlap < self.window, self
            assert (self.window - self.window_overlap) % self.frame_rule.step == 0, self
        if self.default_size is not None:
            assert all(s % self.size_multiple == 0 for s in self.default_size), self

    @property
    def window_step(self) -> Optional[int]:
        """New frames per chained window (window minus overlap)."""
        return None if self.window is None else self.window - self.window_overlap


_WAN_FRAMES = FrameRule(4, 1)

PRESETS: dict[str, AnimatorPreset] = {p.name: p for p in (
    AnimatorPreset(
        "wan_animate", "Wan2.2-Animate (core WanAnimateToVideo: pose_video + face_video)", 16.0, 16, _WAN_FRAMES,
        77, 5, True, (480, 832), True,
        ("ComfyUI comfy_extras/nodes_wan.py WanAnimateToVideo: width/height step 16, length default 77 step 4, "
         "continue_motion_max_frames default 5, video_frame_offset chaining, pose_video padded with its last "
         "frame, face_video resized to 512x512 'center'",
         "Comfy-Org/workflow_templates video_wan2_2_14B_animate.json: CreateVideo at 16 fps, DWPreprocessor "
         "pose and face videos",
         "Wan-Video/Wan2.2 wan/configs/wan_animate_14B.py: frame_num 77 (sample_fps 30 there; its "
         "preprocess_data.py defaults to --fps 30: pass fps=30 to match the official scripts)")),
    AnimatorPreset(
        "unianimate_dit", "UniAnimate-DiT (Wan2.1-I2V + LoRA; kijai WanVideoWrapper)", 15.0, 16, _WAN_FRAMES,
        81, 16, False, (480, 832), False,
        ("ali-vilab/UniAnimate-DiT examples/unianimate_wan/inference_unianimate_wan_480p.py: height 832, width "
         "480, max_frames 81, save_video fps=15; long videos slide 21-latent (81-frame) context windows",
         "diffsynth/pipelines/wan_video.py: height/width division factor 16, num_frames 4n+1",
         "kijai ComfyUI-WanVideoWrapper WanVideoContextOptions: context_frames 81, context_overlap 16")),
    AnimatorPreset(
        "steadydancer", "SteadyDancer (Wan2.1-I2V-14B; kijai WanVideoWrapper)", 16.0, 16, _WAN_FRAMES,
        81, 16, False, (576, 1024), False,
        ("MCG-NJU/SteadyDancer generate_dancer.py: frame_num 81, sizes 1024*576 / 576*1024 (max area), "
         "wan/configs/shared_config.py sample_fps 16, VAE stride 8 x patch 2 = 16 px",
         "kijai ComfyUI-WanVideoWrapper WanVideoContextOptions: context_frames 81, context_overlap 16")),
    AnimatorPreset(
        "scail", "SCAIL (core WanSCAILToVideo)", 16.0, 32, _WAN_FRAMES, 81, 5, True, (512, 896), False,
        ("ComfyUI comfy_extras/nodes_scail.py WanSCAILToVideo: width 512 / height 896 step 32 (the pose video "
         "is encoded at half size), length 81 step 4, pose video cut to 4n+1, previous_frame_count 5 "
         "('81-frame chunks, 76-frame step'), video_frame_offset chaining",
         "zai-org/SCAIL README: SCAIL-Preview 512p, 5 s on Wan2.1 (16 fps). SCAIL draws its own 3D cylinder "
         "skeletons (SCAIL-Pose); DWPose sticks are a stand-in it was not trained on")),
    AnimatorPreset(
        "vace", "Wan2.1 VACE (core WanVaceToVideo control_video)", 16.0, 16, _WAN_FRAMES, 81, 16, False,
        (480, 832), False,
        ("ComfyUI comfy_extras/nodes_wan.py WanVaceToVideo: width/height step 16, length default 81 step 4, "
         "control_video padded with grey when short",
         "Wan-Video/Wan2.2 wan/configs/shared_config.py (Wan family): sample_fps 16, frame_num 81")),
    AnimatorPreset(
        "free", "no target: keep the dance's rate, any size and count", None, 1, FrameRule(1, 0), None, 0, False,
        None, False, ("no constraints",)),
)}


def get_preset(name: str) -> AnimatorPreset:
    """The preset called ``name``, or an error listing the presets."""
    if name not in PRESETS:
        raise InputError(f"unknown animator preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


# -- the plan ------------------------------------------------------------------------------------

def _round_size(value: int, multiple: int) -> int:
    """Nearest multiple of ``multiple`` (halves up), at least ``multiple``."""
    return max(multiple, int(math.floor(value / multiple + 0.5)) * multiple)


def _counts_up(count: int, preset: AnimatorPreset, whole_windows: bool) -> int:
    """The smallest valid count >= ``count``."""
    rule = preset.frame_rule
    if whole_windows and preset.chained:
        step = preset.window_step
        return preset.window + max(0, math.ceil((count - preset.window) / step)) * step
    count = max(count, rule.minimum)
    return count + (rule.remainder - count) % rule.step


def _counts_down(count: int, preset: AnimatorPreset, whole_windows: bool) -> Optional[int]:
    """The largest valid count <= ``count`` (None if there is none)."""
    rule = preset.frame_rule
    if whole_windows and preset.chained:
        if count < preset.window:
            return None
        return preset.window + (count - preset.window) // preset.window_step * preset.window_step
    count -= (count - rule.remainder) % rule.step
    return count if count >= rule.minimum else None


def window_count(frames: int, preset: AnimatorPreset) -> int:
    """Windows of the target spanning ``frames``, consecutive windows sharing ``window_overlap`` frames."""
    if preset.window is None:
        return 1
    return 1 + max(0, math.ceil((frames - preset.window) / preset.window_step))


@dataclass(frozen=True)
class AnimatorPlan:
    """Sizes and counts of one pose video (all frame counts at ``fps``).

    Attributes:
        preset: the target; width, height: output canvas; fps: output rate.
        source_frames, source_fps: the dance as given; resampled_frames: the dance at ``fps``.
        frames: output frame count; used_frames: dance frames in it (the rest holds the last pose).
        padded: frames holding the last pose; trimmed: dance frames left out (at ``fps``).
        windows: target windows the video spans; notes: one human-readable line per change.
    """

    preset: AnimatorPreset
    width: int
    height: int
    fps: float
    source_frames: int
    source_fps: float
    resampled_frames: int
    frames: int
    used_frames: int
    windows: int
    notes: tuple[str, ...]

    @property
    def padded(self) -> int:
        return self.frames - self.used_frames

    @property
    def trimmed(self) -> int:
        return self.resampled_frames - self.used_frames

    @property
    def note(self) -> str:
        return "\n".join(self.notes)


def _plan_size(preset: AnimatorPreset, width: int, height: int,
               source_size: Optional[tuple[int, int]]) -> tuple[int, int, list[str]]:
    notes: list[str] = []
    if (width <= 0) != (height <= 0):
        raise InputError(f"give both width and height, or 0 for both (the preset's size), got {width}x{height}")
    if width <= 0:
        width, height = preset.default_size or source_size or (512, 512)
        notes.append(f"size {width}x{height}: {preset.name}'s default")
    w, h = _round_size(int(width), preset.size_multiple), _round_size(int(height), preset.size_multiple)
    if (w, h) != (width, height):
        notes.append(f"size {width}x{height} -> {w}x{h} ({preset.name} needs multiples of {preset.size_multiple})")
    return w, h, notes


def _plan_frames(preset: AnimatorPreset, resampled: int, length: int, fit: FrameFit, whole_windows: bool,
                 fps: float) -> tuple[int, int, list[str]]:
    notes: list[str] = []
    wanted = resampled
    if length > 0:
        wanted = int(length)
        if length > resampled:
            notes.append(f"length {length} asked, the dance has {resampled} frames at {fps:g} fps")
        elif length < resampled:
            notes.append(f"length {length}: the dance's last {resampled - length} frames "
                         f"({(resampled - length) / fps:.2f} s) are left out")
    rule = f"whole windows of {preset.window}" if whole_windows and preset.chained else str(preset.frame_rule)
    frames = _counts_down(wanted, preset, whole_windows) if fit == "trim" else None
    if frames is None:
        frames = _counts_up(wanted, preset, whole_windows)
        if fit == "trim":
            notes.append(f"too short to trim to {rule}: padded instead")
    if frames != wanted:
        verb = "padded" if frames > wanted else "trimmed"
        notes.append(f"frames {wanted} -> {frames}: {verb} to {rule}")
    used = min(frames, resampled)
    if frames > used:
        notes.append(f"held the last pose for {frames - used} frame(s) ({(frames - used) / fps:.2f} s) "
                     "after the dance ends")
    return frames, used, notes


def plan_pose_video(preset: AnimatorPreset | str, num_frames: int, source_fps: float, width: int = 0,
                    height: int = 0, fps: float = 0.0, length: int = 0, fit: FrameFit = "pad",
                    whole_windows: bool = False,
                    source_size: Optional[tuple[int, int]] = None) -> AnimatorPlan:
    """Sizes and counts for a pose video of a ``num_frames``-frame dance at ``source_fps``.

    Args:
        preset: an :class:`AnimatorPreset` or its name.
        width, height: requested canvas (0, 0: the preset's default size); rounded to the nearest
            multiple the target needs (halves up).
        fps: requested rate (0: the preset's native rate; ``free``: the dance's rate).
        length: requested frames at ``fps`` (0: the whole dance); more than the dance holds the last pose.
        fit: ``"pad"`` rounds the count up, ``"trim"`` down (module docstring).
        whole_windows: for chained targets, also fill whole windows.
        source_size: the dance's canvas ``(w, h)`` if it has one (the ``free`` preset's default size).
    Returns:
        The :class:`AnimatorPlan`; its ``notes`` start with a summary line and list every change.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if fit not in FRAME_FITS:
        raise InputError(f"fit must be one of {FRAME_FITS}, got {fit!r}")
    if length < 0:
        raise InputError(f"length must be >= 0 frames (0 = the whole dance), got {length}")
    rational_fps(source_fps)
    if fps < 0 or not math.isfinite(fps):
        raise InputError(f"fps must be >= 0 (0 = the preset's rate), got {fps}")
    width, height, size_notes = _plan_size(preset, width, height, source_size)
    out_fps = float(fps) if fps > 0 else float(preset.fps or source_fps)
    notes = list(size_notes)
    if preset.fps is not None and fps > 0 and fps != preset.fps:
        notes.append(f"fps {fps:g} asked instead of {preset.name}'s {preset.fps:g}")
    resampled = resampled_frame_count(num_frames, source_fps, out_fps)
    if out_fps != source_fps:
        notes.append(f"fps {source_fps:g} -> {out_fps:g}: the dance's {num_frames} frames resampled to {resampled}")
    frames, used, frame_notes = _plan_frames(preset, resampled, length, fit, whole_windows, out_fps)
    notes += frame_notes
    if whole_windows and not preset.chained:
        notes.append(f"whole_windows ignored: {preset.name} " + ("has no windows" if preset.window is None else
                                                                "slides its own context windows over any length"))
    windows = window_count(frames, preset)
    if preset.window is not None and windows > 1:
        notes.append(f"{windows} windows of {preset.window} frames" + (
            f" ({preset.window_overlap}-frame overlap): chain {windows} nodes through video_frame_offset"
            if preset.chained else " (the sampler's context windows)"))
    summary = f"{preset.name}: {width}x{height}, {out_fps:g} fps, {frames} frames ({frames / out_fps:.2f} s)"
    return AnimatorPlan(preset, width, height, out_fps, int(num_frames), float(source_fps), resampled, frames,
                        used, windows, (summary, *notes))


# -- keypoint sequences ----------------------------------------------------------------------------

def _check_points(keypoints: np.ndarray) -> np.ndarray:
    points = np.asarray(keypoints, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] not in (NUM_BODY_KEYPOINTS, WHOLEBODY_KEYPOINTS) \
            or points.shape[0] < 1:
        raise InputError(f"keypoints must be (frames >= 1, 18 or 134, 3) [x, y, confidence], got {points.shape}")
    if not np.isfinite(points).all():
        raise InputError("keypoints contain NaN or infinite values")
    return points


def resample_keypoints(keypoints: np.ndarray, source_fps: float, fps: float) -> np.ndarray:
    """``(N, K, 3)`` at ``source_fps`` -> ``(M, K, 3)`` at ``fps`` (M from :func:`resampled_frame_count`).

    A point seen in both source frames around ``t_k`` is interpolated linearly (x, y and confidence);
    otherwise the nearer source frame's point is taken as it is (possibly undetected).
    """
    points = _check_points(keypoints)
    count = resampled_frame_count(points.shape[0], source_fps, fps)
    if fps == source_fps:
        return points.copy()
    position = np.arange(count, dtype=np.float64) * source_fps / fps
    snapped = np.round(position)
    position = np.where(np.abs(position - snapped) < 1e-9, snapped, position)
    lo = np.minimum(np.floor(position).astype(np.int64), points.shape[0] - 1)
    hi = np.minimum(lo + 1, points.shape[0] - 1)
    w = (position - lo)[:, None, None]
    a, b = points[lo], points[hi]
    both = (a[..., 2:] > 0) & (b[..., 2:] > 0)
    nearest = np.where(w < 0.5, a, b)
    return np.where(both, (1 - w) * a + w * b, nearest)


def fit_frames(keypoints: np.ndarray, plan: AnimatorPlan) -> np.ndarray:
    """The plan's ``(frames, K, 3)``: the first ``used_frames`` resampled frames, then the last one held."""
    points = _check_points(keypoints)
    if points.shape[0] < plan.used_frames:
        raise InputError(f"the plan uses {plan.used_frames} frames but {points.shape[0]} were given")
    used = points[:plan.used_frames]
    return np.concatenate([used, np.repeat(used[-1:], plan.padded, axis=0)])


def pose_keypoint_sequence(frames: PoseKeypoint, person: int = 0) -> tuple[np.ndarray, tuple[int, int], int]:
    """POSE_KEYPOINT -> ``(keypoints (F, K, 3), (canvas_width, canvas_height), most people in a frame)``.

    One person (index ``person``; absent frames are all-undetected). K = 134 (DWPose whole-body order:
    body, feet, 68 face landmarks, left and right hand) when any frame has a detected foot, face or hand
    point, else 18. Every frame must share one canvas size.
    """
    validate_pose_keypoint(frames)
    sizes = {(f["canvas_width"], f["canvas_height"]) for f in frames}
    if len(sizes) != 1:
        raise InputError(f"all POSE_KEYPOINT frames must share one canvas size, got {sorted(sizes)}")
    parts = (("foot_keypoints_2d", FEET), ("face_keypoints_2d", FACE), ("hand_left_keypoints_2d", LEFT_HAND),
             ("hand_right_keypoints_2d", RIGHT_HAND))
    out = np.zeros((len(frames), WHOLEBODY_KEYPOINTS, 3))
    for i, frame in enumerate(frames):
        if person >= len(frame["people"]):
            continue
        entry = frame["people"][person]
        out[i, BODY] = np.asarray(entry["pose_keypoints_2d"], dtype=np.float64).reshape(-1, 3)
        for key, where in parts:
            if entry.get(key) is not None:
                values = np.asarray(entry[key], dtype=np.float64).reshape(-1, 3)
                out[i, where] = values[:where.stop - where.start]      # a 70-point face: its 68 landmarks
    whole = bool((out[:, NUM_BODY_KEYPOINTS:, 2] > 0).any())
    most = max(len(f["people"]) for f in frames)
    return (out if whole else out[:, :NUM_BODY_KEYPOINTS]), sizes.pop(), most


# -- drawing -----------------------------------------------------------------------------------------

def _frame_dict(points: np.ndarray, width: int, height: int) -> dict[str, Any]:
    return keypoints_to_pose_keypoint(points[None], width, height)[0]


def draw_pose_video(keypoints: np.ndarray, width: int, height: int,
                    control: RunControl = NO_CONTROL) -> tuple[torch.Tensor, PoseKeypoint]:
    """Keypoints ``(F, K, 3)`` on a W x H canvas -> (IMAGE ``(F, H, W, 3)`` float32 in [0, 1], POSE_KEYPOINT).

    The images are exactly :func:`.render.render_frame` of the returned POSE_KEYPOINT (DWPose body
    drawing, module docstring); points under the POSE_KEYPOINT confidence threshold are not drawn.
    Progress: one ``"pose video"`` tick per frame, with cancel checks.
    """
    points = _check_points(keypoints)
    pose = keypoints_to_pose_keypoint(points, width, height)
    video = torch.empty((len(pose), height, width, 3), dtype=torch.float32)
    for i, frame in enumerate(pose):
        video[i] = torch.tensor(render_frame(frame), dtype=torch.float32).div_(255.0)
        control.tick("pose video", i + 1, len(pose))
    return video, pose


def _fill_missing(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (F, D) without ``present`` take the nearest present row (ties: the earlier)."""
    index = np.flatnonzero(present)
    nearest = np.abs(np.arange(len(values))[:, None] - index[None, :]).argmin(axis=1)
    return values[index[nearest]]


def face_boxes(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """Square face crops, float ``(F, 3)`` ``[centre_x, centre_y, side]`` in canvas pixels.

    Centre: the mean of the frame's visible head keypoints (nose, eyes, ears); frames without one take
    the nearest frame's; if no frame has one, the neck, else the canvas's upper third. Side: constant,
    :data:`FACE_BOX_TORSO_RATIO` x the median neck-to-mid-hip length over the frames that show
    them; without any, a quarter of the canvas's shorter side.
    """
    points = _check_points(keypoints)[:, :NUM_BODY_KEYPOINTS]
    head = points[:, list(HEAD)]
    seen = head[..., 2] > 0
    count = seen.sum(axis=1)
    centres = (head[..., :2] * seen[..., None]).sum(axis=1) / np.maximum(count, 1)[:, None]
    if count.any():
        centres = _fill_missing(centres, count > 0)
    elif (points[:, NECK, 2] > 0).any():
        centres = _fill_missing(points[:, NECK, :2], points[:, NECK, 2] > 0)
    else:
        centres = np.tile([(width - 1) / 2, (height - 1) / 3], (len(points), 1))
    torso_seen = (points[:, NECK, 2] > 0) & (points[:, RIGHT_HIP, 2] > 0) & (points[:, LEFT_HIP, 2] > 0)
    if torso_seen.any():
        hips = (points[torso_seen, RIGHT_HIP, :2] + points[torso_seen, LEFT_HIP, :2]) / 2
        torso = float(np.median(np.linalg.norm(points[torso_seen, NECK, :2] - hips, axis=1)))
        side = max(FACE_BOX_TORSO_RATIO * torso, 8.0)
    else:
        side = min(width, height) / 4
    return np.concatenate([centres, np.full((len(points), 1), side)], axis=1)


def face_crop_window(box: Sequence[float]) -> tuple[float, float, float]:
    """``[cx, cy, side]`` (keypoint coordinates) -> ``(left, top, side)`` of the square in pixel-edge
    coordinates (pixel i covers [i, i + 1)), as :meth:`..render.camera.PinholeCamera.crop` takes it."""
    cx, cy, side = (float(v) for v in box)
    return cx + 0.5 - side / 2, cy + 0.5 - side / 2, side


def face_crop_map(box: Sequence[float], size: int = FACE_VIDEO_SIZE) -> PlaneMap:
    """Canvas keypoint coordinates -> keypoint coordinates of the ``size x size`` crop of ``box``."""
    left, top, side = face_crop_window(box)
    k = size / side
    return PlaneMap.uniform(k, (0.5 - left) * k - 0.5, (0.5 - top) * k - 0.5)


def _draw_face_points(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    r = FACE_POINT_RADIUS
    for x, y, c in points:
        if c > 0:
            x, y = int(x), int(y)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=FACE_POINT_RGB)
    return np.asarray(canvas)


def draw_face_crops(keypoints: np.ndarray, boxes: np.ndarray, size: int = FACE_VIDEO_SIZE,
                    backgrounds: Optional[np.ndarray] = None,
                    control: RunControl = NO_CONTROL) -> torch.Tensor:
    """Face crops, IMAGE float32 ``(F, size, size, 3)``: the skeleton drawn at crop resolution in each box.

    Args:
        keypoints: ``(F, K, 3)`` canvas keypoints; with K = 134 the face landmarks are drawn too.
        boxes: ``(F, 3)`` from :func:`face_boxes`.
        backgrounds: optional uint8 ``(F, size, size, 3)`` shown where the skeleton leaves black
            (e.g. :func:`clay_shading` of a rendered head).
        control: one ``"face crops"`` tick per frame, with cancel checks.
    """
    points = _check_points(keypoints)
    if boxes.shape != (points.shape[0], 3):
        raise InputError(f"boxes must be ({points.shape[0]}, 3), got {tuple(boxes.shape)}")
    if backgrounds is not None and tuple(backgrounds.shape) != (points.shape[0], size, size, 3):
        raise InputError(f"backgrounds must be ({points.shape[0]}, {size}, {size}, 3), got {tuple(backgrounds.shape)}")
    out = torch.empty((points.shape[0], size, size, 3), dtype=torch.float32)
    for i, (frame, box) in enumerate(zip(points, boxes)):
        local = face_crop_map(box, size).apply(frame)
        image = render_frame(_frame_dict(local, size, size))
        if local.shape[0] == WHOLEBODY_KEYPOINTS:
            image = _draw_face_points(image, local[FACE])
        if backgrounds is not None:
            image = np.where(image.any(axis=-1, keepdims=True), image, backgrounds[i])
        out[i] = torch.tensor(image, dtype=torch.float32).div_(255.0)
        control.tick("face crops", i + 1, points.shape[0])
    return out


def clay_shading(normal: torch.Tensor | np.ndarray) -> np.ndarray:
    """Champ-convention normal maps uint8 ``(B, H, W, 3)`` -> uint8 clay renders ``(B, H, W, 3)``.

    Lit from the camera: ``shade = ambient + (1 - ambient) * max(0, -n_z)`` with ``-n_z = 2 B / 255 - 1``
    (the normal map's blue channel is ``(1 - n_z) / 2``), times :data:`CLAY_RGB`; background (all
    channels 0) stays black.
    """
    maps = normal.detach().cpu().numpy() if isinstance(normal, torch.Tensor) else np.asarray(normal)
    if maps.ndim != 4 or maps.shape[-1] != 3 or maps.dtype != np.uint8:
        raise InputError(f"normal maps must be uint8 (B, H, W, 3), got {maps.dtype} {maps.shape}")
    facing = np.clip(2.0 * np.arange(256) / 255.0 - 1.0, 0.0, 1.0)[:, None]          # per blue value
    lut = np.floor((CLAY_AMBIENT + (1.0 - CLAY_AMBIENT) * facing) * np.asarray(CLAY_RGB) + 0.5).astype(np.uint8)
    out = lut[maps[..., 2]]
    out[~maps.any(axis=-1)] = 0
    return out
