"""The pinhole camera Champ's guidance maps are rendered with, and how to place it for a dance.

Convention: OpenCV camera space (x right, y down, z forward), ``p_cam = R @ p_world + t``, pixel
``u = fx * x / z + cx``, ``v = fy * y / z + cy``, where pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``:
its centre is at ``(i + 0.5, j + 0.5)`` and the image spans ``[0, W] x [0, H]`` (as in PIL, Blender and
the rasteriser). OpenCV's own image coordinates put pixel centres at integers (``[-0.5, W - 0.5]``),
so its principal point is half a pixel less than ours: :func:`camera_from_opencv` converts.
Champ (GUIDANCE_MAPS.md section 0) uses HMR2's focal length ``f = 5000/256 * max(W, H)`` and the
principal point at the exact image centre ``(W/2, H/2)``: :func:`champ_camera`.

The body's world frame is SMPL's: y up, facing +z, its left at +x. A camera in front of the body
looks along world -z with image-down = world -y, so ``R = diag(1, -1, -1)`` (:data:`FRONT_VIEW`, a
180 degree turn about x): the body's left (+x) stays camera +x and shows on the image right, as in a
photo of a person facing you. :func:`frame_motion` puts one fixed camera in front of a whole motion.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence, Union

import torch

from ..body.rotations import axis_angle_to_matrix
from ..errors import InputError

#: HMR2's focal length rule: EXTRA.FOCAL_LENGTH / MODEL.IMAGE_SIZE = 5000 / 256, times max(W, H).
CHAMP_FOCAL_PER_PIXEL = 5000.0 / 256.0
#: World (y up, body facing +z) to OpenCV camera in front of the body.
FRONT_VIEW = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
#: Added to an OpenCV pixel coordinate (pixel centres at integers) to get this pack's (centres at i + 0.5).
OPENCV_TO_PACK_PIXEL = 0.5
#: Default framing: mean body height as a fraction of the image height ...
DEFAULT_FILL = 0.8
#: ... and the margin kept free on every side by the whole motion's bounding box (fraction of W or H).
DEFAULT_MARGIN = 0.04

ArrayLike = Union[torch.Tensor, Sequence]


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """A distortion-free pinhole camera and its W x H image (OpenCV conventions, see module docstring).

    Attributes:
        width, height: image size in pixels.
        fx, fy: focal lengths in pixels; cx, cy: principal point in pixels.
        rotation: ``(3, 3)`` world -> camera rotation R; translation: ``(3,)`` t (scene units).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    rotation: torch.Tensor
    translation: torch.Tensor

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise InputError(f"camera image size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise InputError(f"focal lengths must be positive pixels, got fx={self.fx}, fy={self.fy}")
        if tuple(self.rotation.shape) != (3, 3) or tuple(self.translation.shape) != (3,):
            raise InputError(f"rotation must be (3, 3) and translation (3,), got {tuple(self.rotation.shape)} "
                             f"and {tuple(self.translation.shape)}")

    @property
    def intrinsics(self) -> torch.Tensor:
        """``(3, 3)`` K matrix."""
        return torch.tensor([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def world_to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """``(..., 3)`` world points -> ``(..., 3)`` float32 OpenCV camera coordinates."""
        r = self.rotation.to(points.device, torch.float32)
        return points.float() @ r.T + self.translation.to(points.device, torch.float32)

    def project(self, points_cam: torch.Tensor) -> torch.Tensor:
        """``(..., 3)`` camera points -> ``(..., 3)`` ``[u_px, v_px, z]`` (the rasteriser's screen input)."""
        x, y, z = points_cam.float().unbind(-1)
        safe = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
        return torch.stack([self.fx * x / safe + self.cx, self.fy * y / safe + self.cy, z], dim=-1)

    def to_screen(self, points: torch.Tensor) -> torch.Tensor:
        """``(..., 3)`` world points -> ``[u_px, v_px, z]``."""
        return self.project(self.world_to_camera(points))

    def crop(self, left: float, top: float, side: float, size: int) -> "PinholeCamera":
        """The ``size x size`` camera whose image is this image's square ``[left, left + side) x [top, top + side)``
        resized to ``size x size`` pixels (e.g. a dancer crop of a calibrated video frame).

        Args:
            left, top: the crop's top-left corner in this image, pixels (may lie outside the image).
            side: the crop's edge, pixels (> 0); size: the output image's edge, pixels (>= 1).
        Returns:
            Same R and t; ``fx' = fx * size / side``, ``cx' = (cx - left) * size / side`` (likewise y),
            so a point at pixel ``(u, v)`` here lands at ``((u - left) * size / side, (v - top) * size / side)``.
        """
        if not (side > 0 and size >= 1 and int(size) == size):
            raise InputError(f"a camera crop needs side > 0 pixels and an integer size >= 1, got side={side!r}, "
                             f"size={size!r}")
        k = size / side
        return replace(self, width=int(size), height=int(size), fx=self.fx * k, fy=self.fy * k,
                       cx=(self.cx - left) * k, cy=(self.cy - top) * k)


def _vector(value: ArrayLike, shape: tuple[int, ...], name: str) -> torch.Tensor:
    out = torch.as_tensor(value, dtype=torch.float32).detach().cpu()
    if tuple(out.shape) != shape:
        raise InputError(f"{name} must have shape {shape}, got {tuple(out.shape)}")
    return out


def champ_camera(width: int, height: int, rotation: ArrayLike = FRONT_VIEW,
                 translation: ArrayLike = (0.0, 0.0, 0.0)) -> PinholeCamera:
    """Champ's camera: ``f = 5000/256 * max(W, H)``, principal point ``(W/2, H/2)``, given R and t."""
    f = CHAMP_FOCAL_PER_PIXEL * max(width, height)
    return PinholeCamera(int(width), int(height), f, f, width / 2.0, height / 2.0,
                         _vector(rotation, (3, 3), "rotation"), _vector(translation, (3,), "translation"))


def camera_from_opencv(intrinsics: ArrayLike, rvec: ArrayLike, tvec: ArrayLike, width: int, height: int,
                       translation_scale: float = 1.0) -> PinholeCamera:
    """A calibrated OpenCV camera, e.g. AIST++'s ``K``, ``rvec`` (Rodrigues) and ``t``; distortion is ignored.

    ``translation_scale`` converts ``t`` to the body's metres (AIST++ calibrations are in cm: 0.01).
    The world frame must be the one the cameras were calibrated in.

    Pixel convention: OpenCV (and so AIST++) puts pixel ``i``'s CENTRE at coordinate ``i``; this pack
    puts it at ``i + 0.5`` (pixel ``i`` covers ``[i, i + 1)``, module docstring). The principal point
    is therefore shifted by half a pixel: ``cx = K[0, 2] + 0.5``, ``cy = K[1, 2] + 0.5`` (focal lengths
    unchanged), so a point OpenCV projects to ``(u, v)`` lands at ``(u + 0.5, v + 0.5)`` here, i.e. in
    the same pixel of the same image.
    """
    k = _vector(intrinsics, (3, 3), "intrinsics K")
    rotation = axis_angle_to_matrix(_vector(rvec, (3,), "rvec").double()).float()
    translation = _vector(tvec, (3,), "tvec") * translation_scale
    cx, cy = float(k[0, 2]) + OPENCV_TO_PACK_PIXEL, float(k[1, 2]) + OPENCV_TO_PACK_PIXEL
    return PinholeCamera(int(width), int(height), float(k[0, 0]), float(k[1, 1]), cx, cy, rotation, translation)


def frame_motion(points: torch.Tensor, width: int, height: int, fill: float = DEFAULT_FILL,
                 margin: float = DEFAULT_MARGIN) -> PinholeCamera:
    """One fixed front camera (Champ intrinsics) framing a whole motion.

    Args:
        points: ``(N, P, 3)`` world vertices (or joints) of all N frames; vertices frame the skin,
            joints only the skeleton.
        fill: the mean per-frame body height becomes ``fill * H`` ...
        margin: ... unless the motion's overall bounding box would then come closer than
            ``margin * W`` / ``margin * H`` to the image border; then the camera backs off until it fits.
    Returns:
        A camera looking along world -z whose optical axis passes through the centre of the motion's
        bounding box (in the image plane) at the mean body depth; the dancer moves within the frame.
    """
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[-1] != 3 or points.shape[1] == 0:
        raise InputError(f"points must be (frames, points, 3) world coordinates, got {tuple(points.shape)}")
    if not (0 < fill <= 1 and 0 <= margin < 0.5):
        raise InputError(f"fill must be in (0, 1] and margin in [0, 0.5), got fill={fill}, margin={margin}")
    cam = champ_camera(width, height)
    q = points.detach().double().cpu() @ FRONT_VIEW.double().T                # camera-aligned axes
    lo, hi = q.amin(dim=1), q.amax(dim=1)                                    # (N, 3) per-frame boxes
    mean_height = float((hi[:, 1] - lo[:, 1]).mean())
    union_lo, union_hi = lo.amin(0), hi.amax(0)
    span = union_hi - union_lo
    distance = cam.fx * max(mean_height / (fill * height), float(span[1]) / ((1 - 2 * margin) * height),
                            float(span[0]) / ((1 - 2 * margin) * width), 1e-6)
    centre = (union_lo + union_hi) / 2
    depth = float(((lo[:, 2] + hi[:, 2]) / 2).mean())
    translation = torch.tensor([-float(centre[0]), -float(centre[1]), distance - depth])
    return replace(cam, translation=translation.float())
