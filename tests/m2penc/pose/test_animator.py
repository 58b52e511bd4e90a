"""Pose videos for animators: preset constraints (seeded property loop), resampling, DWPose drawing,
face crops, and retargeting onto a photo's person (m2penc.pose.animator, m2penc.pose.retarget)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.timeline import resampled_frame_count
from m2pdance.m2penc.pose.animator import (
    CLAY_RGB, FACE_BOX_TORSO_RATIO, FACE_POINT_RGB, PRESETS, clay_shading, draw_face_crops, draw_pose_video,
    face_boxes, face_crop_map, fit_frames, plan_pose_video, pose_keypoint_sequence, resample_keypoints,
    window_count,
)
from m2pdance.m2penc.pose.openpose import (
    COLORS_RGB, FACE, KEYPOINT_RADIUS, LIMB_DIMMING, NUM_BODY_KEYPOINTS, STICK_HALF_WIDTH, WHOLEBODY_KEYPOINTS,
)
from m2pdance.m2penc.pose.pose_keypoint import keypoints_to_pose_keypoint
from m2pdance.m2penc.pose.render import render_pose_keypoint
from m2pdance.m2penc.pose.retarget import (
    PlaneMap, box_from_fractions, fit_to_box, person_extent, photo_to_canvas, sequence_extent,
)

#: A standing figure, OpenPose-18 order (x, y) on a 512 x 384 canvas (as the POSE_KEYPOINT tests use).
STANDING = np.array([
    [256, 60], [256, 100], [216, 100], [196, 160], [186, 220], [296, 100], [316, 160], [326, 220],
    [231, 220], [226, 290], [221, 360], [281, 220], [286, 290], [291, 360], [246, 50], [266, 50],
    [236, 56], [276, 56],
], dtype=np.float64)
SOURCE_FPS = (8.0, 12.0, 15.0, 23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0)


def _standing(frames: int = 1, dx: float = 0.0) -> np.ndarray:
    points = np.concatenate([STANDING, np.ones((NUM_BODY_KEYPOINTS, 1))], axis=1)
    return np.stack([points + [dx * i, 0, 0] for i in range(frames)])


# -- presets and plans -----------------------------------------------------------------------------------

def test_presets_state_each_targets_facts():
    wan, uni, steady, scail, vace, free = (PRESETS[n] for n in
                                            ("wan_animate", "unianimate_dit", "steadydancer", "scail", "vace", "free"))
    assert (wan.fps, wan.size_multiple, wan.window, wan.window_overlap, wan.chained) == (16.0, 16, 77, 5, True)
    assert wan.takes_face_video and not any(p.takes_face_video for p in (uni, steady, scail, vace, free))
    assert (uni.fps, uni.window, uni.default_size) == (15.0, 81, (480, 832))            # 832 high x 480 wide
    assert (steady.fps, steady.window) == (16.0, 81) and (vace.fps, vace.window) == (16.0, 81)
    assert (scail.size_multiple, scail.window, scail.window_step, scail.chained) == (32, 81, 76, True)
    assert free.fps is None and free.size_multiple == 1 and free.window is None
    for preset in PRESETS.values():
        assert preset.sources and all(preset.sources)
        if preset.name != "free":
            assert str(preset.frame_rule) == "4n+1" and preset.frame_rule.valid(preset.window)
            assert all(s % preset.size_multiple == 0 for s in preset.default_size)


def _random_request(rng: np.random.Generator) -> dict:
    sized = rng.random() < 0.7
    return dict(num_frames=int(rng.integers(1, 3000)),
                source_fps=float(rng.choice(SOURCE_FPS)) if rng.random() < 0.7 else float(rng.uniform(5, 120)),
                width=int(rng.integers(16, 2000)) if sized else 0, height=int(rng.integers(16, 2000)) if sized else 0,
                fps=0.0 if rng.random() < 0.5 else float(rng.uniform(5, 60)),
                length=0 if rng.random() < 0.5 else int(rng.integers(1, 3000)),
                fit=str(rng.choice(["pad", "trim"])), whole_windows=bool(rng.random() < 0.5))


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_plan_meets_the_targets_constraints(name):
    """Property test (seeded loop, no hypothesis): sizes, rate, counts and windows for any request."""
    preset = PRESETS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(400):
        ask = _random_request(rng)
        plan = plan_pose_video(preset, **ask, source_size=(640, 360))
        m = preset.size_multiple
        assert plan.width % m == 0 and plan.height % m == 0 and plan.width >= m and plan.height >= m, (ask, plan)
        if ask["width"]:
            assert abs(plan.width - ask["width"]) <= max(m / 2, m - ask["width"]) and abs(plan.height - ask["height"]) \
                <= max(m / 2, m - ask["height"]), (ask, plan)
        else:
            assert (plan.width, plan.height) == (preset.default_size or (640, 360))
        assert plan.fps == (ask["fps"] or preset.fps or ask["source_fps"])
        assert plan.resampled_frames == resampled_frame_count(ask["num_frames"], ask["source_fps"], plan.fps)
        assert preset.frame_rule.valid(plan.frames), (ask, plan)
        wanted = ask["length"] or plan.resampled_frames
        windows = ask["whole_windows"] and preset.chained
        step = preset.window_step if windows else preset.frame_rule.step
        if windows:
            assert plan.frames >= preset.window and (plan.frames - preset.window) % preset.window_step == 0
        if ask["fit"] == "pad" or plan.frames > wanted:
            assert plan.frames >= wanted and (plan.frames - wanted < step or plan.frames == (preset.window if windows
                                                                                                else 1)), (ask, plan)
        else:
            assert wanted - step < plan.frames <= wanted, (ask, plan)
        assert plan.used_frames == min(plan.frames, plan.resampled_frames)
        assert plan.used_frames + plan.padded == plan.frames and plan.trimmed >= 0
        if preset.chained:
            covered = preset.window + (plan.windows - 1) * preset.window_step
            assert covered >= plan.frames and (plan.windows == 1 or covered - preset.window_step < plan.frames)
        assert plan.notes[0].startswith(f"{name}: {plan.width}x{plan.height}")
        if plan.frames != wanted:
            assert any(("padded" in n or "trimmed" in n) and f"-> {plan.frames}" in n for n in plan.notes), plan.notes
        if plan.padded:
            assert any("held the last pose" in n for n in plan.notes)


def test_plan_notes_say_what_changed():
    plan = plan_pose_video("wan_animate", 180, 30.0, 500, 700)
    assert (plan.width, plan.height, plan.fps, plan.resampled_frames, plan.frames) == (496, 704, 16.0, 96, 97)
    text = plan.note
    for expected in ("500x700 -> 496x704", "fps 30 -> 16", "96 -> 97: padded to 4n+1", "held the last pose for 1",
                     "2 windows of 77 frames (5-frame overlap)"):
        assert expected in text, (expected, text)
    trimmed = plan_pose_video("wan_animate", 180, 30.0, fit="trim")
    assert trimmed.frames == 93 and trimmed.trimmed == 3 and "96 -> 93: trimmed to 4n+1" in trimmed.note
    windows = plan_pose_video("scail", 100, 16.0, whole_windows=True)
    assert windows.frames == 81 + 76 and windows.windows == 2 and windows.padded == 57
    free = plan_pose_video("free", 17, 24.0, source_size=(300, 200))
    assert free.notes == ("free: 300x200, 24 fps, 17 frames (0.71 s)", "size 300x200: free's default")
    longer = plan_pose_video("vace", 10, 16.0, length=30)
    assert longer.frames == 33 and longer.padded == 23 and "length 30 asked, the dance has 10 frames" in longer.note
    assert "fps 30 asked instead of wan_animate's 16" in plan_pose_video("wan_animate", 30, 30.0, fps=30.0).note
    assert "whole_windows ignored" in plan_pose_video("vace", 30, 16.0, whole_windows=True).note


@pytest.mark.parametrize("kwargs, match", [
    (dict(width=512, height=0), "both width and height"), (dict(fps=-1.0), "fps must be >= 0"),
    (dict(length=-3), "length must be >= 0"), (dict(fit="stretch"), "fit must be one of"),
])
def test_bad_requests_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        plan_pose_video("wan_animate", 30, 30.0, **kwargs)
    with pytest.raises(InputError, match="unknown animator preset"):
        plan_pose_video("wan_2", 30, 30.0)


def test_frame_counts_agree_with_motion_resampling():
    from m2pdance.m2penc.motion import SMPLMotion

    rng = np.random.default_rng(3)
    for _ in range(40):
        n, src, dst = int(rng.integers(1, 200)), float(rng.choice(SOURCE_FPS)), float(rng.choice((15.0, 16.0, 30.0)))
        motion = SMPLMotion(poses=np.zeros((n, 24, 3), np.float32), trans=np.zeros((n, 3), np.float32), fps=src)
        assert motion.resample(dst).num_frames == resampled_frame_count(n, src, dst), (n, src, dst)
    assert window_count(77, PRESETS["wan_animate"]) == 1 and window_count(78, PRESETS["wan_animate"]) == 2


def test_resampling_keypoints_is_exact_on_linear_motion_and_keeps_gaps():
    points = _standing(31, dx=2.0)                          # 2 px per frame at 30 fps
    points[[9, 12], 4, 2] = 0.0                             # right wrist undetected in frames 9 and 12
    out = resample_keypoints(points, 30.0, 16.0)
    assert out.shape == (resampled_frame_count(31, 30.0, 16.0), NUM_BODY_KEYPOINTS, 3)
    t = np.arange(out.shape[0]) * 30.0 / 16.0
    np.testing.assert_allclose(out[:, 0, 0], STANDING[0, 0] + 2.0 * t, atol=1e-9)
    assert t[5] == 9.375 and out[5, 4, 2] == 0.0            # nearer to frame 9 (missing): missing
    assert t[6] == 11.25 and out[6, 4, 2] == 1.0 and out[6, 4, 0] == points[11, 4, 0]   # nearer frame 11, as is
    assert out[4, 4, 2] == 1.0 and out[4, 4, 0] == pytest.approx(STANDING[4, 0] + 2.0 * 7.5)
    plan = plan_pose_video("wan_animate", 31, 30.0)
    held = fit_frames(out, plan)
    assert held.shape[0] == plan.frames == 17 and np.array_equal(held[-1], out[plan.used_frames - 1])


# -- drawing ---------------------------------------------------------------------------------------------------

def test_pose_video_is_dwpose_drawing_at_the_stated_widths():
    # controlnet_aux draw_bodypose / DWPose util.py: stickwidth = 4, circles of radius 4, limbs at 0.6
    assert (STICK_HALF_WIDTH, KEYPOINT_RADIUS, LIMB_DIMMING) == (4, 4, 0.6)
    points = _standing()
    video, pose = draw_pose_video(points, 512, 384)
    assert video.shape == (1, 384, 512, 3) and video.dtype == torch.float32
    assert torch.equal(video, render_pose_keypoint(pose))
    image = np.rint(video[0].numpy() * 255).astype(int)
    # limb 7 (neck -> right hip, index 6) midpoint: dimmed colour; keypoint centres: full colour
    mid = ((STANDING[1] + STANDING[8]) / 2).astype(int)
    assert tuple(image[mid[1], mid[0]]) == tuple(int(c * LIMB_DIMMING) for c in COLORS_RGB[6])
    for k in (0, 4, 10, 17):
        x, y = STANDING[k].astype(int)
        assert tuple(image[y, x]) == COLORS_RGB[k]
    # the right upper arm (196,160)->(186,220) is near vertical: measure the stick across at its middle
    row = image[190]
    lit = np.flatnonzero((row == [int(c * LIMB_DIMMING) for c in COLORS_RGB[3]]).all(axis=1))
    assert 2 * STICK_HALF_WIDTH - 1 <= len(lit) <= 2 * STICK_HALF_WIDTH + 1
    # the left knee's disc: 2r + 1 pixels across
    x, y = STANDING[12].astype(int)
    disc = np.flatnonzero((image[y] == COLORS_RGB[12]).all(axis=1))
    assert len(disc) == 2 * KEYPOINT_RADIUS + 1 and disc.min() == x - KEYPOINT_RADIUS


def test_face_boxes_follow_the_head_with_a_constant_size():
    points = _standing(5, dx=10.0)
    points[2, [0, 14, 15, 16, 17], 2] = 0.0                 # no head keypoint in frame 2
    boxes = face_boxes(points, 512, 384)
    torso = np.linalg.norm(STANDING[1] - (STANDING[8] + STANDING[11]) / 2)
    np.testing.assert_allclose(boxes[:, 2], FACE_BOX_TORSO_RATIO * torso)
    head = STANDING[[0, 14, 15, 16, 17]].mean(axis=0)
    np.testing.assert_allclose(boxes[[0, 1, 3, 4], :2], head + np.array([[0, 0], [10, 0], [30, 0], [40, 0]]))
    np.testing.assert_allclose(boxes[2, :2], boxes[1, :2])   # nearest frame with a head (ties: the earlier)
    empty = np.zeros((2, NUM_BODY_KEYPOINTS, 3))
    np.testing.assert_allclose(face_boxes(empty, 512, 384), [[255.5, 383 / 3, 96]] * 2)


def test_face_crops_draw_the_head_at_crop_resolution():
    points = np.zeros((2, WHOLEBODY_KEYPOINTS, 3))
    points[:, :NUM_BODY_KEYPOINTS] = _standing(2, dx=6.0)
    points[1, FACE.start:FACE.start + 10] = [[250, 62, 1]] * 5 + [[262, 62, 1]] * 5   # a few face landmarks
    boxes = face_boxes(points, 512, 384)
    background = np.full((2, 512, 512, 3), 7, np.uint8)
    crops = draw_face_crops(points, boxes, 512, background)
    assert crops.shape == (2, 512, 512, 3)
    image = np.rint(crops.numpy() * 255).astype(int)
    for i in range(2):
        nose = face_crop_map(boxes[i], 512).apply(points[i, :1])[0]
        assert tuple(image[i, int(nose[1]), int(nose[0])]) == COLORS_RGB[0]
    assert tuple(image[0, 5, 5]) == (7, 7, 7)                                 # background where nothing is drawn
    landmark = face_crop_map(boxes[1], 512).apply(points[1, FACE.start:FACE.start + 1])[0]
    assert tuple(image[1, int(landmark[1]), int(landmark[0])]) == FACE_POINT_RGB
    assert tuple(image[0, int(landmark[1]), int(landmark[0])]) != FACE_POINT_RGB  # frame 0 has no landmarks


def test_clay_shading_lights_camera_facing_surfaces():
    normal = np.zeros((1, 2, 2, 3), np.uint8)
    normal[0, 0, 0] = (128, 128, 255)                     # facing the camera
    normal[0, 0, 1] = (255, 128, 128)                     # edge-on
    out = clay_shading(torch.from_numpy(normal))
    assert tuple(out[0, 0, 0]) == CLAY_RGB and tuple(out[0, 1, 1]) == (0, 0, 0)
    assert 0 < out[0, 0, 1, 0] < CLAY_RGB[0] / 2


def test_pose_keypoint_sequence_reads_body_or_whole_body():
    body = keypoints_to_pose_keypoint(_standing(3), 512, 384)
    points, canvas, people = pose_keypoint_sequence(body)
    assert points.shape == (3, 18, 3) and canvas == (512, 384) and people == 1
    whole = np.zeros((2, WHOLEBODY_KEYPOINTS, 3))
    whole[:, :18] = _standing(2)
    whole[:, FACE.start] = [250, 62, 1]
    frames = keypoints_to_pose_keypoint(whole, 512, 384)          # 70-point faces (68 + eyes)
    frames[0]["people"].append(frames[0]["people"][0])
    points, _, people = pose_keypoint_sequence(frames)
    assert points.shape == (2, WHOLEBODY_KEYPOINTS, 3) and people == 2
    np.testing.assert_allclose(points[:, FACE.start], [[250, 62, 1]] * 2)
    frames[1]["canvas_width"] = 640
    with pytest.raises(InputError, match="one canvas size"):
        pose_keypoint_sequence(frames)


# -- retargeting ------------------------------------------------------------------------------------------------

def test_photo_to_canvas_matches_how_the_photo_is_cropped():
    from m2pdance.m2penc.reference_image import fit_crop

    for (pw, ph), (cw, ch) in [((900, 1200), (480, 832)), ((1200, 700), (480, 832)), ((640, 480), (512, 512)),
                               ((333, 777), (832, 480))]:
        photo = torch.zeros(1, 3, ph, pw)
        x0, y0, x1, y1 = pw // 2 - 40, ph // 2 - 60, pw // 2 + 30, ph // 2 + 50       # a bright block
        photo[..., y0:y1, x0:x1] = 1.0
        crop = fit_crop(photo, ch, cw)[0, 0] > 0.5
        ys, xs = torch.nonzero(crop, as_tuple=True)
        mapped = photo_to_canvas(pw, ph, cw, ch).apply_box((x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5))
        got = (xs.min().item() - 0.5, ys.min().item() - 0.5, xs.max().item() + 0.5, ys.max().item() + 0.5)
        np.testing.assert_allclose(mapped, got, atol=1.0)
    whole = photo_to_canvas(640, 480, 640, 480).apply_box(box_from_fractions(0, 0, 1, 1, 640, 480))
    np.testing.assert_allclose(whole, (-0.5, -0.5, 639.5, 479.5))


def _render_open_body(poses, trans, width, height, **framing):
    """Keypoints ``(N, 18, 3)`` and the body mask of a posed open body, framed by the render camera."""
    from m2pdance.m2penc.body import make_body
    from m2pdance.m2penc.render.pose_maps import motion_camera, render_pose_maps

    body = make_body("open")
    camera = motion_camera(body, poses, trans, width, height, **framing)
    maps = render_pose_maps(body, poses, trans, camera, width, height)
    return maps["keypoints"].double().numpy(), maps["mask"] > 0.5


def test_a_skeleton_lands_on_the_photos_person_within_five_percent():
    """Acceptance: a photo whose person box is known gets a skeleton whose projected box matches it."""
    from m2pdance.m2penc.motion.choreography import choreograph

    dance = choreograph(np.arange(0.25, 4, 0.5), 2.0, 16.0, seed=5)
    poses, trans = dance.to_torch()
    # the "photo": the dance's first pose, small and off-centre in a 900 x 1200 picture
    photo_points, mask = _render_open_body(poses[:1], trans[:1], 900, 1200, fill=0.45)
    ys, xs = torch.nonzero(mask[0], as_tuple=True)
    shift = 150                                                       # move the person right by cropping
    box = ((xs.min().item() + shift) / 1050, ys.min().item() / 1200, (xs.max().item() + 1 + shift) / 1050,
           (ys.max().item() + 1) / 1200)
    photo_points[..., 0] += shift                                     # the photo is 1050 wide: 150 px added left
    # the dance, framed for a 480 x 832 canvas
    points, _ = _render_open_body(poses, trans, 480, 832)
    to_canvas = photo_to_canvas(1050, 1200, 480, 832)
    target = to_canvas.apply_box(box_from_fractions(*box, 1050, 1200))
    mapping = fit_to_box(points, target, "first_frame")
    assert mapping.sx == mapping.sy
    placed = mapping.apply(points)
    expected = to_canvas.apply(photo_points)[0]
    size = target[3] - target[1]
    assert np.abs(placed[0, :, :2] - expected[:, :2]).max() < 0.05 * size     # every keypoint on the person
    vis = placed[0, :, 2] > 0

    def bbox(p):
        return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])

    assert np.abs(bbox(placed[0][vis]) - bbox(expected[vis])).max() < 0.05 * size
    extent = person_extent(placed[0])
    np.testing.assert_allclose([extent[1], extent[3]], [target[1], target[3]], atol=1e-6)
    assert abs((extent[0] + extent[2]) / 2 - (target[0] + target[2]) / 2) < 1e-6


def test_fits_keep_limb_proportions_and_the_whole_dance_in_the_box():
    points = _standing(4, dx=40.0)
    points[3, 4, 1] = 0.0                                           # a wrist thrown up in the last frame
    box = (100.0, 50.0, 300.0, 350.0)
    mapping = fit_to_box(points, box, "sequence")
    placed = mapping.apply(points)
    extent = sequence_extent(placed)
    assert box[0] - 1e-9 <= extent[0] and extent[2] <= box[2] + 1e-9 and box[1] - 1e-9 <= extent[1] \
        and extent[3] <= box[3] + 1e-9
    assert min(extent[0] - box[0], box[2] - extent[2]) < 1e-6 or min(extent[1] - box[1], box[3] - extent[3]) < 1e-6
    for a, b in ((2, 3), (9, 10), (1, 8)):                          # limb length ratios kept
        before = np.linalg.norm(points[0, a, :2] - points[0, b, :2])
        after = np.linalg.norm(placed[0, a, :2] - placed[0, b, :2])
        assert after / before == pytest.approx(mapping.sx)
    first = fit_to_box(points, box, "first_frame").apply(points)
    e = person_extent(first[0])
    assert (e[1], e[3]) == pytest.approx((box[1], box[3])) and (e[0] + e[2]) / 2 == pytest.approx(200.0)
    assert PlaneMap.uniform(2, 1, 1).then(PlaneMap.uniform(3, 0, -1)) == PlaneMap.uniform(6, 3, 2)


@pytest.mark.parametrize("box", [(0.5, 0.2, 0.4, 0.9), (0.0, 0.0, 1.2, 1.0), (0.1, 0.5, 0.9, 0.5)])
def test_bad_boxes_and_empty_dances_are_refused(box):
    with pytest.raises(InputError, match="person box"):
        box_from_fractions(*box, 640, 480)
    with pytest.raises(InputError, match="visible keypoint"):
        fit_to_box(np.zeros((2, 18, 3)), (0, 0, 10, 10), "first_frame")
    late = np.concatenate([np.zeros((1, 18, 3)), _standing()])          # the person shows up in frame 1
    assert fit_to_box(late, (0, 0, 10, 10)) == fit_to_box(_standing(), (0, 0, 10, 10))
    assert math.isfinite(fit_to_box(_standing(), (0, 0, 10, 10)).sx)
