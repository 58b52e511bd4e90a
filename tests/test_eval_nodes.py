"""Beat Alignment, called as ComfyUI calls it: the library's score, a chart with the beats drawn where they are."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from m2pdance.devtools import comfy_harness as harness
from m2pdance.m2penc.eval.beat_alignment import beat_alignment, music_beat_frames, pose_keypoint_beat_alignment
from m2pdance.m2penc.eval.motion_metrics import motion_joints
from m2pdance.m2penc.eval.plots import MUSIC_BEAT_COLOUR, BeatPlotLayout
from m2pdance.m2penc.examples import EXAMPLE_MUSIC, write_example_inputs
from m2pdance.m2penc.motion import EXAMPLE_MOTION, load_motion, write_example_motion
from m2pdance.m2penc.pose.pose_keypoint import keypoints_to_pose_keypoint

NODE = "M2PDanceBeatAlignment"


@pytest.fixture
def home(comfy_home) -> Path:
    write_example_inputs(comfy_home / "input")
    write_example_motion(comfy_home / "input")
    return comfy_home


@pytest.fixture
def nodes(home):
    return harness.all_nodes()


def _music(nodes, seconds: float = 6.0) -> dict:
    return nodes["M2PDanceLoadMusic"].execute(EXAMPLE_MUSIC, 0.0, seconds).result[0]


def _beat_columns(image: np.ndarray, num_frames: int, beats: np.ndarray) -> tuple[np.ndarray, BeatPlotLayout]:
    """Fraction of plot-area rows whose pixel is the music-beat colour, at each beat's column."""
    layout = BeatPlotLayout.for_size(image.shape[1], image.shape[0], num_frames)
    pixels = np.rint(image * 255).astype(np.int64)[layout.top + 2:layout.bottom - 2]
    is_beat = (np.abs(pixels - np.array(MUSIC_BEAT_COLOUR)).max(axis=-1) <= 1)   # (rows, W)
    return np.array([is_beat[:, round(layout.x_of_frame(b))].mean() for b in beats]), layout


def test_motion_score_is_the_library_score_and_the_chart_shows_the_beats(nodes, home):
    music = _music(nodes)
    motion = nodes["M2PDanceLoadMotion"].execute(EXAMPLE_MOTION).result[0]
    output = nodes[NODE].execute(music, 30.0, motion=motion)
    bas, image = output.result

    expected = beat_alignment(motion_joints(load_motion(home / "input" / EXAMPLE_MOTION), "y", 30.0),
                              music_beat_frames(music, 30.0))
    assert isinstance(bas, float) and bas == pytest.approx(expected.score, abs=1e-9) and 0 < bas <= 1
    assert tuple(image.shape) == (1, 320, 1024, 3) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0

    frame = image[0].numpy()
    on_beats, layout = _beat_columns(frame, expected.speed.shape[0], expected.music_beats)
    assert len(expected.music_beats) >= 3 and (on_beats > 0.5).all()         # a line at every music beat
    gaps = (expected.music_beats[1:] + expected.music_beats[:-1]) / 2         # halfway between beats: none
    between, _ = _beat_columns(frame, expected.speed.shape[0], gaps)
    assert (between < 0.05).all()
    left = frame[layout.top + 2:layout.bottom - 2, :layout.left - 30]          # axis label area: no beat colour
    assert not (np.abs(np.rint(left * 255) - MUSIC_BEAT_COLOUR).max(axis=-1) <= 1).any()

    shown = output.ui.as_dict()["images"]                                       # previewed in the UI
    assert len(shown) == 1 and (home / "temp" / shown[0]["filename"]).is_file()


def test_pose_keypoint_score_is_the_library_score(nodes):
    music = _music(nodes, 4.0)
    frames = 100
    t = np.arange(frames)
    x = np.cumsum(1.0 - 0.9 * np.exp(-((t[:, None] - np.arange(8, frames, 15)[None]) ** 2) / 8.0).sum(1))
    points = np.zeros((frames, 18, 3))
    points[..., 0] = 100 + 4 * x[:, None]
    points[..., 1] = 100 + 12 * np.arange(18)
    points[..., 2] = 1.0
    pose = keypoints_to_pose_keypoint(points, 512, 512)
    bas, image = nodes[NODE].execute(music, 25.0, pose_keypoint=pose).result
    expected = pose_keypoint_beat_alignment(pose, music_beat_frames(music, 25.0))
    assert bas == pytest.approx(expected.score, abs=1e-12) and tuple(image.shape) == (1, 320, 1024, 3)


def test_bad_inputs_get_clear_messages(nodes):
    music = _music(nodes, 2.0)
    motion = nodes["M2PDanceLoadMotion"].execute(EXAMPLE_MOTION).result[0]   # 2 s at 30 fps
    pose = keypoints_to_pose_keypoint(np.ones((40, 18, 3)), 64, 64)
    run = nodes[NODE].execute
    for kwargs, message in [({}, "neither is connected"), ({"motion": motion, "pose_keypoint": pose}, "both are"),
                            ({"pose_keypoint": pose[:5]}, "at least 8"),
                            ({"pose_keypoint": keypoints_to_pose_keypoint(np.ones((120, 18, 3)), 64, 64)},
                             "check fps"),
                            ({"pose_keypoint": [{"people": []}] * 20}, "canvas_width")]:
        with pytest.raises(Exception, match=message) as raised:
            run(music, 10.0, **kwargs)
        assert type(raised.value).__name__ == "InputError", raised.value
    assert isinstance(nodes[NODE].validate_inputs(fps=0.5), str)
    assert nodes[NODE].validate_inputs(fps=30.0) is True


def test_runs_in_a_workflow_as_an_output_node(nodes, home):
    prompt = {
        "1": {"class_type": "M2PDanceLoadMusic", "inputs": {"audio": EXAMPLE_MUSIC, "start": 0.0, "duration": 3.0}},
        "2": {"class_type": "M2PDanceLoadMotion", "inputs": {"motion": EXAMPLE_MOTION}},
        "3": {"class_type": NODE, "inputs": {"music": ["1", 0], "fps": 30.0, "motion": ["2", 0]}},
    }
    result = harness.new_executor(nodes).run(prompt)
    assert "3" in result.executed and 0 < result.outputs["3"][0] <= 1
    assert result.ui["3"]["images"][0]["type"] == "temp"
