"""``SMPLMotion``: one SMPL motion clip (24 local joint rotations + root position per frame).

Every motion source in the pack (AIST++ pickles, EDGE outputs, our ``.npz``, BVH) is read into
this one type, so the rest of the code never sees a file layout. It is checked once, on
construction: shapes, at least one frame, finite values, a positive frame rate. Its arrays are
float32 copies marked read-only, so a motion cannot change after it was validated; methods
return new motions.

Conventions:

* ``poses[:, j]`` is joint ``j``'s rotation relative to its parent, axis-angle, SMPL joint order
  (:data:`..body.skeleton.SMPL_JOINT_NAMES`); joint 0 is the global orientation.
* ``trans`` is the position of the **pelvis joint** (joint 0) in metres, as EDGE uses it (not
  SMPL's ``transl``, which is offset by the rest pelvis location).
* ``up_axis`` says which world axis is up: ``"y"`` (SMPL, AIST++, BVH) or ``"z"`` (EDGE).
* Frame ``k`` is at time ``k / fps``; ``duration = num_frames / fps``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Optional, Union

import numpy as np
import torch

from ..body.rotations import (
    axis_angle_to_quaternion, quaternion_multiply, quaternion_slerp, quaternion_to_axis_angle,
)
from ..body.skeleton import NUM_JOINTS
from ..errors import InputError
from ..timeline import resampled_frame_count

UpAxis = Literal["y", "z"]
#: +90 degrees about X as a (w, x, y, z) quaternion: EDGE's y-up -> z-up turn.
Y_TO_Z_QUAT = (math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0)


def _float_array(name: str, value: object) -> np.ndarray:
    try:
        return np.array(value, dtype=np.float32, copy=True)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be an array of numbers, got {type(value).__name__} ({e})") from None


def check_finite(name: str, array: np.ndarray) -> None:
    """``array`` ``(N, ...)``: NaN/inf is refused, naming how many and the first frame (and joint) where one is."""
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    where = np.argwhere(bad)[0]
    place = f"frame {where[0]}" + (f", joint {where[1]}" if array.ndim == 3 else "")
    raise InputError(f"{name} has {int(bad.sum())} NaN/inf value(s), the first at {place}; "
                     f"the motion is corrupt: regenerate or re-export it")


@dataclass(frozen=True, eq=False)
class SMPLMotion:
    """An SMPL motion clip, validated and read-only.

    Attributes:
        poses: ``(N, 24, 3)`` float32 axis-angle local rotations; joint 0 = global orientation.
        trans: ``(N, 3)`` float32 pelvis (joint 0) position, metres.
        fps: frames per second (> 0).
        betas: ``(K,)`` float32 SMPL shape coefficients (usually K = 10), or ``None`` (neutral).
        up_axis: ``"y"`` or ``"z"``, the world's up axis.
    """

    poses: np.ndarray
    trans: np.ndarray
    fps: float
    betas: Optional[np.ndarray] = None
    up_axis: UpAxis = "y"

    def __post_init__(self) -> None:
        poses, trans = _float_array("poses", self.poses), _float_array("trans", self.trans)
        if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3):
            flat = poses.ndim == 2 and poses.shape[1:] == (NUM_JOINTS * 3,)
            hint = "; reshape (N, 72) arrays with .reshape(-1, 24, 3)" if flat else ""
            raise InputError(f"poses must be (N, 24, 3) axis-angle rotations, got shape {poses.shape}{hint}")
        if poses.shape[0] < 1:
            raise InputError("the motion has 0 frames; a motion needs at least one frame")
        if trans.shape != (poses.shape[0], 3):
            raise InputError(f"trans must be (N, 3) = {(poses.shape[0], 3)} to match poses, got shape {trans.shape}")
        check_finite("poses", poses)
        check_finite("trans", trans)
        fps = self._checked_fps(self.fps)
        betas = None if self.betas is None else self._checked_betas(self.betas)
        if self.up_axis not in ("y", "z"):
            raise InputError(f"up_axis must be 'y' or 'z', got {self.up_axis!r}")
        for array in (poses, trans, betas):
            if array is not None:
                array.flags.writeable = False
        object.__setattr__(self, "poses", poses)
        object.__setattr__(self, "trans", trans)
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "betas", betas)

    @staticmethod
    def _checked_fps(fps: object) -> float:
        try:
            value = float(fps)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(f"fps must be a number, got {fps!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"fps must be a positive finite number, got {fps!r}")
        return value

    @staticmethod
    def _checked_betas(betas: object) -> np.ndarray:
        array = _float_array("betas", betas)
        if array.ndim != 1 or array.shape[0] < 1:
            raise InputError(f"betas must be a 1-D array (K,) of SMPL shape coefficients (usually K = 10), "
                             f"got shape {array.shape}; pass betas=None for the neutral body")
        check_finite("betas", array)
        return array

    # -- size and time ---------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        """N, the number of frames."""
        return int(self.poses.shape[0])

    @property
    def duration(self) -> float:
        """``N / fps`` seconds (each frame lasts ``1 / fps``)."""
        return self.num_frames / self.fps

    def __repr__(self) -> str:
        shape = "None" if self.betas is None else f"({self.betas.shape[0]},)"
        return (f"SMPLMotion(frames={self.num_frames}, fps={self.fps:g}, duration={self.duration:.3f}s, "
                f"up_axis={self.up_axis!r}, betas={shape})")

    # -- conversions -----------------------------------------------------------------------
    def to_up_axis(self, up_axis: UpAxis) -> "SMPLMotion":
        """The same motion in a world whose up axis is ``up_axis`` (EDGE's convention).

        y -> z: the root orientation is premultiplied by ``q_x = (0.7071068, 0.7071068, 0, 0)``
        (+90 degrees about X, ``q0' = q_x * q0``) and the translation is rotated the same way,
        ``(x, y, z) -> (x, -z, y)``. z -> y is the inverse: ``q0' = q_x^-1 * q0`` and
        ``(x, y, z) -> (x, z, -y)``. Other joints are local to their parent and stay unchanged, so
        every forward-kinematics joint position is rotated by ``R_x(+90)`` (resp. its inverse).
        """
        if up_axis not in ("y", "z"):
            raise InputError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
        if up_axis == self.up_axis:
            return self
        turn = torch.tensor(Y_TO_Z_QUAT, dtype=torch.float64)
        if up_axis == "y":
            turn = turn * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)  # conjugate = inverse
        root = axis_angle_to_quaternion(torch.from_numpy(self.poses[:, 0].astype(np.float64)))
        poses = self.poses.copy()
        poses[:, 0] = quaternion_to_axis_angle(quaternion_multiply(turn.expand_as(root), root)).numpy()
        x, y, z = self.trans[:, 0], self.trans[:, 1], self.trans[:, 2]
        trans = np.stack([x, -z, y] if up_axis == "z" else [x, z, -y], axis=1)
        return replace(self, poses=poses, trans=trans, up_axis=up_axis)

    def slice(self, start: Optional[int] = None, stop: Optional[int] = None) -> "SMPLMotion":
        """Frames ``[start, stop)`` (Python slice rules, negative indices allowed); must be non-empty."""
        frames = range(self.num_frames)[start:stop]
        if len(frames) == 0:
            raise InputError(f"slice({start}, {stop}) of a {self.num_frames}-frame motion is empty; "
                             f"pick 0 <= start < stop <= {self.num_frames}")
        part = np.s_[frames.start:frames.stop]
        return replace(self, poses=self.poses[part], trans=self.trans[part])

    def resample(self, fps: float) -> "SMPLMotion":
        """The motion at ``fps``: frames at ``t_k = k / fps`` for every ``t_k`` up to the last frame's time.

        Rotations are slerped between the two original frames around ``t_k`` (short arc),
        the translation is interpolated linearly. Motions with constant angular velocity about a
        fixed axis (under pi per original frame) and constant linear velocity resample exactly;
        60 -> 30 fps gives exactly every second frame.
        """
        fps = self._checked_fps(fps)
        if fps == self.fps:
            return self
        count = resampled_frame_count(self.num_frames, self.fps, fps)
        position = np.arange(count, dtype=np.float64) * self.fps / fps
        snapped = np.round(position)
        position = np.where(np.abs(position - snapped) < 1e-9, snapped, position)
        lo = np.minimum(np.floor(position).astype(np.int64), self.num_frames - 1)
        hi = np.minimum(lo + 1, self.num_frames - 1)
        w = position - lo
        trans = (1 - w[:, None]) * self.trans[lo] + w[:, None] * self.trans[hi]
        quats = axis_angle_to_quaternion(torch.from_numpy(self.poses.astype(np.float64)))
        weight = torch.from_numpy(w)[:, None].expand(count, NUM_JOINTS)
        poses = quaternion_to_axis_angle(quaternion_slerp(quats[lo], quats[hi], weight)).numpy()
        return replace(self, poses=poses, trans=trans, fps=fps)

    def to_torch(self, device: Union[str, torch.device, None] = None,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """``(poses (N, 24, 3), trans (N, 3))`` as tensors on ``device`` in ``dtype``."""
        return (torch.tensor(self.poses, device=device, dtype=dtype),
                torch.tensor(self.trans, device=device, dtype=dtype))
