"""OpenPose-18 keypoints from body joints: mapping, projection, visibility, POSE_KEYPOINT, heatmaps, skeleton."""
from __future__ import annotations

import json

import torch

from m2pdance.m2penc.body.skeleton import rest_joints
from m2pdance.m2penc.pose import openpose
from m2pdance.m2penc.pose import render as pose_render
from m2pdance.m2penc.pose.heatmaps import heatmap_to_canvas, heatmaps_to_keypoints
from m2pdance.m2penc.pose.openpose import BODY_KEYPOINT_NAMES, COLORS_RGB
from m2pdance.m2penc.pose.pose_keypoint import validate_pose_keypoint
from m2pdance.m2penc.render.camera import champ_camera
from m2pdance.m2penc.render.keypoints import (
    HEATMAP_GRID, OPENPOSE_FROM_LANDMARK, OPENPOSE_FROM_SMPL, body_keypoints, keypoints_to_grid_heatmaps,
    keypoints_to_pose, openpose_points, project_keypoints, skeleton_images,
)

W = H = 512
LANDMARKS = {"nose": 0, "right_eye": 1, "left_eye": 2, "right_ear": 3, "left_ear": 4}


def _body(batch: int = 1):
    """SMPL rest joints standing with the pelvis 0.9 m up, plus five head 'vertices'."""
    joints = (rest_joints() + torch.tensor([0.0, 0.9, 0.0]))[None].repeat(batch, 1, 1)
    head = joints[:, 15:16]
    vertices = head + torch.tensor([[0, 0, 0.1], [-0.03, 0.03, 0.09], [0.03, 0.03, 0.09], [-0.07, 0, 0], [0.07, 0, 0]])
    return joints, vertices


def _front_camera():
    """Looks at the standing body's middle (world y = 0.9) from 40 m: the body is ~215 px tall."""
    return champ_camera(W, H, translation=(0.0, 0.9, 40.0))


def test_projection_equals_hand_computed_pixels():
    cam = champ_camera(W, H, translation=(0.0, 0.0, 10.0))     # f = 10000, centre (256, 256)
    points = torch.tensor([[[0.1, 0.2, 0.0], [-0.2, -0.1, 0.5], [0.0, 0.0, 0.0]]])
    # camera (0.1, -0.2, 10) -> u 356, v 56; (-0.2, 0.1, 9.5) -> u 45.47, v 361.26; pixel centres at integers.
    expected = torch.tensor([[[355.5, 55.5, 1.0], [256 - 2000 / 9.5 - 0.5, 256 + 1000 / 9.5 - 0.5, 1.0], [255.5, 255.5, 1.0]]])
    assert torch.allclose(project_keypoints(points, cam), expected, atol=1e-3)


