"""Pose Video for Animator, called as ComfyUI calls it (directly and through the workflow executor)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pdance.devtools import comfy_harness as harness
from m2pdance.m2penc.motion import EXAMPLE_MOTION, example_motion
from m2pdance.m2penc.pose.animator import PRESETS, face_crop_map
from m2pdance.m2penc.pose.pose_keypoint import keypoints_to_pose_keypoint, validate_pose_keypoint
from m2pdance.m2penc.pose.render import render_pose_keypoint
from m2pdance.m2penc.pose.retarget import box_from_fractions, person_extent, photo_to_canvas

NODE = "M2PDancePoseVideoForAnimator"
#: Widget values in schema order: preset, width, height, fps, length, frame_fit, whole_windows, placement, box x4,
#: source_fps.
DEFAULTS = dict(preset="wan_animate", width=0, height=0, fps=0.0, length=0, frame_fit="pad (hold last pose)",
                whole_windows=False, placement="match photo person", box_x0=0.0, box_y0=0.0, box_x1=1.0, box_y1=1.0,
                source_fps=15.0)


@pytest.fixture
def nodes(prepared_home):
    return harness.all_nodes()


def run(nodes, **kwargs):
    return nodes[NODE].execute(**{**DEFAULTS, **kwargs}).result


def test_schema_documents_every_input_and_output(nodes):
    schema = nodes[NODE].GET_SCHEMA()
    assert schema.display_name == "Pose Video for Animator" and schema.category.startswith("M2PDance")
    assert [i.id for i in schema.inputs][:13] == list(DEFAULTS)
    assert all(i.tooltip for i in schema.inputs) and all(o.tooltip for o in schema.outputs)
    assert [o.display_name for o in schema.outputs] == ["pose_video", "face_video", "pose_keypoint", "fps", "frames",
                                                        "note"]
    assert set(next(i for i in schema.inputs if i.id == "preset").options) == set(PRESETS)


def test_motion_to_wan_animate_pose_and_face_videos(nodes):
    motion = example_motion(seconds=2.0)                       # 60 frames at 30 fps
    video, faces, pose, fps, frames, note = run(nodes, motion=motion)
    assert (fps, frames) == (16.0, 33) and frames % 4 == 1     # 60 @ 30 -> 32 @ 16 -> padded to 4n+1
    assert video.shape == (33, 832, 480, 3) and faces.shape == (33, 512, 512, 3)
    assert video.dtype == faces.dtype == torch.float32 and 0 <= float(video.min()) and float(video.max()) <= 1
    validate_pose_keypoint(pose)
    assert len(pose) == 33 and (pose[0]["canvas_width"], pose[0]["canvas_height"]) == (480, 832)
    assert torch.equal(video, render_pose_keypoint(pose))      # the video is the returned keypoints, drawn
    assert torch.equal(video[-1], video[-2])                   # the held last pose
    for line in ("wan_animate: 480x832, 16 fps, 33 frames", "fps 30 -> 16", "32 -> 33: padded to 4n+1",
                 "held the last pose for 1", "placement: the first frame's person"):
        assert line in note, (line, note)
    # default box = the whole canvas: the first frame's estimated person spans the canvas height
    body = np.asarray(pose[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    top, bottom = person_extent(body)[1::2]
    assert top == pytest.approx(-0.5, abs=1e-3) and bottom == pytest.approx(831.5, abs=1e-3)
    # the face crop is the clay head under the skeleton's head: the nose sits on lit clay, not on black
    nose = np.asarray(pose[5]["people"][0]["pose_keypoints_2d"][:3])
    assert nose[2] == 1 and float(faces[5].sum(-1).gt(0).float().mean()) > 0.2
    head = faces[5].numpy()
    assert (head.reshape(-1, 3).max(axis=1) > 0.5).mean() > 0.15            # a bright clay head fills the crop


def test_head_render_and_drawn_head_agree(nodes, monkeypatch):
    """The crop camera and the crop keypoint map are the same crop: the drawn eyes and nose land on the head."""
    import sys

    module = sys.modules[nodes[NODE].__module__]           # the pack as ComfyUI loads it
    original, seen = module.draw_face_crops, {}

    def spy(points, boxes, size, backgrounds, control):
        seen.update(points=points, boxes=boxes, backgrounds=backgrounds)
        return original(points, boxes, size, backgrounds, control)

    monkeypatch.setattr(module, "draw_face_crops", spy)
    run(nodes, preset="vace", width=320, height=448, motion=example_motion(seconds=1.0),
        box_x0=0.2, box_y0=0.1, box_x1=0.7, box_y1=0.9)
    assert seen["backgrounds"].shape == (len(seen["points"]), 512, 512, 3)
    for i in range(0, len(seen["points"]), 4):
        for k in (0, 14, 15):
            x, y = face_crop_map(seen["boxes"][i]).apply(seen["points"][i, k:k + 1])[0, :2]
            assert seen["backgrounds"][i, int(round(y)), int(round(x))].max() > 0, (i, k)


def test_pose_keypoint_with_a_reference_photo_and_box(nodes):
    points = np.zeros((30, 18, 3))
    rest = np.array([[256, 60], [256, 100], [216, 100], [196, 160], [186, 220], [296, 100], [316, 160], [326, 220],
                     [231, 220], [226, 290], [221, 360], [281, 220], [286, 290], [291, 360], [246, 50], [266, 50],
                     [236, 56], [276, 56]], dtype=np.float64)
    points[:, :, :2] = rest + np.linspace(0, 30, 30)[:, None, None] * [1, 0]
    points[:, :, 2] = 1
    dance = keypoints_to_pose_keypoint(points, 512, 384)
    photo = torch.rand(1, 1200, 900, 3)
    box = (0.25, 0.2, 0.65, 0.95)
    video, faces, pose, fps, frames, note = run(nodes, preset="unianimate_dit", pose_keypoint=dance, reference=photo,
                                                box_x0=box[0], box_y0=box[1], box_x1=box[2], box_y1=box[3],
                                                source_fps=30.0)
    assert (fps, frames) == (15.0, 17) and video.shape == (17, 832, 480, 3)   # 30 @ 30 -> 15 @ 15 -> 17 (4n+1)
    assert "of the 900x1200 photo" in note and "does not take one" in note
    target = photo_to_canvas(900, 1200, 480, 832).apply_box(box_from_fractions(*box, 900, 1200))
    first = np.asarray(pose[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    extent = person_extent(first)
    size = target[3] - target[1]
    assert abs(extent[1] - target[1]) < 0.05 * size and abs(extent[3] - target[3]) < 0.05 * size
    assert abs((extent[0] + extent[2]) / 2 - (target[0] + target[2]) / 2) < 0.05 * size
    # keep framing: the 512x384 canvas centre-cropped into 480x832 (same map as a photo)
    kept = run(nodes, preset="free", placement="keep framing", pose_keypoint=dance, source_fps=30.0)
    assert (kept[3], kept[4]) == (30.0, 30) and kept[0].shape == (30, 384, 512, 3)   # free: the dance's own
    np.testing.assert_allclose(np.asarray(kept[2][0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)[:, :2],
                               points[0, :, :2])


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "neither is connected"),
    (dict(motion="x", pose_keypoint=[]), "both are connected"),
    (dict(motion=object()), "must be an SMPL motion"),
    (dict(width=512, motion=example_motion(seconds=0.5)), "both width and height"),
    (dict(box_x0=0.8, box_x1=0.2, motion=example_motion(seconds=0.5)), "box_x0 < box_x1"),
    (dict(length=100000, width=4096, height=4096, motion=example_motion(seconds=0.5)), "GB; shorten"),
    (dict(pose_keypoint=[{"people": []}]), "canvas_width"),
])
def test_bad_inputs_are_clear_errors(nodes, kwargs, match):
    with pytest.raises(Exception, match=match) as raised:
        run(nodes, **kwargs)
    assert type(raised.value).__name__ == "InputError"


def test_validate_inputs_reports_bad_boxes_and_sizes(nodes):
    check = nodes[NODE].validate_inputs
    assert check(width=0, height=0, box_x0=0.0, box_y0=0.0, box_x1=1.0, box_y1=1.0) is True
    assert "box_y0 < box_y1" in check(width=0, height=0, box_x0=0.0, box_y0=0.7, box_x1=1.0, box_y1=0.3)
    assert "both width and height" in check(width=0, height=480, box_x0=0.0, box_y0=0.0, box_x1=1.0, box_y1=1.0)


def _workflow(length: int = 0) -> dict:
    return {
        "1": {"class_type": "M2PDanceLoadMotion", "inputs": {"motion": EXAMPLE_MOTION}},
        "2": {"class_type": NODE, "inputs": {**DEFAULTS, "preset": "scail", "width": 256, "height": 448,
                                             "length": length, "motion": ["1", 0]}},
        "3": {"class_type": "M2PDanceVideoCombine", "inputs": {"images": ["2", 0], "fps": ["2", 3], "format": "gif",
                                                               "crf": 19, "filename_prefix": "m2pdance/pose"}},
    }


def test_runs_in_a_workflow_with_progress_and_stops_on_interrupt(nodes, prepared_home, monkeypatch):
    import comfy.model_management as mm
    import comfy.utils

    result = harness.new_executor(nodes).run(_workflow())
    assert result.outputs["2"][4] == 33 and "scail" in result.outputs["2"][5]
    assert list((prepared_home / "output").rglob("*.gif"))
    stages = []
    original = comfy.utils.ProgressBar.update_absolute

    def interrupt_midway(self, value, total=None, preview=None):
        stages.append((value, total))
        if len(stages) == 5:
            mm.interrupt_current_processing(True)
        return original(self, value, total, preview)

    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", interrupt_midway)
    with pytest.raises(harness.NodeExecutionError) as info:
        harness.new_executor(nodes).run(_workflow(length=40))
    assert type(info.value.original).__name__ == "InterruptProcessingException"
    assert len(stages) == 5 and not mm.processing_interrupted()
