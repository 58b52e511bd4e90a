"""Every shipped example workflow converts, validates and runs in the harness on tiny weights."""
from __future__ import annotations

import json

import pytest

import harness

WORKFLOWS = harness.example_workflows()


@pytest.fixture
def prepared_home(comfy_home):
    """A ComfyUI home with the example inputs (and, when available, the tiny smoke weights)."""
    from m2pdance.m2penc.examples import write_example_inputs

    write_example_inputs(comfy_home / "input")
    return comfy_home


def test_there_are_example_workflows():
    assert WORKFLOWS, "example_workflows/ is empty"


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
    assert result.executed, "nothing ran"
    assert result.ui, "no output node reported anything"
    for node_id, ui in result.ui.items():
        for files in (ui.get("images"), ui.get("audio")):
            for item in files or []:
                folder = {"output": "output", "temp": "temp", "input": "input"}[item["type"]]
                assert (prepared_home / folder / item.get("subfolder", "") / item["filename"]).is_file()
