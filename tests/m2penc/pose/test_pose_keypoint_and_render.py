"""POSE_KEYPOINT output (controlnet_aux layout), its validator, and the skeleton renderer."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.pose.heatmaps import canvas_to_heatmap, keypoints_to_heatmaps
from m2pdance.m2penc.pose.openpose import COLORS_RGB, NUM_BODY_KEYPOINTS
from m2pdance.m2penc.pose.pose_keypoint import (
    heatmaps_to_pose_keypoint, keypoints_to_pose_keypoint, pose_keypoint_to_keypoints,
    validate_pose_keypoint,
)
from m2pdance.m2penc.pose.render import render_pose_keypoint

W, H = 512, 384

#: A standing figure on a 512 x 384 canvas, OpenPose-18 order (x, y).
STANDING = np.array([
    [256, 60], [256, 100], [216, 100], [196, 160], [186, 220], [296, 100], [316, 160], [326, 220],
    [231, 220], [226, 290], [221, 360], [281, 220], [286, 290], [291, 360], [246, 50], [266, 50],
    [236, 56], [276, 56],
], dtype=np.float64)


def _frames(count: int = 3) -> np.ndarray:
    points = np.concatenate([STANDING, np.ones((NUM_BODY_KEYPOINTS, 1))], axis=1)
    frames = np.stack([points + [3 * i, 0, 0] for i in range(count)])
    if count > 1:
        frames[1, 4, 2] = 0.1  # right wrist not detected in frame 1
    return frames


def test_layout_matches_controlnet_aux():
    pose = keypoints_to_pose_keypoint(_frames(), W, H)
    validate_pose_keypoint(pose)
    assert len(pose) == 3
    frame = pose[0]
    assert set(frame) == {"people", "canvas_width", "canvas_height"}
    assert (frame["canvas_width"], frame["canvas_height"]) == (W, H)
    person = frame["people"][0]
    assert set(person) == {"pose_keypoints_2d", "foot_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                           "hand_right_keypoints_2d"}   # core's layout: every array present (body only: zeros)
    assert len(person["pose_keypoints_2d"]) == 54 and person["face_keypoints_2d"] == [0.0] * 70 * 3
    assert person["pose_keypoints_2d"][:3] == [256.0, 60.0, 1.0]
    assert pose[1]["people"][0]["pose_keypoints_2d"][12:15] == [0.0, 0.0, 0.0]  # missing -> zeros
    np.testing.assert_allclose(pose_keypoint_to_keypoints(pose)[2, :, :2], STANDING + [6, 0])


def test_wholebody_heatmaps_fill_face_and_hands():
    points = torch.rand(2, 134, 3) * 60
    points[..., 2] = 1
    pose = heatmaps_to_pose_keypoint(keypoints_to_heatmaps(points, 64, 64), W, H)
    validate_pose_keypoint(pose)
    person = pose[0]["people"][0]
    assert len(person["face_keypoints_2d"]) == 70 * 3 and len(person["hand_left_keypoints_2d"]) == 63  # 68 + 2 eyes


def test_heatmaps_to_pose_keypoint_lands_on_canvas_pixels():
    frames = torch.from_numpy(_frames(2)).float()
    frames[..., 2] = 1
    maps = keypoints_to_heatmaps(canvas_to_heatmap(frames, (H, W), (64, 64)), 64, 64)
    pose = heatmaps_to_pose_keypoint(maps, W, H)
    back = pose_keypoint_to_keypoints(pose)
    assert np.abs(back[..., :2] - frames[..., :2].numpy()).max() < W / 64  # within one heatmap cell


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.clear(), "non-empty list"),
    (lambda p: p[0].pop("canvas_width"), "canvas_width"),
    (lambda p: p[0].__setitem__("people", {}), "'people' must be a list"),
    (lambda p: p[0]["people"][0]["pose_keypoints_2d"].pop(), "54"),
    (lambda p: p[0]["people"][0].__setitem__("hand_left_keypoints_2d", [1.0, 2.0]), "63"),
    (lambda p: p[0]["people"][0]["pose_keypoints_2d"].__setitem__(0, float("nan")), "non-finite"),
])
def test_validator_rejects_broken_layouts(mutate, message):
    pose = copy.deepcopy(keypoints_to_pose_keypoint(_frames(1), W, H))
    mutate(pose)
    with pytest.raises(InputError, match=message):
        validate_pose_keypoint(pose)


def test_skeleton_image_has_colour_at_keypoints():
    pose = keypoints_to_pose_keypoint(_frames(), W, H)
    images = render_pose_keypoint(pose)
    assert images.shape == (3, H, W, 3) and images.dtype == torch.float32
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    for f, frame in enumerate(_frames()):
        for k, (x, y, c) in enumerate(frame):
            pixel = (images[f, int(round(y)), int(round(x))] * 255).round().numpy()
            if c >= 0.3:
                np.testing.assert_array_equal(pixel, COLORS_RGB[k], err_msg=f"frame {f} keypoint {k}")
    assert float(images[1, 220, 186].sum()) < float(images[0, 220, 186].sum())  # missing wrist not drawn
    limb_pixel = images[0, 130, 206] * 255  # midway shoulder -> elbow: dimmed limb colour (60 %)
    np.testing.assert_allclose(limb_pixel.numpy(), np.array(COLORS_RGB[2]) * 0.6, atol=1.0)
    assert float(images[0, 5, 5].sum()) == 0.0  # background stays black


def test_renderer_needs_one_canvas_size():
    pose = keypoints_to_pose_keypoint(_frames(2), W, H)
    pose[1]["canvas_width"] = 256
    with pytest.raises(InputError, match="one canvas size"):
        render_pose_keypoint(pose)