def test_hidden_points_get_zero_confidence():
    cam = champ_camera(W, H, translation=(0.0, 0.0, 10.0))
    points = torch.tensor([[[0.0, 0.0, 20.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]])   # behind, off canvas, fine
    assert project_keypoints(points, cam)[0, :, 2].tolist() == [0.0, 0.0, 1.0]


def test_mapping_uses_the_persons_own_right():
    assert all(BODY_KEYPOINT_NAMES[op].startswith("right") == (smpl in (2, 5, 8, 17, 19, 21))
               for op, smpl in OPENPOSE_FROM_SMPL.items())
    assert sorted([*OPENPOSE_FROM_SMPL, *OPENPOSE_FROM_LANDMARK, 1]) == list(range(18))
    joints, vertices = _body()
    points = openpose_points(joints, vertices, LANDMARKS)
    assert torch.allclose(points[0, 1], (joints[0, 16] + joints[0, 17]) / 2)      # neck
    assert torch.equal(points[0, 4], joints[0, 21]) and torch.equal(points[0, 0], vertices[0, 0])
    cam = _front_camera()
    keypoints = body_keypoints(joints, vertices, LANDMARKS, cam)
    assert float(keypoints[0, 2, 0]) < 255.5 < float(keypoints[0, 5, 0])           # right shoulder on image left
    assert float(keypoints[0, 0, 1]) < float(keypoints[0, 1, 1]) < float(keypoints[0, 10, 1])   # nose, neck, ankle
    assert bool((keypoints[..., 2] == 1).all())


def test_neck_needs_both_shoulders():
    joints, vertices = _body()
    cam = _front_camera()
    joints[0, 17, 0] = -5.0                                   # right shoulder far off the canvas
    keypoints = body_keypoints(joints, vertices, LANDMARKS, cam)
    assert float(keypoints[0, 2, 2]) == 0.0 and float(keypoints[0, 1, 2]) == 0.0 and float(keypoints[0, 5, 2]) == 1.0


def test_pose_keypoint_layout():
    joints, vertices = _body(2)
    cam = _front_camera()
    keypoints = body_keypoints(joints, vertices, LANDMARKS, cam)
    keypoints[1, 4, 2] = 0.0
    pose = keypoints_to_pose(keypoints, W, H)
    validate_pose_keypoint(pose)
    person = pose[1]["people"][0]
    assert (pose[0]["canvas_width"], pose[0]["canvas_height"]) == (W, H) and len(person["pose_keypoints_2d"]) == 54
    assert person["pose_keypoints_2d"][12:15] == [0.0, 0.0, 0.0]
    assert person["pose_keypoints_2d"][:2] == keypoints[1, 0, :2].double().tolist()


def test_heatmaps_peak_at_the_keypoints():
    joints, vertices = _body()
    cam = _front_camera()
    keypoints = body_keypoints(joints, vertices, LANDMARKS, cam)
    maps = keypoints_to_grid_heatmaps(keypoints, W, H)
    assert maps.shape == (1, 18, HEATMAP_GRID, HEATMAP_GRID) and float(maps.max()) <= 1.0
    back = heatmap_to_canvas(heatmaps_to_keypoints(maps), (HEATMAP_GRID, HEATMAP_GRID), (H, W))
    assert float((back[..., :2] - keypoints[..., :2]).abs().max()) < 0.5 * W / HEATMAP_GRID
    peak = maps[0, 0].flatten().argmax()
    cell = torch.tensor([peak % HEATMAP_GRID, peak // HEATMAP_GRID]).float()
    assert float(((cell + 0.5) * W / HEATMAP_GRID - 0.5 - keypoints[0, 0, :2]).abs().max()) <= W / HEATMAP_GRID


def test_skeleton_draws_keypoints_in_openpose_colours():
    joints, vertices = _body()
    cam = _front_camera()
    keypoints = body_keypoints(joints, vertices, LANDMARKS, cam)
    image = skeleton_images(keypoints, W, H)
    assert image.shape == (1, H, W, 3) and float(image[0, 0, 0].sum()) == 0.0
    for k in (2, 4, 7, 10, 13):                               # joints apart from the crowded face
        x, y = int(keypoints[0, k, 0]), int(keypoints[0, k, 1])
        assert (image[0, y, x] * 255).round().tolist() == list(COLORS_RGB[k]), BODY_KEYPOINT_NAMES[k]


def test_skeleton_drawing_follows_dwpose(shared_dir):
    """GUIDANCE_MAPS section 4: colours, limb list, stick width 4, x0.6 with truncation, radius 4."""
    spec = json.loads((shared_dir / "spec/champ/guidance_palettes.json").read_text())["dwpose"]
    assert [list(c) for c in openpose.COLORS_RGB] == spec["colors_rgb"]
    assert [[a + 1, b + 1] for a, b in openpose.LIMBS] == spec["limb_seq_1based"] and openpose.NUM_DRAWN_LIMBS == 17
    assert openpose.STICK_HALF_WIDTH == spec["body_stickwidth_half_minor_axis_px"] == 4
    assert openpose.KEYPOINT_RADIUS == spec["body_keypoint_radius_px"] == 4
    dimmed = [pose_render._DIM_LUT[list(c)].tolist() for c in openpose.COLORS_RGB[:17]]
    assert dimmed == spec["limb_colors_after_0p6_rgb"]
