"""Every shipped example workflow converts, validates and runs in the harness on tiny smoke weights."""
from __future__ import annotations

import json

import av
import pytest

from m2pdance.devtools import comfy_harness as harness

WORKFLOWS = harness.example_workflows()
EXPECTED = {"motion_to_dance", "music_to_dance_edge", "music_to_skeleton", "music_preview", "music_to_dance",
            "music_to_pose_preview", "champ_pose_driven", "music_to_pose_video", "music_to_wan_animate"}
#: Workflows that load in the real frontend but need a GPU to run (ComfyUI core's 14B video nodes and their
#: weights): they have no API twin and are not run here or in the CPU server. Every other workflow must run.
GPU_ONLY = {"music_to_wan_animate"}
RUNNABLE = [p for p in WORKFLOWS if p.stem not in GPU_ONLY]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Overrides the root conftest's: whole workflows are big enough to use every core."""
    yield


def test_the_shipped_workflows_are_all_there():
    assert {p.stem for p in WORKFLOWS} == EXPECTED
    assert GPU_ONLY <= EXPECTED


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: p.stem)
def test_api_twin_is_in_sync(path, comfy_home):
    twin = harness.api_twin(path)
    assert twin.is_file(), f"missing {twin}; run python scripts/export_api_workflows.py"
    assert json.loads(twin.read_text()) == harness.read_workflow(path), (
        f"{twin.name} is stale; run python scripts/export_api_workflows.py")


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: p.stem)
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


@pytest.mark.parametrize("path", [p for p in WORKFLOWS if p.stem in GPU_ONLY], ids=lambda p: p.stem)
def test_gpu_only_workflow_wires_our_nodes_as_they_declare(path, comfy_home):
    """What can be checked without a GPU: no API twin (nothing runs it on CPU), every link's type agrees
    with both ends as saved, and at our nodes with the type their schema declares for that slot."""
    assert not harness.api_twin(path).exists(), "a GPU-only workflow has no API twin: the CPU server would run it"
    workflow = json.loads(path.read_text())
    nodes = harness.all_nodes()
    by_id = {n["id"]: n for n in workflow["nodes"]}
    ours = 0
    for _, origin, origin_slot, target, target_slot, link_type in workflow["links"]:
        out, inp = by_id[origin]["outputs"][origin_slot], by_id[target]["inputs"][target_slot]
        assert out["type"] == inp["type"] == link_type, (out, inp, link_type)
        for node, slot, kind in ((by_id[origin], origin_slot, "outputs"), (by_id[target], target_slot, "inputs")):
            if node["type"] in nodes:
                ours += 1
                spec = harness.executor.node_spec(nodes[node["type"]])
                name = node[kind][slot]["name"]
                declared = (spec.outputs[slot] if kind == "outputs" else spec.inputs[name].io_type)
                assert declared == link_type, f"{node['type']}.{name}: declared {declared}, linked as {link_type}"
    assert ours, "the workflow uses none of our nodes"
