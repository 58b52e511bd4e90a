"""Champ's camera (GUIDANCE_MAPS.md section 0), the front view, motion framing, calibrated cameras."""
from __future__ import annotations

import math

import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.render.camera import (
    FRONT_VIEW, PinholeCamera, camera_from_opencv, champ_camera, frame_motion,
)


def test_champ_intrinsics_follow_hmr2():
    cam = champ_camera(640, 260)                      # Champ's example render_res, f = 12500
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (12500.0, 12500.0, 320.0, 130.0)
    assert torch.equal(cam.intrinsics, torch.tensor([[12500.0, 0, 320], [0, 12500, 130], [0, 0, 1]]))
    assert champ_camera(512, 512).fx == 10000.0


def test_front_view_shows_a_person_facing_us():
    """Body frame: y up, facing +z, its left at +x. Its left appears on the image right, its head on top."""
    assert torch.allclose(torch.linalg.det(FRONT_VIEW), torch.tensor(1.0))
    cam = champ_camera(512, 512, translation=(0.0, 0.0, 40.0))
    u, v, z = cam.to_screen(torch.tensor([[0.3, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.2]])).unbind(-1)
    assert u[0] > 256 and v[1] < 256
    assert float(z[2]) < 40.0                               # the body's front is nearer the camera


def test_projection_by_hand():
    cam = champ_camera(512, 512, translation=(0.0, 0.0, 10.0))
    screen = cam.to_screen(torch.tensor([0.1, 0.2, 0.0]))      # camera (0.1, -0.2, 10)
    assert torch.allclose(screen, torch.tensor([356.0, 56.0, 10.0]))


def _standing_box(frames: int = 1, sway: float = 0.0) -> torch.Tensor:
    """Corners of a 0.5 x 1.7 x 0.3 m box, feet at y = 0, swaying along x: ``(frames, 8, 3)``."""
    corners = torch.tensor([[x, y, z] for x in (-0.25, 0.25) for y in (0.0, 1.7) for z in (-0.15, 0.15)])
    shift = torch.zeros(frames, 1, 3)
    shift[:, 0, 0] = sway * torch.sin(torch.linspace(0, 2 * math.pi, frames))
    return corners[None] + shift


def test_frame_motion_fills_the_stated_height():
    cam = frame_motion(_standing_box(), 512, 512, fill=0.8)
    screen = cam.to_screen(_standing_box()[0])
    height = float(screen[:, 1].max() - screen[:, 1].min())
    assert abs(height - 0.8 * 512) < 0.01 * 512              # the front face is ~0.4 % nearer than the centre
    centre = (screen[:, :2].amax(0) + screen[:, :2].amin(0)) / 2
    assert torch.allclose(centre, torch.tensor([256.0, 256.0]), atol=2.0)
    assert torch.equal(cam.rotation, FRONT_VIEW) and cam.fx == 10000.0


def test_frame_motion_keeps_the_whole_motion_inside_the_margins():
    motion = _standing_box(frames=30, sway=2.0)              # sways 4 m side to side: width limits
    cam = frame_motion(motion, 512, 256, fill=0.8, margin=0.05)
    screen = cam.to_screen(motion)
    assert float(screen[..., 0].min()) >= 0.05 * 512 - 2 and float(screen[..., 0].max()) <= 0.95 * 512 + 2
    assert float(screen[..., 1].min()) >= 0.05 * 256 - 2 and float(screen[..., 1].max()) <= 0.95 * 256 + 2
    assert float(screen[..., 0].max() - screen[..., 0].min()) > 0.85 * 512   # ...and uses the room


