"""3D dance metrics on SMPL joint positions: EDGE's PFC, Bailando's FID_k / FID_g and Div_k / Div_g.

Every metric here reads world joint positions ``(F, 24, 3)`` in metres, SMPL joint order
(:data:`..body.skeleton.JOINT_NAMES`); :func:`motion_joints` makes them from an
:class:`~..motion.SMPLMotion` by forward kinematics on SMPL's neutral skeleton (the tree and bone
offsets EDGE's ``SMPLSkeleton`` uses), turned to the up axis and frame rate each metric assumes.
Our motions say their own up axis (``SMPLMotion.up_axis``: AIST++, BVH and the choreographer are
y up, EDGE's outputs z up); the conversions below handle both.

**PFC**, Physical Foot Contact (EDGE, ``eval/eval_pfc.py``, lines 10-51): z up, 30 fps. Per clip,
root (joint 0) acceleration ``a_t`` by finite differences with ``DT = 1/30`` s, its up component
clamped to ``>= 0``, ``|a_t|`` divided by its maximum over the clip; horizontal per-frame foot
displacements ``v`` of left ankle/toes (joints 7, 10) and right ankle/toes (8, 11), taken as
``feet[t + 2] - feet[t + 1]`` (not divided by DT); per foot the slower of its two joints;
``PFC_clip = mean_t(minL_t * minR_t * |a_t| / max|a|)``; ``PFC = 10^4 * mean over clips``. Because
``|a|`` is normalised by its maximum, DT cancels; the frame rate matters through the per-frame foot
displacements, so clips must be at 30 fps (:func:`motion_pfc` resamples). EDGE's script samples 1000
clips when given more; here every clip counts. A clip whose root never accelerates (``max|a| = 0``,
a 0/0 in EDGE) scores 0.

**Bailando's features** (``utils/features/kinetic.py``, ``utils/features/manual_new.py``,
``utils/features/utils.py``, after fairmotion): y up, 60 fps (AIST++'s rate), positions made
"zero start" first (every joint minus the root position of frame 0; ``extract_aist_features.py``
lines 51-52, ``metrics_new.py`` lines 164-168), and generated dances cut to their first 1200 frames
(``metrics_new.py`` line 164; the ground truth is not cut).

* Kinetic, 72-d (:func:`kinetic_features`): per joint, in joint order, ``[horizontal kinetic
  energy, vertical kinetic energy, energy expenditure]``. For each frame ``i = 1 .. F-1`` the
  velocity is the mean of the up-to-5 frame differences ``p[k] - p[k-1]``, ``k = i-2 .. i+2``
  inside the clip, over the frame time 1/60 s; its horizontal part is ``(x, z)``, its vertical part
  ``y``; the energies are the mean over ``i`` of the squared norms (no 1/2, no mass). The energy
  expenditure is the mean over ``i`` of the norm of the windowed acceleration, and Bailando's code
  computes the earlier velocity as ``p[m] - p[m-1] / frame_time`` (operator precedence), so this
  column depends on absolute positions; ``energy="bailando"`` (default) keeps that so values match
  the published tables, ``energy="corrected"`` uses ``(p[m] - p[m-1]) / frame_time``.
* Geometric ("manual"), 32-d (:func:`geometric_features`): the fraction of frames ``t = 1 .. F-1``
  where each boolean feature below holds (Bailando's list, in its order). Thresholds are multiples
  of constants measured on SMPL's rest pose: humerus length ``hl`` = 0.2568 m, shoulder width
  ``sw`` = 0.3908 m, hip width ``hw`` = 0.1192 m (:data:`HUMERUS_LENGTH` etc.). Velocities use a
  fixed 1/120 s per frame (fairmotion's default, kept by Bailando whatever the data's rate).
  Kinds (``p`` = position at frame t, ``p'`` at t-1):

  - ``move(a, b, c, th)``: velocity of ``c`` relative to ``a``, ``((p_c - p_a) - (p'_c - p'_a)) * 120``,
    along ``p_b - p_a`` exceeds ``th``;
  - ``nmove(a, b, c, d, th)``: velocity of ``d`` relative to ``a`` along the normal
    ``(p_c - p_a) x (p_b - p_a)`` exceeds ``th``;
  - ``plane(a, b, c, d, th)``: signed distance of ``d`` from the plane through ``a, b, c``
    (normal ``(p_c - p_a) x (p_b - p_a)``) exceeds ``th``;
  - ``nplane(a, b, c, d, th)``: signed distance of ``d`` from the plane through ``c`` with normal
    ``p_b - p_a`` exceeds ``th``;
  - ``angle(a, b, c, d, (lo, hi))``: the angle between ``p_b - p_a`` and ``p_d - p_c`` lies
    strictly between ``lo`` and ``hi`` degrees;
  - ``fast(a, th)``: speed of ``a``, ``|p_a - p'_a| * 120``, exceeds ``th``.

  ``zero`` = (0, 0, 0), ``y_unit`` = (0, 1, 0), ``minus_y_unit`` = (0, -1, 0), ``y_min`` =
  (0, lowest joint height of the frame, 0). The 32 features (:data:`GEOMETRIC_FEATURES`):

  1. nmove(neck, rhip, lhip, rwrist, 1.8 hl)    2. nmove(neck, lhip, rhip, lwrist, 1.8 hl)
  3. nplane(chest, neck, neck, rwrist, 0.2 hl)  4. nplane(chest, neck, neck, lwrist, 0.2 hl)
  5. move(belly, chest, chest, 1.8 hl)          6. move(belly, chest, chest, 1.8 hl)
  7. angle(relbow, rshoulder, relbow, rwrist, 0-110)   8. angle(lelbow, lshoulder, lelbow, lwrist, 0-110)
  9. nplane(lshoulder, rshoulder, lwrist, rwrist, 2.5 sw)
  10. move(lwrist, rwrist, rwrist, 1.4 hl)     11. move(rwrist, root, lwrist, 1.4 hl)
  12. move(lwrist, root, rwrist, 1.4 hl)       13. fast(rwrist, 2.5 hl)   14. fast(lwrist, 2.5 hl)
  15. plane(root, lhip, ltoes, rankle, 0.38 hl)        16. plane(root, rhip, rtoes, lankle, 0.38 hl)
  17. nplane(zero, y_unit, y_min, rankle, 1.2 hl)      18. nplane(zero, y_unit, y_min, lankle, 1.2 hl)
  19. nplane(lhip, rhip, lankle, rankle, 2.1 hw)
  20. angle(rknee, rhip, rknee, rankle, 0-110)  21. angle(lknee, lhip, lknee, lankle, 0-110)
  22. fast(rankle, 2.5 hl)   23. fast(lankle, 2.5 hl)
  24. angle(neck, root, rshoulder, relbow, 25-180)     25. angle(neck, root, lshoulder, lelbow, 25-180)
  26. angle(neck, root, rhip, rknee, 50-180)           27. angle(neck, root, lhip, lknee, 50-180)
  28. plane(rankle, neck, lankle, root, 0.5 hl)        29. angle(neck, root, zero, y_unit, 70-110)
  30. nplane(zero, minus_y_unit, y_min, rwrist, -1.2 hl)
  31. nplane(zero, minus_y_unit, y_min, lwrist, -1.2 hl)
  32. fast(root, 2.3 hl)

  Bailando's ``f_move(j1, j2, j3, j4)`` passes ``j3`` (not ``j4``) as the moving joint, so its
  fourth joint (rwrist, lwrist, lwrist, root, root in features 5, 6, 10, 11, 12) is unused and
  features 5 and 6 are the same; kept as is, since the published numbers come from it.

**FID and Div** (``utils/metrics_new.py``): the features of the generated set and of the ground
truth are both normalised by the ground truth's per-dimension mean and (population) std,
``(x - mean_gt) / (std_gt + 1e-10)`` (``normalize(gt, pred)``, lines 9-13, 58-59); FID is the
Fréchet distance between Gaussians with the sets' means and sample covariances
(``np.cov(rowvar=False)``; ``scipy.linalg.sqrtm`` of the product, 1e-5 added to the diagonals if it
is not finite, imaginary parts dropped; lines 93-129), here in float64; Div is the mean Euclidean
distance over all unordered pairs of (normalised) feature vectors (``calculate_avg_distance``, lines
138-149). FID_g is Bailando's ``fid_m`` (manual = geometric).

**Ground truth** (Bailando's ``extract_aist_features.py``): every AIST++ motion not in
``ignore_list.txt``, whole sequences at 60 fps, pelvis at ``smpl_trans / smpl_scaling``.
:func:`aist_ground_truth_stats` reads them from the user's AIST++ folder and caches the
per-sequence features in an ``.npz`` (plain arrays, loaded with ``allow_pickle=False``). Bailando
posed SMPL's male body through ``smplx``; here joints come from SMPL's neutral skeleton (no model
file needed), so values differ slightly from features made with the male model.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Optional, Sequence, Union

import numpy as np
import torch
from scipy import linalg

from ..body.skeleton import JOINT_NAMES, NUM_JOINTS, forward_kinematics
from ..checkpoint import atomic_write
from ..errors import InputError
from ..motion.format import SMPLMotion, UpAxis
from ..motion.io import load_motion
from ..progress import NO_CONTROL, RunControl

PathLike = Union[str, os.PathLike]
Joints = Union[np.ndarray, torch.Tensor]

# -- PFC (EDGE eval/eval_pfc.py) --------------------------------------------------------------
#: EDGE's PFC assumes z up and 30 fps motions.
PFC_UP_AXIS: UpAxis = "z"
PFC_FPS = 30.0
PFC_DT = 1.0 / 30.0
#: Left ankle, left toes, right ankle, right toes (EDGE's ``foot_idx``).
PFC_FOOT_JOINTS: tuple[int, int, int, int] = (7, 10, 8, 11)
PFC_SCALE = 1.0e4

# -- Bailando's features -----------------------------------------------------------------------
#: Bailando computes its features on 60 fps, y-up positions.
FEATURE_FPS = 60.0
FEATURE_UP_AXIS: UpAxis = "y"
KINETIC_FRAME_TIME = 1.0 / 60.0
KINETIC_WINDOW = 2
#: fairmotion's default time per frame, used by every geometric velocity feature.
GEOMETRIC_FRAME_TIME = 1.0 / 120.0
#: Generated dances are cut to this many frames before their features are taken (20 s at 60 fps).
GENERATED_MAX_FRAMES = 1200
KINETIC_DIM = 3 * NUM_JOINTS
GEOMETRIC_DIM = 32
#: ``normalize``'s guard against a zero std.
NORMALIZE_EPS = 1e-10
#: Added to the covariance diagonals when the Fréchet square root is not finite.
FID_EPS = 1e-5


#: SMPL rest-pose lengths Bailando hard-codes (``ManualFeatures.__init__``), metres.
_LSHOULDER = (1.99113488e-01, 2.36807942e-01, -1.80702247e-02)
_LELBOW = (4.54445392e-01, 2.21158922e-01, -4.10167128e-02)
_RSHOULDER = (-1.91692337e-01, 2.36928746e-01, -1.23055102e-02)
_LHIP = (5.64076714e-02, -3.23069185e-01, 1.09197125e-02)
_RHIP = (-6.24834076e-02, -3.31302464e-01, 1.50412619e-02)
HUMERUS_LENGTH = math.dist(_LSHOULDER, _LELBOW)
SHOULDER_WIDTH = math.dist(_LSHOULDER, _RSHOULDER)
HIP_WIDTH = math.dist(_LHIP, _RHIP)

_HL, _SW, _HW = HUMERUS_LENGTH, SHOULDER_WIDTH, HIP_WIDTH
#: Bailando's 32 geometric features: (kind, points, threshold or (lo, hi) degrees), in order.
GEOMETRIC_FEATURES: tuple[tuple[str, tuple[str, ...], Union[float, tuple[float, float]]], ...] = (
    ("nmove", ("neck", "rhip", "lhip", "rwrist"), 1.8 * _HL),
    ("nmove", ("neck", "lhip", "rhip", "lwrist"), 1.8 * _HL),
    ("nplane", ("chest", "neck", "neck", "rwrist"), 0.2 * _HL),
    ("nplane", ("chest", "neck", "neck", "lwrist"), 0.2 * _HL),
    ("move", ("belly", "chest", "chest"), 1.8 * _HL),
    ("move", ("belly", "chest", "chest"), 1.8 * _HL),
    ("angle", ("relbow", "rshoulder", "relbow", "rwrist"), (0.0, 110.0)),
    ("angle", ("lelbow", "lshoulder", "lelbow", "lwrist"), (0.0, 110.0)),
    ("nplane", ("lshoulder", "rshoulder", "lwrist", "rwrist"), 2.5 * _SW),
    ("move", ("lwrist", "rwrist", "rwrist"), 1.4 * _HL),
    ("move", ("rwrist", "root", "lwrist"), 1.4 * _HL),
    ("move", ("lwrist", "root", "rwrist"), 1.4 * _HL),
    ("fast", ("rwrist",), 2.5 * _HL),
    ("fast", ("lwrist",), 2.5 * _HL),
    ("plane", ("root", "lhip", "ltoes", "rankle"), 0.38 * _HL),
    ("plane", ("root", "rhip", "rtoes", "lankle"), 0.38 * _HL),
    ("nplane", ("zero", "y_unit", "y_min", "rankle"), 1.2 * _HL),
    ("nplane", ("zero", "y_unit", "y_min", "lankle"), 1.2 * _HL),
    ("nplane", ("lhip", "rhip", "lankle", "rankle"), 2.1 * _HW),
    ("angle", ("rknee", "rhip", "rknee", "rankle"), (0.0, 110.0)),
    ("angle", ("lknee", "lhip", "lknee", "lankle"), (0.0, 110.0)),
    ("fast", ("rankle",), 2.5 * _HL),
    ("fast", ("lankle",), 2.5 * _HL),
    ("angle", ("neck", "root", "rshoulder", "relbow"), (25.0, 180.0)),
    ("angle", ("neck", "root", "lshoulder", "lelbow"), (25.0, 180.0)),
    ("angle", ("neck", "root", "rhip", "rknee"), (50.0, 180.0)),
    ("angle", ("neck", "root", "lhip", "lknee"), (50.0, 180.0)),
    ("plane", ("rankle", "neck", "lankle", "root"), 0.5 * _HL),
    ("angle", ("neck", "root", "zero", "y_unit"), (70.0, 110.0)),
    ("nplane", ("zero", "minus_y_unit", "y_min", "rwrist"), -1.2 * _HL),
    ("nplane", ("zero", "minus_y_unit", "y_min", "lwrist"), -1.2 * _HL),
    ("fast", ("root",), 2.3 * _HL),
)
_CONSTANT_POINTS = {"zero": (0.0, 0.0, 0.0), "y_unit": (0.0, 1.0, 0.0), "minus_y_unit": (0.0, -1.0, 0.0)}
_AXIS = {"x": 0, "y": 1, "z": 2}

# -- AIST++ ground truth -----------------------------------------------------------------------
#: ``"all"`` = Bailando's ground truth (every motion not ignored); the others are AIST++'s
#: cross-modal splits (``splits/crossmodal_<split>.txt``).
GT_SPLITS: tuple[str, ...] = ("all", "train", "val", "test")
#: Bumped when the feature definitions change, so stale caches are recomputed.
FEATURES_VERSION = 1


# == joints ===================================================================================
def motion_joints(motion: SMPLMotion, up_axis: UpAxis, fps: Optional[float] = None,
                  offsets: Optional[torch.Tensor] = None) -> np.ndarray:
    """World joint positions of a motion, by forward kinematics in float64.

    The skeleton is SMPL's neutral one (EDGE's ``SMPLSkeleton``); the motion's ``betas`` are not
    used (pass ``offsets`` for another body).

    Args:
        motion: any :class:`SMPLMotion` (its ``up_axis`` says which way is up).
        up_axis: ``"y"`` or ``"z"``: the up axis of the returned positions (the motion is turned).
        fps: resample the motion to this rate first (slerp/lerp, :meth:`SMPLMotion.resample`);
            ``None`` keeps the motion's own.
        offsets: ``(24, 3)`` bone vectors in SMPL's body frame (default SMPL's neutral rest pose).
    Returns:
        ``(F, 24, 3)`` float64, metres; joint 0 (the pelvis) at ``motion.trans``.
    """
    if not isinstance(motion, SMPLMotion):
        raise InputError(f"expected an SMPLMotion, got {type(motion).__name__}")
    motion = motion.to_up_axis(up_axis)
    if fps is not None:
        motion = motion.resample(fps)
    poses, trans = motion.to_torch(dtype=torch.float64)
    # offsets are in the body frame; a z-up motion's root rotation holds the y -> z turn
    joints, _ = forward_kinematics(poses, trans, offsets)
    return joints.numpy()


def _joints(joints: Joints, what: str, min_frames: int) -> np.ndarray:
    """``(F, 24, 3)`` float64 copy, checked (shape, frames, finite)."""
    array = joints.detach().cpu().numpy() if isinstance(joints, torch.Tensor) else joints
    try:
        array = np.array(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: joints must be an array of numbers, got {type(joints).__name__}") from None
    if array.ndim != 3 or array.shape[1:] != (NUM_JOINTS, 3):
        raise InputError(f"{what}: joints must be (frames, 24, 3) SMPL joint positions, got shape {array.shape}")
    if array.shape[0] < min_frames:
        raise InputError(f"{what}: needs at least {min_frames} frames, got {array.shape[0]}")
    if not np.isfinite(array).all():
        raise InputError(f"{what}: joints hold NaN/inf values")
    return array


def _clips(clips: Union[Joints, Sequence[Joints]]) -> list[Joints]:
    """One ``(F, 24, 3)`` array, a ``(B, F, 24, 3)`` batch or a sequence of clips -> list of clips."""
    if isinstance(clips, (np.ndarray, torch.Tensor)):
        if clips.ndim == 3:
            return [clips]
        if clips.ndim == 4:
            return list(clips)
        raise InputError(f"joints must be (F, 24, 3) or (B, F, 24, 3), got shape {tuple(clips.shape)}")
    clips = list(clips)
    if not clips:
        raise InputError("no clips given; pass at least one (F, 24, 3) joint array")
    return clips


# == PFC ======================================================================================
def pfc_clip(joints: Joints, up_axis: UpAxis = PFC_UP_AXIS) -> float:
    """One clip's Physical Foot Contact term, before EDGE's 10^4 scale (see the module docstring).

    Args:
        joints: ``(F, 24, 3)`` joint positions at 30 fps, F >= 3 (EDGE: z up).
        up_axis: which axis is up in ``joints`` (EDGE: ``"z"``).
    Returns:
        ``mean_t(minL_t * minR_t * |a_t| / max|a|)`` over the ``F - 2`` accelerations (0 if the
        root never accelerates).
    """
    if up_axis not in ("y", "z"):
        raise InputError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    j = _joints(joints, "PFC", 3)
    up = _AXIS[up_axis]
    flat = [axis for axis in range(3) if axis != up]
    root_v = (j[1:, 0] - j[:-1, 0]) / PFC_DT                    # (F - 1, 3)
    root_a = (root_v[1:] - root_v[:-1]) / PFC_DT                # (F - 2, 3)
    root_a[:, up] = np.maximum(root_a[:, up], 0.0)
    accel = np.linalg.norm(root_a, axis=-1)                     # (F - 2,)
    peak = accel.max()
    if peak <= 0.0:
        return 0.0
    accel = accel / peak
    feet = j[:, list(PFC_FOOT_JOINTS)][..., flat]               # (F, 4, 2)
    foot_v = np.linalg.norm(feet[2:] - feet[1:-1], axis=-1)     # (F - 2, 4), per frame
    left = np.minimum(foot_v[:, 0], foot_v[:, 1])
    right = np.minimum(foot_v[:, 2], foot_v[:, 3])
    return float(np.mean(left * right * accel))


def pfc(clips: Union[Joints, Sequence[Joints]], up_axis: UpAxis = PFC_UP_AXIS) -> float:
    """EDGE's PFC of a set of clips: ``10^4 * mean over clips of`` :func:`pfc_clip` (lower is better).

    Args:
        clips: one ``(F, 24, 3)`` clip, a ``(B, F, 24, 3)`` batch, or a sequence of clips (lengths
            may differ), at 30 fps.
        up_axis: which axis is up in the joints (EDGE: ``"z"``).
    """
    return PFC_SCALE * float(np.mean([pfc_clip(c, up_axis) for c in _clips(clips)]))


def motion_pfc(motions: Union[SMPLMotion, Iterable[SMPLMotion]]) -> float:
    """EDGE's PFC of :class:`SMPLMotion` s: each turned z up, resampled to 30 fps, posed on SMPL's skeleton."""
    motions = [motions] if isinstance(motions, SMPLMotion) else list(motions)
    return pfc([motion_joints(m, PFC_UP_AXIS, PFC_FPS) for m in motions], PFC_UP_AXIS)


# == Bailando's kinetic features ===============================================================
def _windowed_mean(values: np.ndarray, first: int, last: int, window: int, count: int) -> np.ndarray:
    """Mean of ``values[k]`` (indexed ``first..last``) over ``k`` in ``[i - window, i + window]`` clipped
    to ``[first, last]``, for every ``i = 1 .. count``; ``values`` is ``(last - first + 1, ...)``."""
    csum = np.concatenate([np.zeros_like(values[:1]), np.cumsum(values, axis=0)])
    i = np.arange(1, count + 1)
    lo = np.maximum(first, i - window)
    hi = np.minimum(last, i + window)
    if (hi < lo).any():
        raise InputError("the clip is too short for Bailando's windowed differences (needs >= 3 frames)")
    total = csum[hi - first + 1] - csum[lo - first]
    return total / (hi - lo + 1).reshape((-1,) + (1,) * (values.ndim - 1))


def kinetic_features(joints: Joints, up_axis: UpAxis = FEATURE_UP_AXIS, frame_time: float = KINETIC_FRAME_TIME,
                     window: int = KINETIC_WINDOW,
                     energy: Literal["bailando", "corrected"] = "bailando") -> np.ndarray:
    """Bailando's 72-d kinetic feature vector of one clip (see the module docstring).

    Args:
        joints: ``(F, J, 3)`` positions (J = 24 for the 72-d vector), F >= 3, normally zero-start,
            60 fps, y up.
        up_axis: the vertical axis (Bailando: ``"y"``); horizontal is the other two.
        frame_time: seconds per frame (Bailando: 1/60 whatever the data's rate).
        window: frames each side of the velocity/acceleration window (Bailando: 2).
        energy: ``"bailando"`` keeps the published code's ``p[m] - p[m-1] / frame_time`` in the
            energy expenditure; ``"corrected"`` uses ``(p[m] - p[m-1]) / frame_time``.
    Returns:
        ``(3 J,)`` float64: per joint ``[horizontal KE, vertical KE, energy expenditure]``.
    """
    if up_axis not in ("y", "z"):
        raise InputError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    if energy not in ("bailando", "corrected"):
        raise InputError(f"energy must be 'bailando' or 'corrected', got {energy!r}")
    array = joints.detach().cpu().numpy() if isinstance(joints, torch.Tensor) else np.asarray(joints)
    p = np.asarray(array, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 3 or p.shape[0] < 3:
        raise InputError(f"joints must be (frames >= 3, joints, 3), got shape {p.shape}")
    frames = p.shape[0]
    up = _AXIS[up_axis]
    flat = [axis for axis in range(3) if axis != up]
    # velocity at frame i: mean of d[k] = p[k] - p[k-1], k in [i-w, i+w] within [1, F-1]
    diffs = p[1:] - p[:-1]                                                  # (F - 1, J, 3), k = 1..F-1
    velocity = _windowed_mean(diffs, 1, frames - 1, window, frames - 1) / frame_time   # (F - 1, J, 3)
    ke_h = (np.linalg.norm(velocity[..., flat], axis=-1) ** 2).mean(axis=0)
    ke_v = (np.abs(velocity[..., up]) ** 2).mean(axis=0)
    # acceleration term m = 1..F-2: (v2 - v1) / dt, v2 = (p[m+1] - p[m]) / dt
    v2 = (p[2:] - p[1:-1]) / frame_time
    v1 = (p[1:-1] - p[:-2] / frame_time) if energy == "bailando" else (p[1:-1] - p[:-2]) / frame_time
    accel = _windowed_mean((v2 - v1) / frame_time, 1, frames - 2, window, frames - 1)   # (F - 1, J, 3)
    expenditure = np.linalg.norm(accel, axis=-1).mean(axis=0)
    return np.stack([ke_h, ke_v, expenditure], axis=1).reshape(-1)


# == Bailando's geometric ("manual") features ==================================================
def _unit_dot(vector: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``vector . direction / |direction|`` along the last axis (division by 0 gives inf/nan, as numpy)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.einsum("...i,...i->...", vector, direction) / np.linalg.norm(direction, axis=-1)


def geometric_features(joints: Joints) -> np.ndarray:
    """Bailando's 32 geometric ("manual") features of one clip: fraction of frames each one holds.

    Args:
        joints: ``(F, 24, 3)`` positions, F >= 2, y up, normally zero-start and 60 fps (the
            thresholds and the 1/120 s velocity frame time are Bailando's, whatever the rate).
    Returns:
        ``(32,)`` float64 in ``[0, 1]``, in :data:`GEOMETRIC_FEATURES` order.
    """
    p = _joints(joints, "geometric features", 2)
    cur, prev = p[1:], p[:-1]                                   # frames t = 1..F-1 and t - 1
    steps = cur.shape[0]

    def at(name: str, frames: np.ndarray) -> np.ndarray:
        if name in _CONSTANT_POINTS:
            return np.broadcast_to(np.asarray(_CONSTANT_POINTS[name]), (steps, 3))
        if name == "y_min":
            point = np.zeros((steps, 3))
            point[:, 1] = frames[:, :, 1].min(axis=1)
            return point
        return frames[:, JOINT_NAMES.index(name)]

    per_frame = []
    for kind, names, limit in GEOMETRIC_FEATURES:
        now = [at(n, cur) for n in names]
        if kind == "move":
            a, b, c = now
            a0, c0 = at(names[0], prev), at(names[2], prev)
            value = _unit_dot((c - a) - (c0 - a0), b - a) / GEOMETRIC_FRAME_TIME
        elif kind == "nmove":
            a, b, c, d = now
            a0, d0 = at(names[0], prev), at(names[3], prev)
            value = _unit_dot((d - a) - (d0 - a0), np.cross(c - a, b - a)) / GEOMETRIC_FRAME_TIME
        elif kind == "plane":
            a, b, c, d = now
            value = _unit_dot(d - a, np.cross(c - a, b - a))
        elif kind == "nplane":
            a, b, c, d = now
            value = _unit_dot(d - c, b - a)
        elif kind == "fast":
            (a,) = now
            value = np.linalg.norm(a - at(names[0], prev), axis=-1) / GEOMETRIC_FRAME_TIME
        else:  # angle
            a, b, c, d = now
            u, v = b - a, d - c
            with np.errstate(divide="ignore", invalid="ignore"):
                cosine = np.einsum("ti,ti->t", u, v) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
                degrees = np.degrees(np.arccos(cosine))
            lo, hi = limit  # type: ignore[misc]
            per_frame.append((degrees > lo) & (degrees < hi))
            continue
        with np.errstate(invalid="ignore"):
            per_frame.append(value > limit)
    return np.stack(per_frame, axis=1).mean(axis=0, dtype=np.float64)


# == features of dances ========================================================================
def zero_start(joints: Joints) -> np.ndarray:
    """``(F, J, 3)`` -> the same positions minus the root (joint 0) position of frame 0 (float64)."""
    array = joints.detach().cpu().numpy() if isinstance(joints, torch.Tensor) else joints
    p = np.array(array, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 3 or p.shape[0] < 1:
        raise InputError(f"joints must be (frames, joints, 3), got shape {p.shape}")
    return p - p[:1, :1]


def bailando_features(joints: Joints, max_frames: Optional[int] = None,
                      energy: Literal["bailando", "corrected"] = "bailando") -> tuple[np.ndarray, np.ndarray]:
    """``(kinetic (72,), geometric (32,))`` of one dance, as Bailando's evaluation takes them.

    Args:
        joints: ``(F, 24, 3)`` positions, 60 fps, y up (:func:`motion_joints` with ``"y"``, 60).
        max_frames: keep only the first ``max_frames`` frames (Bailando cuts generated dances to
            :data:`GENERATED_MAX_FRAMES`, not the ground truth); ``None`` keeps all.
        energy: see :func:`kinetic_features`.
    """
    p = _joints(joints, "Bailando features", 3)
    if max_frames is not None:
        if max_frames < 3:
            raise InputError(f"max_frames must be >= 3, got {max_frames}")
        p = p[:max_frames]
    p = zero_start(p)
    return kinetic_features(p, energy=energy), geometric_features(p)


def motion_features(motion: SMPLMotion, max_frames: Optional[int] = None,
                    energy: Literal["bailando", "corrected"] = "bailando") -> tuple[np.ndarray, np.ndarray]:
    """:func:`bailando_features` of an :class:`SMPLMotion` (turned y up, resampled to 60 fps, FK)."""
    return bailando_features(motion_joints(motion, FEATURE_UP_AXIS, FEATURE_FPS), max_frames, energy)


# == FID and diversity =========================================================================
def _feature_matrix(features: Union[np.ndarray, Sequence[np.ndarray]], what: str) -> np.ndarray:
    matrix = np.asarray(np.stack(list(features)) if not isinstance(features, np.ndarray) else features,
                        dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2:
        raise InputError(f"{what} must be (N >= 2, D) feature vectors, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InputError(f"{what} hold NaN/inf values")
    return matrix


def normalize_features(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bailando's ``normalize(gt, pred)``: both sets scaled by the ground truth's per-dimension statistics.

    Args:
        gt: ``(N, D)`` ground-truth features; pred: ``(M, D)`` generated features.
    Returns:
        ``((gt - mean) / (std + 1e-10), (pred - mean) / (std + 1e-10))``, ``mean``/``std`` (population,
        ddof 0) over the rows of ``gt``.
    """
    gt, pred = np.asarray(gt, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if gt.ndim != 2 or pred.ndim != 2 or gt.shape[1] != pred.shape[1]:
        raise InputError(f"feature sets must be (N, D) and (M, D) with the same D, got {gt.shape} and {pred.shape}")
    mean, std = gt.mean(axis=0), gt.std(axis=0)
    return (gt - mean) / (std + NORMALIZE_EPS), (pred - mean) / (std + NORMALIZE_EPS)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Bailando's ``calc_fid``), float64.

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr(sqrtm(S_a S_b))`` with sample covariances
    (ddof 1); if the square root is not finite, 1e-5 is added to both diagonals; imaginary parts of
    the root are dropped.

    Args:
        a: ``(N, D)``; b: ``(M, D)``, N, M >= 2.
    """
    a, b = _feature_matrix(a, "features a"), _feature_matrix(b, "features b")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"feature sets have different dimensions: {a.shape[1]} and {b.shape[1]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():   # few samples give singular covariances; Bailando passes disp=False
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():
            offset = np.eye(cov_a.shape[0]) * FID_EPS
            root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root).real)


def diversity(features: Union[np.ndarray, Sequence[np.ndarray]]) -> float:
    """Bailando's Div: the mean Euclidean distance over all unordered pairs of feature vectors.

    Args:
        features: ``(N, D)``, N >= 2 (normally normalised by the ground truth first).
    """
    x = _feature_matrix(features, "features")
    total = 0.0
    for i in range(x.shape[0] - 1):                             # O(N) memory; N is a few thousand at most
        total += float(np.linalg.norm(x[i + 1:] - x[i], axis=1).sum())
    return total / (x.shape[0] * (x.shape[0] - 1) / 2)


# == feature sets and the AIST++ ground truth ===================================================
@dataclass(frozen=True)
class FeatureSet:
    """Bailando's features of a set of dances, one row per dance.

    Attributes:
        names: ``(N,)`` dance names (AIST++ sequence names for the ground truth).
        kinetic: ``(N, 72)`` float64 (:func:`kinetic_features`).
        geometric: ``(N, 32)`` float64 (:func:`geometric_features`).
        source: where the set came from (e.g. ``"aist++ all"``), for messages and the cache check.
    """

    names: tuple[str, ...]
    kinetic: np.ndarray
    geometric: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.kinetic.shape != (n, KINETIC_DIM) or self.geometric.shape != (n, GEOMETRIC_DIM):
            raise InputError(f"a feature set of {n} dances needs kinetic ({n}, {KINETIC_DIM}) and geometric "
                             f"({n}, {GEOMETRIC_DIM}), got {self.kinetic.shape} and {self.geometric.shape}")

    def __len__(self) -> int:
        return len(self.names)

    def save(self, path: PathLike) -> Path:
        """Write the set as an ``.npz`` of plain arrays (atomic); returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise InputError(f"feature sets are saved as .npz, got {path.name!r}")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, names=np.asarray(self.names, dtype=np.str_), kinetic=self.kinetic,
                         geometric=self.geometric, source=np.asarray(self.source, dtype=np.str_),
                         version=np.asarray(FEATURES_VERSION))

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: PathLike) -> "FeatureSet":
        """Read a set written by :meth:`save` (no pickles: ``allow_pickle=False``)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["version"])
                if version != FEATURES_VERSION:
                    raise InputError(f"{path.name}: features version {version}, this code writes "
                                     f"{FEATURES_VERSION}; delete the file to recompute it")
                return cls(tuple(str(n) for n in data["names"]), np.asarray(data["kinetic"], dtype=np.float64),
                           np.asarray(data["geometric"], dtype=np.float64), str(data["source"]))
        except InputError:
            raise
        except (OSError, KeyError, ValueError) as e:
            raise InputError(f"{path.name}: not a motion feature set written by FeatureSet.save ({e})") from None


def feature_set(dances: Iterable[tuple[str, Union[SMPLMotion, Joints]]], max_frames: Optional[int] = None,
                source: str = "", control: RunControl = NO_CONTROL, total: Optional[int] = None) -> FeatureSet:
    """Bailando's features of named dances: ``(name, SMPLMotion or (F, 24, 3) joints at 60 fps, y up)``.

    Args:
        dances: the dances; motions are posed by :func:`motion_features`.
        max_frames: cut every dance to this many frames (generated dances: 1200; ground truth: None).
        source: recorded in the set.
        control: progress (``"motion features"``) and cancel.
        total: the number of dances, for progress (optional).
    """
    names, kinetic, geometric = [], [], []
    for i, (name, dance) in enumerate(dances):
        if isinstance(dance, SMPLMotion):
            k, g = motion_features(dance, max_frames)
        else:
            k, g = bailando_features(dance, max_frames)
        names.append(str(name))
        kinetic.append(k)
        geometric.append(g)
        control.tick("motion features", i + 1, total if total is not None else i + 1)
    if not names:
        raise InputError("no dances given")
    return FeatureSet(tuple(names), np.stack(kinetic), np.stack(geometric), source)


def motion_quality(generated: FeatureSet, ground_truth: FeatureSet) -> dict[str, float]:
    """Bailando's ``quantized_metrics``: FID_k, FID_g, Div_k, Div_g of a generated set (and Div of the gt).

    Both sets are normalised by the ground truth's statistics (:func:`normalize_features`).

    Returns:
        ``{"fid_k", "fid_g", "div_k", "div_g", "div_k_gt", "div_g_gt"}`` (``fid_g`` is Bailando's ``fid_m``).
    """
    gt_k, gen_k = normalize_features(ground_truth.kinetic, generated.kinetic)
    gt_g, gen_g = normalize_features(ground_truth.geometric, generated.geometric)
    return {"fid_k": frechet_distance(gen_k, gt_k), "fid_g": frechet_distance(gen_g, gt_g),
            "div_k": diversity(gen_k), "div_g": diversity(gen_g),
            "div_k_gt": diversity(gt_k), "div_g_gt": diversity(gt_g)}


def _name_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def aist_sequence_names(aist_dir: PathLike, split: str = "all") -> list[str]:
    """The AIST++ motions a ground truth is made of, sorted; only ``motions/`` and the name lists are read.

    Args:
        aist_dir: the folder in the official AIST++ layout (``motions/<seq>.pkl``,
            ``ignore_list.txt`` at the root or in ``splits/``, ``splits/crossmodal_<split>.txt``).
        split: ``"all"`` (Bailando: every motion file not ignored) or ``"train"``/``"val"``/``"test"``.
    """
    root = Path(aist_dir).expanduser()
    if split not in GT_SPLITS:
        raise InputError(f"split must be one of {GT_SPLITS}, got {split!r}")
    motions = root / "motions"
    if not motions.is_dir():
        raise InputError(f"{root} has no motions/ folder; pass the AIST++ folder holding motions/<seq>.pkl "
                         "and ignore_list.txt (the official google/aistplusplus_api layout)")
    ignore = next((p for p in (root / "ignore_list.txt", root / "splits" / "ignore_list.txt") if p.is_file()), None)
    if ignore is None:
        raise InputError(f"{root} has no ignore_list.txt (at the root or in splits/): the ground truth excludes "
                         "AIST++'s 45 badly fitted sequences listed there; copy it from the AIST++ annotations")
    ignored = set(_name_list(ignore))
    if split == "all":
        names = [p.stem for p in motions.glob("*.pkl")]
    else:
        listing = root / "splits" / f"crossmodal_{split}.txt"
        if not listing.is_file():
            raise InputError(f"{listing} not found; the {split!r} split needs AIST++'s splits/ folder "
                             "(or use split 'all', Bailando's ground truth)")
        names = _name_list(listing)
        missing = [n for n in names if n not in ignored and not (motions / f"{n}.pkl").is_file()]
        if missing:
            raise InputError(f"{len(missing)} motion file(s) of the {split!r} split are missing from {motions}: "
                             f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    names = sorted(n for n in set(names) if n not in ignored)
    if not names:
        raise InputError(f"no AIST++ motions left in {motions} for split {split!r} after the ignore list")
    return names


def aist_ground_truth_stats(aist_dir: PathLike, split: str = "all", cache: Optional[PathLike] = None,
                            control: RunControl = NO_CONTROL) -> FeatureSet:
    """Bailando's ground-truth features from the user's AIST++ folder, cached in an ``.npz``.

    Every selected ``motions/<seq>.pkl`` is read without running code from it
    (:func:`~..motion.load_motion`: pelvis at ``smpl_trans / smpl_scaling``, 60 fps, y up), posed
    whole (not cut) and turned into Bailando's features (:func:`motion_features`).

    Args:
        aist_dir: the AIST++ folder (:func:`aist_sequence_names`).
        split: ``"all"`` (Bailando's ground truth, default) or a cross-modal split.
        cache: an ``.npz`` path: loaded if it holds exactly this split's sequences (and this
            code's :data:`FEATURES_VERSION`), else (re)computed and written there.
        control: progress (``"motion features"``, one tick per sequence) and cancel.
    """
    names = aist_sequence_names(aist_dir, split)
    source = f"aist++ {split}"
    if cache is not None and Path(cache).is_file():
        try:
            cached: Optional[FeatureSet] = FeatureSet.load(cache)
        except InputError:          # another version, or not a feature set: recomputed and overwritten
            cached = None
        if cached is not None and cached.names == tuple(names) and cached.source == source:
            return cached
    motions_dir = Path(aist_dir).expanduser() / "motions"
    dances = ((name, load_motion(motions_dir / f"{name}.pkl")) for name in names)
    features = feature_set(dances, None, source, control, total=len(names))
    if cache is not None:
        features.save(cache)
    return features
