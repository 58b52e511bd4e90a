"""EDGE's 151-d motion frames <-> :class:`~..format.SMPLMotion`, and EDGE's long-form stitching.

EDGE's denoiser works on frames (30 fps) of 151 numbers (``shared/spec/edge/REPORT.md`` sections 3,
4 and 8), here always *unnormalized* (see :mod:`.normalizer`):

* ``[0:4]`` foot contacts (0/1) of joints 7, 8, 10, 11 (left/right ankle, left/right toes);
* ``[4:7]`` root (pelvis) position, metres, **z up**, global to the sequence;
* ``[7:151]`` 24 SMPL joints x 6D rotation = the first two **rows** of each local rotation matrix.

A long dance is generated as ``B`` windows of ``L`` frames that overlap by half a window. EDGE
(``render_sample``, mode ``long``) joins them as :func:`stitch_windows` does: root positions
cross-faded with linear ramps that include their end points (``linspace(0, 1, L/2)``; so this is
not :func:`...sampling.windows.blend_weights`, whose ramps stop short of 0 and 1), rotations
slerped across each overlap. Its slerp is reproduced exactly, quirks included: the lerp branch
(``1 - |dot| < 0.01``) is not renormalized, and pytorch3d 0.7.2's quaternion-to-axis-angle does
not normalize either, so a lerped rotation's angle comes out scaled by the quaternion's norm
(>= 0.9975: at most ~0.25 % of the angle, under 1 degree), or, when the quaternion's ``w < 0``,
pushed toward a full turn by the same amount. The quaternion signs are those EDGE sees
(pytorch3d 0.7.2: the largest component positive), so the quirk falls where it falls in EDGE.
"""
from __future__ import annotations

import torch

from ...body.rotations import (
    axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion, matrix_to_rotation_6d, rotation_6d_to_matrix,
)
from ...body.skeleton import FOOT_JOINTS, NUM_JOINTS, forward_kinematics
from ...errors import InputError
from ..format import SMPLMotion
from ..pickle_layouts import EDGE_FPS

#: Width of an EDGE frame: 4 contacts + 3 root position + 24 x 6D.
FRAME_DIM = 4 + 3 + NUM_JOINTS * 6
CONTACTS = slice(0, 4)
ROOT = slice(4, 7)
ROTATIONS = slice(7, FRAME_DIM)
#: A foot joint moving less than this between frames (metres per 30-fps frame) is in contact.
CONTACT_SPEED = 0.01
#: EDGE's slerp falls back to (unnormalized) lerp where ``1 - |dot| <`` this.
LERP_BELOW = 0.01


def _check_frames(x: torch.Tensor, ndim: int, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != ndim or x.shape[-1] != FRAME_DIM or x.shape[0] < 1:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{what} must be a tensor {'(B, L, 151)' if ndim == 3 else '(T, 151)'} of unnormalized "
                         f"EDGE frames, got {got}")
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"{what} holds NaN/inf values; the sampler diverged or the frames are corrupt")


def foot_contacts(rotations: torch.Tensor, root: torch.Tensor, threshold: float = CONTACT_SPEED) -> torch.Tensor:
    """EDGE's contact labels ``(T, 4)`` (1.0 = planted) of joints 7, 8, 10, 11.

    Args:
        rotations: ``(T, 24, 3)`` axis-angle or ``(T, 24, 3, 3)`` local rotations, z-up world.
        root: ``(T, 3)`` pelvis positions, metres.
    Speed ``v_t = |p_{t+1} - p_t|`` for ``t < T - 1`` and ``v_{T-1} = 0``; contact where
    ``v_t < threshold`` (so the last frame is always 1, as in EDGE).
    """
    joints, _ = forward_kinematics(rotations, root)
    feet = joints[:, list(FOOT_JOINTS)]                                   # (T, 4, 3)
    speed = torch.zeros(feet.shape[:2], dtype=feet.dtype, device=feet.device)
    speed[:-1] = torch.linalg.vector_norm(feet[1:] - feet[:-1], dim=-1)
    return (speed < threshold).to(feet.dtype)


def motion_to_frames(motion: SMPLMotion) -> torch.Tensor:
    """``motion`` -> ``(T, 151)`` float32 unnormalized EDGE frames (EDGE's training targets).

    The motion is turned z-up and, if needed, resampled to 30 fps first (60 -> 30 takes every
    second frame, as EDGE's data preparation does). Contacts are computed over the whole motion;
    EDGE computed them per 5-s slice, so to reproduce its targets exactly, slice first.
    """
    motion = motion.to_up_axis("z")
    if motion.fps != EDGE_FPS:
        motion = motion.resample(EDGE_FPS)
    poses, root = motion.to_torch(dtype=torch.float64)
    matrices = axis_angle_to_matrix(poses)                                # (T, 24, 3, 3)
    rot6d = matrix_to_rotation_6d(matrices).reshape(len(root), NUM_JOINTS * 6)
    return torch.cat([foot_contacts(matrices, root), root, rot6d], dim=-1).float()