def test_camera_from_opencv_calibration():
    k = [[1500.0, 0, 960], [0, 1490.0, 540], [0, 0, 1]]
    rvec = [0.0, math.pi / 2, 0.0]                           # 90 degrees about y
    cam = camera_from_opencv(k, rvec, [10.0, 0.0, 500.0], 1920, 1080, translation_scale=0.01)
    point = torch.tensor([1.0, 0.5, 0.0])
    # R_y(90) @ p = (p_z, p_y, -p_x) = (0, 0.5, -1); + t (0.1, 0, 5) = (0.1, 0.5, 4); OpenCV's pixel + 0.5
    expected = torch.tensor([1500 * 0.1 / 4 + 960 + 0.5, 1490 * 0.5 / 4 + 540 + 0.5, 4.0])
    assert torch.allclose(cam.to_screen(point), expected, atol=1e-3)
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (1920, 1080, 1500.0, 1490.0, 960.5, 540.5)


def test_opencv_pixel_centres_become_the_packs():
    """OpenCV puts pixel i's centre at i, the pack at i + 0.5: a point OpenCV sees at the centre of pixel
    (0, 0) or (W-1, H-1) is at the centre of that same pixel here, not on its corner."""
    k = torch.tensor([[100.0, 0, 3.5], [0, 100.0, 2.5], [0, 0, 1]])      # the exact centre of an 8 x 6 image
    cam = camera_from_opencv(k, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 8, 6)
    opencv_pixels = torch.tensor([[0.0, 0.0], [7.0, 5.0], [3.5, 2.5]])
    rays = torch.cat([(opencv_pixels - k[:2, 2]) / 100.0, torch.ones(3, 1)], dim=1)   # back-projected at z = 1
    torch.testing.assert_close(cam.to_screen(rays)[:, :2], torch.tensor([[0.5, 0.5], [7.5, 5.5], [4.0, 3.0]]))
    assert (cam.cx, cam.cy) == (8 / 2, 6 / 2)                # centred like champ_camera's (W/2, H/2)


def test_crop_is_the_resized_square_of_the_image():
    k = [[1500.0, 0, 960], [0, 1490.0, 540], [0, 0, 1]]
    cam = camera_from_opencv(k, [0.1, 0.2, -0.3], [10.0, -20.0, 500.0], 1920, 1080, translation_scale=0.01)
    crop = cam.crop(700, -40, 800, 512)                     # reaches above the image: allowed
    k_ = 512 / 800
    assert (crop.width, crop.height) == (512, 512)
    assert (crop.fx, crop.fy, crop.cx, crop.cy) == (1500 * k_, 1490 * k_, (960.5 - 700) * k_, (540.5 + 40) * k_)
    assert torch.equal(crop.rotation, cam.rotation) and torch.equal(crop.translation, cam.translation)
    points = torch.tensor([[0.3, -0.4, 1.0], [-0.7, 0.9, 0.2], [0.0, 0.0, 0.0]])
    u, v, z = cam.to_screen(points).unbind(-1)
    expected = torch.stack([(u - 700) * k_, (v + 40) * k_, z], -1)
    torch.testing.assert_close(crop.to_screen(points), expected, atol=1e-3, rtol=0)
    whole = cam.crop(0, 0, 1920, 1920)                      # side = width: only the image size changes
    assert (whole.fx, whole.cx, whole.cy, whole.width) == (cam.fx, cam.cx, cam.cy, 1920)


@pytest.mark.parametrize("build, message", [
    (lambda: champ_camera(64, 64).crop(0, 0, 0, 32), "side > 0"),
    (lambda: champ_camera(64, 64).crop(0, 0, 16, 0), "size >= 1"),
    (lambda: champ_camera(0, 512), "positive"),
    (lambda: champ_camera(512, 512, rotation=torch.eye(4)), "rotation"),
    (lambda: PinholeCamera(8, 8, -1.0, 1.0, 4, 4, torch.eye(3), torch.zeros(3)), "focal"),
    (lambda: frame_motion(torch.zeros(3, 3, 2), 64, 64), "frames, points, 3"),
    (lambda: frame_motion(torch.zeros(1, 3, 3), 64, 64, fill=1.5), "fill"),
    (lambda: camera_from_opencv(torch.eye(3), [0, 0], [0, 0, 0], 8, 8), "rvec"),
])
def test_bad_cameras_name_the_problem(build, message):
    with pytest.raises(InputError, match=message):
        build()
