"""Analytic scenes for the renderer tests: a camera with strong perspective, ray casts against a
sphere and a box, mask comparisons. Tests reach these helpers through the ``analytic`` fixture
(pytest's importlib mode cannot import a conftest by name)."""
from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from m2pdance.m2penc.render.camera import PinholeCamera
from m2pdance.m2penc.render.maps import vertex_normals
from m2pdance.m2penc.render.rasterize import rasterize

SIZE = 128
FOCAL = 200.0


def near_camera(size: int = SIZE, focal: float = FOCAL) -> PinholeCamera:
    """Identity extrinsics (world = OpenCV camera space), wide field of view (~35 degrees)."""
    return PinholeCamera(size, size, focal, focal, size / 2, size / 2, torch.eye(3), torch.zeros(3))


def pixel_rays(camera: PinholeCamera) -> torch.Tensor:
    """``(H, W, 3)`` float64 ray directions through the pixel centres, z component 1."""
    v, u = torch.meshgrid(torch.arange(camera.height, dtype=torch.float64) + 0.5,
                          torch.arange(camera.width, dtype=torch.float64) + 0.5, indexing="ij")
    return torch.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, torch.ones_like(u)], -1)


def ray_sphere(camera: PinholeCamera, center, radius: float):
    """Analytic first hit of every pixel ray: ``(hit (H, W) bool, z (H, W), normal (H, W, 3))``."""
    d, c = pixel_rays(camera), torch.tensor(center, dtype=torch.float64)
    b = (d * c).sum(-1)
    a = (d * d).sum(-1)
    disc = b * b - a * ((c * c).sum() - radius**2)
    t = (b - disc.clamp(min=0).sqrt()) / a
    normal = (t[..., None] * d - c) / radius
    return disc > 0, t, normal


def ray_box(camera: PinholeCamera, center, size, yaw: float):
    """First hit of every pixel ray on a box rotated by ``yaw`` about the camera y axis: ``(hit, z)``."""
    r = rotation_y(yaw).double()
    d = pixel_rays(camera) @ r                               # rays in box coordinates (R^T d)
    o = -torch.tensor(center, dtype=torch.float64) @ r
    half = torch.tensor(size, dtype=torch.float64) / 2
    t1, t2 = (-half - o) / d, (half - o) / d
    t_near = torch.minimum(t1, t2).amax(-1)
    t_far = torch.maximum(t1, t2).amin(-1)
    return (t_near < t_far) & (t_far > 0), t_near                 # z = t, since every ray has d_z = 1


def rotation_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def decode_normals(normal_map: torch.Tensor) -> torch.Tensor:
    """uint8 normal map -> unit OpenCV-camera normals (inverse of R=(1+x)/2, G=(1-y)/2, B=(1-z)/2)."""
    c = normal_map.double() / 255.0
    return F.normalize(torch.stack([2 * c[..., 0] - 1, 1 - 2 * c[..., 1], 1 - 2 * c[..., 2]], -1), dim=-1)


def within_one_pixel(rendered: torch.Tensor, analytic: torch.Tensor) -> bool:
    """Every disagreement of two ``(H, W)`` bool masks lies on the analytic boundary (3x3 neighbourhood)."""
    a = analytic.double()[None, None]
    grown = F.max_pool2d(a, 3, 1, 1)[0, 0] > 0
    shrunk = -F.max_pool2d(-a, 3, 1, 1)[0, 0] > 0
    return bool((rendered <= grown).all() and (shrunk <= rendered).all())


def interior(mask: torch.Tensor, pixels: int = 2) -> torch.Tensor:
    """``mask`` eroded by ``pixels``."""
    m = mask.double()[None, None]
    return (-F.max_pool2d(-m, 2 * pixels + 1, 1, pixels)[0, 0]) > 0


def render_world(mesh_vertices: torch.Tensor, faces: torch.Tensor, camera: PinholeCamera, **kwargs):
    """``(B, V, 3)`` world vertices -> (fragments, camera-space vertex normals)."""
    cam = camera.world_to_camera(mesh_vertices)
    return rasterize(camera.project(cam), faces, camera.height, camera.width, **kwargs), vertex_normals(cam, faces)


@pytest.fixture
def analytic():
    """This module: ``analytic.ray_sphere(...)`` etc."""
    return sys.modules[__name__]


@pytest.fixture
def camera() -> PinholeCamera:
    return near_camera()
