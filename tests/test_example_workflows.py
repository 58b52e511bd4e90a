"""Every shipped example workflow converts, validates and runs in the harness on tiny smoke weights."""
from __future__ import annotations

import json

import av
import pytest

from m2pdance.devtools import comfy_harness as harness

WORKFLOWS = harness.example_workflows()
EXPECTED = {"motion_to_dance", "music_to_dance_edge", "music_to_skeleton", "music_preview", "music_to_dance", "music_to_pose_preview", "champ_pose_driven"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Overrides the root conftest's: whole workflows are big enough to use every core."""
    yield


def test_the_shipped_workflows_are_all_there():
    assert {p.stem for p in WORKFLOWS} == EXPECTED


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_api_twin_is_in_sync(path, comfy_home):
    twin = harness.api_twin(path)
    assert twin.is_file(), f"missing {twin}; run python scripts/export_api_workflows.py"
    assert json.loads(twin.read_text()) == harness.read_workflow(path), (
        f"{twin.name} is stale; run python scripts/export_api_workflows.py")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_in_harness(path, prepared_home):
    nodes = harness.all_nodes()
    prompt = harness.read_workflow(path, nodes)
    result = harness.new_executor(nodes).run(prompt)
    assert set(result.executed) == set(prompt), "every node of the workflow should have run once"
    produced = [item for ui in result.ui.values() for key in ("images", "audio") for item in ui.get(key, [])]
    assert produced, "no output node reported a file"
    for item in produced:
        file = prepared_home / item["type"] / item.get("subfolder", "") / item["filename"]
        assert file.is_file(), file
        if file.suffix == ".mp4":
            with_music = any(node["class_type"] == "M2PDanceLoadMusic" for node in prompt.values())
            with av.open(str(file)) as container:
                assert container.streams.video, file
                assert bool(container.streams.audio) == with_music, "the music muxed in when there is music"


def test_pose_preview_keypoints_follow_the_controlnet_aux_layout(prepared_home):
    from m2pdance.m2penc.pose.pose_keypoint import validate_pose_keypoint

    nodes = harness.all_nodes()
    path = next(p for p in WORKFLOWS if p.stem == "music_to_pose_preview")
    prompt = harness.read_workflow(path, nodes)
    result = harness.new_executor(nodes).run(prompt)
    guidance_node = next(k for k, v in prompt.items() if v["class_type"] == "M2PDanceM2PEncGuidance")
    source, pose, skeleton, fps = result.outputs[guidance_node]
    validate_pose_keypoint(pose)
    assert len(pose) == source.num_frames == skeleton.shape[0]
    frame = pose[0]
    assert set(frame) >= {"people", "canvas_width", "canvas_height"}
    assert len(frame["people"][0]["pose_keypoints_2d"]) == 18 * 3
    assert (frame["canvas_width"], frame["canvas_height"]) == (skeleton.shape[2], skeleton.shape[1])
