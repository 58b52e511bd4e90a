"""Every shipped example workflow converts, validates and runs in the harness on tiny smoke weights."""
from __future__ import annotations

import json
import math
from pathlib import Path

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

# How the templates must look when opened (issue 17), checked from the JSON here and in the real frontend by
# scripts/check_workflow_screens.py (tests/test_workflow_screens.py). Figures from ComfyUI frontend 1.27.10.
#: Below this view scale LiteGraph draws nodes in low detail (no titles, no widget text). The deprecated setting
#: LiteGraph.Canvas.LowQualityRenderingZoomThreshold defaulted to 0.6; its successor
#: LiteGraph.Canvas.MinFontSizeForLOD (default 8 px) switches at 8 / (14 px * sqrt(devicePixelRatio)) = 0.571
#: on a plain screen. The larger of the two.
LOW_QUALITY_SCALE = 0.6
#: The graph canvas of a 1600x1000 browser window (the frontend's side bar and top bars take the rest).
CANVAS = (1536, 922)
#: The minimap and the zoom controls, shown by default, cover this much of the canvas' bottom-right corner.
MINIMAP = (330, 280)
TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT, drawn above a node's pos
NOTE_TYPES = {"Note", "MarkdownNote"}


def node_boxes_on_screen(workflow: dict) -> list[tuple[int, str, tuple[float, float, float, float]]]:
    """(id, type, (x0, y0, x1, y1)) of every node, title bar included, in canvas pixels at the saved view.
    LiteGraph draws graph point p at (p + offset) * scale."""
    ds = workflow["extra"]["ds"]
    s, (ox, oy) = ds["scale"], ds["offset"]
    return [(n["id"], n["type"], ((n["pos"][0] + ox) * s, (n["pos"][1] - TITLE_HEIGHT + oy) * s,
                                  (n["pos"][0] + n["size"][0] + ox) * s, (n["pos"][1] + n["size"][1] + oy) * s))
            for n in workflow["nodes"]]


def text_width(text: str, px: float = 12) -> float:
    """A generous estimate of ``text``'s width in the widgets' font (12 px Arial): per-character classes."""
    em = 0.0
    for c in text:
        em += (0.3 if c in "ijlft.,:;'|!I()[]- /" else 0.85 if c in "mwMW" else 0.68 if c.isupper() else 0.57)
    return em * px


def text_widgets(node: dict) -> list[tuple[str, str, int]]:
    """(label, value, px the widget needs beside the text) of the node's one-line text-valued widgets: combos
    (90 px: margins, arrows, gap) and single-line strings (65 px), read from its inputs and widgets_values
    (seed widgets carry one extra "control after generate" value). LiteGraph cuts label, then value, when
    the node is narrower."""
    values = node.get("widgets_values")
    if not isinstance(values, list):
        return []
    found, i = [], 0
    for inp in node.get("inputs", []):
        if "widget" not in inp or i >= len(values):
            continue
        value = values[i]
        i += 1
        if inp["type"] == "INT" and i < len(values) and values[i] in ("fixed", "randomize", "increment", "decrement"):
            i += 1
        label = inp.get("label") or inp.get("localized_name") or inp["name"]
        if inp["type"] == "COMBO" and isinstance(value, str):
            found.append((label, value, 90))
        elif inp["type"] == "STRING" and isinstance(value, str) and len(value) <= 60 and "\n" not in value:
            found.append((label, value, 65))  # longer texts are multi-line boxes (prompts)
    return found


def _ui(path: Path) -> dict:
    return json.loads(path.read_text())


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


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_saved_view_is_above_the_low_detail_threshold(path):
    ds = _ui(path).get("extra", {}).get("ds")
    assert ds and set(ds) >= {"scale", "offset"}, "no saved view: the template opens at 100% at (0, 0)"
    assert LOW_QUALITY_SCALE <= ds["scale"] <= 1.0, f"scale {ds['scale']}: titles and widgets unreadable"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_node_is_in_view_at_the_saved_view(path):
    width, height = CANVAS
    for node_id, node_type, (x0, y0, x1, y1) in node_boxes_on_screen(_ui(path)):
        assert x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height, f"node {node_id} {node_type} off-screen"
        if node_type not in NOTE_TYPES:  # a note may reach under it: one click on the map's X shows all of it
            assert not (x1 > width - MINIMAP[0] and y1 > height - MINIMAP[1]), f"node {node_id} under the minimap"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_node_hides_another(path):
    boxes = node_boxes_on_screen(_ui(path))
    for i, (a_id, a_type, a) in enumerate(boxes):
        for b_id, b_type, b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], f"nodes {a_id} and {b_id} overlap"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_nodes_are_wide_enough_for_their_file_names_and_choices(path):
    for node in _ui(path)["nodes"]:
        for label, value, chrome in text_widgets(node):
            need = text_width(label) + text_width(value) + chrome
            assert node["size"][0] >= need, f"node {node['id']} {node['type']}: '{label}: {value}' needs {need:.0f} px"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_a_note_explains_the_workflow_and_stages_are_grouped(path):
    workflow = _ui(path)
    notes = [n for n in workflow["nodes"] if n["type"] in NOTE_TYPES]
    assert notes and all(str(n["widgets_values"][0]).strip() for n in notes), "no note node"
    working = [n for n in workflow["nodes"] if n["type"] not in NOTE_TYPES]
    groups = workflow.get("groups") or []
    assert groups, "no groups"
    for node in working:
        x, y = node["pos"]
        assert any(g["bounding"][0] <= x and x + node["size"][0] <= g["bounding"][0] + g["bounding"][2]
                   and g["bounding"][1] <= y - TITLE_HEIGHT and y + node["size"][1] <= g["bounding"][1] + g["bounding"][3]
                   for g in groups), f"node {node['id']} {node['type']} is in no group"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_thumbnail_beside_the_workflow(path):
    """The template browser shows <name>.jpg beside <name>.json as the template's picture (jpg only)."""
    thumb = path.with_suffix(".jpg")
    assert thumb.is_file(), f"missing {thumb.name}: python scripts/check_workflow_screens.py --thumbnails"
    data = thumb.read_bytes()
    assert data[:3] == b"\xff\xd8\xff", "not a JPEG"
    assert len(data) < 150_000, f"{thumb.name} is {len(data)} bytes"