def frames_to_motion(x: torch.Tensor, fps: float = EDGE_FPS) -> SMPLMotion:
    """``x`` ``(T, 151)`` unnormalized frames -> :class:`SMPLMotion` (z up). Contacts are dropped.

    Axis-angles have angles in ``[0, pi]`` (EDGE's pytorch3d could give ``(pi, 2 pi)``: the same rotations).
    """
    _check_frames(x, 2, "frames")
    x = x.detach().to("cpu", torch.float64)
    matrices = rotation_6d_to_matrix(x[:, ROTATIONS].reshape(-1, NUM_JOINTS, 6))
    return SMPLMotion(matrix_to_axis_angle(matrices).numpy(), x[:, ROOT].numpy(), fps=fps, up_axis="z")


def window_weights(num_windows: int, window: int) -> torch.Tensor:
    """``(B, L)`` EDGE's root cross-fade weight of each window; summed at hop ``L/2`` they give 1 everywhere.

    Window ``i`` fades in with ``linspace(0, 1, L/2)`` over its first half (``i > 0``) and out with
    ``linspace(1, 0, L/2)`` over its second half (``i < B - 1``); the ends keep weight 1.
    """
    if num_windows < 1 or window < 2 or window % 2:
        raise InputError(f"need >= 1 window of an even length >= 2 frames, got {num_windows} x {window}")
    half = window // 2
    weights = torch.ones(num_windows, window, dtype=torch.float64)
    weights[:-1, half:] *= torch.linspace(1, 0, half, dtype=torch.float64)
    weights[1:, :half] *= torch.linspace(0, 1, half, dtype=torch.float64)
    return weights


def _edge_quaternions(matrices: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` -> ``(..., 4)`` as pytorch3d 0.7.2 signs them: the largest ``|component|`` positive."""
    quat = matrix_to_quaternion(matrices)
    largest = quat.abs().argmax(dim=-1, keepdim=True)
    return quat * torch.gather(quat, -1, largest).sign()


def _edge_slerp(x: torch.Tensor, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """EDGE's ``quat_slerp``: ``x``, ``y`` ``(..., 4)``, ``s`` broadcasts to ``(...)``; lerp results stay unnormalized."""
    dot = (x * y).sum(-1)
    y = torch.where((dot < 0)[..., None], -y, y)
    dot = dot.abs()
    s = torch.zeros_like(dot) + s
    linear = (1.0 - dot) < LERP_BELOW
    omega = torch.arccos(torch.where(linear, torch.zeros_like(dot), dot.clamp(max=1.0)))
    sin_omega = torch.where(linear, torch.ones_like(omega), torch.sin(omega))
    a0 = torch.where(linear, 1.0 - s, torch.sin((1.0 - s) * omega) / sin_omega)
    a1 = torch.where(linear, s, torch.sin(s * omega) / sin_omega)
    return a0[..., None] * x + a1[..., None] * y


def _edge_quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """pytorch3d 0.7.2's ``quaternion_to_axis_angle``: no normalization, no sign standardization."""
    xyz = quat[..., 1:]
    half = torch.atan2(torch.linalg.vector_norm(xyz, dim=-1, keepdim=True), quat[..., :1])
    angle = 2 * half
    small = angle.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(angle), angle)
    return xyz / torch.where(small, 0.5 - angle * angle / 48, torch.sin(half) / safe)


def stitch_windows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Join ``B`` windows that overlap by half a window into one sequence, as EDGE does.

    Args:
        x: ``(B, L, 151)`` unnormalized frames; window ``i`` starts at frame ``i * L/2``; ``L`` even.
    Returns:
        ``(root (T, 3), poses (T, 24, 3) axis-angle)`` float32, ``T = L + (B - 1) L/2``. Roots are
        cross-faded by :func:`window_weights`; rotations come from window 0's first half, a slerp
        (weight ``s = linspace(0, 1, L/2)`` toward window ``i + 1``) over each overlap, and the last
        window's second half. Contacts are dropped (EDGE drops them too). The axis-angles are
        EDGE's own vectors (pytorch3d 0.7.2: angles up to 2 pi), not only the same rotations.
    """
    _check_frames(x, 3, "windows")
    x = x.detach().to("cpu", torch.float64)
    count, window = x.shape[:2]
    weights = window_weights(count, window)
    half = window // 2
    quats = _edge_quaternions(rotation_6d_to_matrix(x[..., ROTATIONS].reshape(count, window, NUM_JOINTS, 6)))
    if count == 1:
        return x[0, :, ROOT].float(), _edge_quaternion_to_axis_angle(quats[0]).float()
    root = torch.zeros(window + half * (count - 1), 3, dtype=torch.float64)
    for i in range(count):
        root[i * half:i * half + window] += x[i, :, ROOT] * weights[i, :, None]
    s = torch.linspace(0, 1, half, dtype=torch.float64)[None, :, None]
    merged = _edge_slerp(quats[:-1, half:], quats[1:, :half], s).reshape(-1, NUM_JOINTS, 4)
    poses = _edge_quaternion_to_axis_angle(torch.cat([quats[0, :half], merged, quats[-1, half:]]))
    return root.float(), poses.float()


def windows_to_motion(x: torch.Tensor, fps: float = EDGE_FPS) -> SMPLMotion:
    """``(B, L, 151)`` unnormalized windows -> the stitched :class:`SMPLMotion` (z up), see :func:`stitch_windows`."""
    root, poses = stitch_windows(x)
    return SMPLMotion(poses.numpy(), root.numpy(), fps=fps, up_axis="z")
