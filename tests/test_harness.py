"""The workflow harness enforces ComfyUI's contract: each rejection names node id and input."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from m2pdance.devtools import comfy_harness as harness

FIXTURE_PACK = Path(__file__).parent / "fixtures" / "contract_pack"


@pytest.fixture
def pack(comfy_home):
    loaded = harness.load_pack(FIXTURE_PACK)
    calls().clear()
    return loaded


def calls() -> list[str]:
    """The fixture pack's record of executed nodes (module state, as a real pack might keep)."""
    module_name = str(FIXTURE_PACK.resolve()).replace(".", "_x_")
    return importlib.import_module(module_name + ".contract_nodes").CALLS


@pytest.fixture
def executor(pack):
    return harness.Executor(pack.nodes)


def good_prompt() -> dict:
    return {
        "1": {"class_type": "ContractMakeImage", "inputs": {"size": 4, "value": 0.25, "mode": "flat", "seed": 3}},
        "2": {"class_type": "ContractInvert", "inputs": {"image": ["1", 0], "thing": ["1", 1]}},
        "3": {"class_type": "ContractSink", "inputs": {"image": ["2", 0], "label": "ok"}},
    }


def test_pack_loads_under_path_derived_name_without_root_on_sys_path(pack):
    assert pack.mechanism == "comfy_entrypoint"
    assert pack.module_name == str(FIXTURE_PACK.resolve()).replace(".", "_x_")
    assert str(FIXTURE_PACK.resolve()) not in sys.path
    assert set(pack.nodes) == {"ContractMakeImage", "ContractInvert", "ContractSink",
                               "ContractWrongArity", "ContractBadImage"}


def test_good_prompt_runs_and_reports_ui(executor):
    result = executor.run(good_prompt())
    assert result.executed == ["1", "2", "3"]
    assert result.outputs["3"][0] == pytest.approx(0.75)
    assert result.ui["3"] == {"text": ("ok:0.750",)}


def _errors(executor, prompt) -> list[dict]:
    with pytest.raises(harness.PromptValidationError) as info:
        executor.run(prompt)
    return info.value.errors


def test_unknown_node_type_is_rejected_with_node_id(executor):
    prompt = good_prompt()
    prompt["4"] = {"class_type": "NoSuchNode", "inputs": {}}
    (error,) = _errors(executor, prompt)
    assert error["type"] == "invalid_prompt"
    assert "node 4 (NoSuchNode)" in error["text"] and "does not exist" in error["text"]


def test_missing_required_input_names_node_and_input(executor):
    prompt = good_prompt()
    del prompt["1"]["inputs"]["size"]
    (error,) = _errors(executor, prompt)
    assert error["type"] == "required_input_missing"
    assert "node 1 (ContractMakeImage) input 'size'" in error["text"]


def test_link_type_mismatch_is_rejected(executor):
    prompt = good_prompt()
    prompt["2"]["inputs"]["image"] = ["1", 1]  # CONTRACT_THING into IMAGE
    (error,) = _errors(executor, prompt)
    assert error["type"] == "return_type_mismatch"
    assert "node 2 (ContractInvert) input 'image'" in error["text"] and "CONTRACT_THING" in error["text"]


def test_link_to_missing_slot_is_rejected(executor):
    prompt = good_prompt()
    prompt["2"]["inputs"]["image"] = ["1", 7]
    (error,) = _errors(executor, prompt)
    assert error["type"] == "bad_linked_input"


@pytest.mark.parametrize("name,value,kind", [
    ("size", 65, "value_bigger_than_max"),
    ("value", -0.1, "value_smaller_than_min"),
    ("mode", "spiral", "value_not_in_list"),
    ("size", "big", "invalid_input_type"),
])
def test_out_of_range_widget_values_are_rejected(executor, name, value, kind):
    prompt = good_prompt()
    prompt["1"]["inputs"][name] = value
    (error,) = _errors(executor, prompt)
    assert error["type"] == kind
    assert f"node 1 (ContractMakeImage) input '{name}'" in error["text"]


def test_custom_validation_message_is_reported(executor):
    prompt = good_prompt()
    prompt["3"]["inputs"]["label"] = "bad"
    (error,) = _errors(executor, prompt)
    assert error["type"] == "custom_validation_failed"
    assert "label must not be 'bad'" in error["text"]


def test_prompt_without_output_node_is_rejected(executor):
    prompt = good_prompt()
    del prompt["3"]
    (error,) = _errors(executor, prompt)
    assert error["type"] == "prompt_no_outputs"


def test_return_arity_must_match_declared_outputs(executor):
    with pytest.raises(harness.NodeExecutionError, match="returned 1 values but declares 2"):
        executor.run({"1": {"class_type": "ContractWrongArity", "inputs": {}}})


def test_native_image_layout_is_enforced(executor):
    with pytest.raises(harness.NodeExecutionError, match=r"IMAGE must be a float tensor \[B, H, W, 3\]"):
        executor.run({"1": {"class_type": "ContractBadImage", "inputs": {}}})


def test_outputs_are_cached_per_input_like_comfyui(executor, pack):
    record = calls()
    executor.run(good_prompt())
    record.clear()
    again = executor.run(good_prompt())
    assert again.executed == [] and again.cached == ["3"] and record == []
    changed = good_prompt()
    changed["3"]["inputs"]["label"] = "other"
    third = executor.run(changed)
    assert third.executed == ["3"] and record == ["sink"]
    upstream = good_prompt()
    upstream["1"]["inputs"]["value"] = 0.5
    fourth = executor.run(upstream)
    assert fourth.executed == ["1", "2", "3"]


def test_ui_workflow_converts_with_control_values_links_and_muted_nodes(pack):
    ui = {
        "nodes": [
            {"id": 1, "type": "ContractMakeImage", "mode": 0, "inputs": [], "widgets_values": [4, 0.25, "flat", 3, "fixed"]},
            {"id": 2, "type": "ContractInvert", "mode": 0,
             "inputs": [{"name": "image", "type": "IMAGE", "link": 1}, {"name": "thing", "type": "CONTRACT_THING", "link": 2}]},
            {"id": 3, "type": "ContractSink", "mode": 0, "inputs": [{"name": "image", "type": "IMAGE", "link": 3}],
             "widgets_values": ["ok"]},
            {"id": 4, "type": "ContractSink", "mode": 2, "inputs": [{"name": "image", "type": "IMAGE", "link": 4}],
             "widgets_values": ["muted"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 1, 2, 1, "CONTRACT_THING"], [3, 2, 0, 3, 0, "IMAGE"],
                  [4, 2, 0, 4, 0, "IMAGE"]],
    }
    api = harness.ui_to_api(ui, pack.nodes)
    assert api == good_prompt()
    assert "4" not in api


def test_ui_converter_rejects_api_json(pack):
    with pytest.raises(harness.WorkflowFormatError, match="not a UI-format workflow"):
        harness.ui_to_api(good_prompt(), pack.nodes)
