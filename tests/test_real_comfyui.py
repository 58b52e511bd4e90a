"""The same example workflows through the real ComfyUI server (``--cpu``, loopback only).

Runs when ``COMFYUI_PATH`` points at a ComfyUI checkout; the server's Python is
``$COMFY_VENV/bin/python`` (default: the venv of the ``python`` on PATH). Uses the project's
server driver in ``../shared/tools/comfy``. Models come from a temporary ComfyUI models tree
filled with the tiny smoke weights; inputs are the generated example music and photo.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m2pdance.devtools import comfy_harness as harness

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
#: As tests/test_example_workflows.py's GPU_ONLY: they load in the frontend but need a GPU (no API twin).
GPU_ONLY = {"music_to_wan_animate"}
pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_PATH, reason="set COMFYUI_PATH to a ComfyUI checkout (with its venv's "
                                                 "python on PATH or COMFY_VENV) to run workflows in the real server"),
]


def _venv() -> str:
    if os.environ.get("COMFY_VENV"):
        return os.environ["COMFY_VENV"]
    python = shutil.which("python") or sys.executable
    return str(Path(python).resolve().parent.parent)


@pytest.fixture(scope="module")
def driver(shared_dir) -> Path:
    script = shared_dir / "tools" / "comfy" / "run_workflow.sh"
    if not script.is_file():
        pytest.skip(f"server driver not found: {script}")
    return script


def _run(driver: Path, *args: str, models_dir: Path | None = None, timeout: float = 900) -> tuple[int, dict]:
    env = dict(os.environ, COMFY_DIR=COMFYUI_PATH, COMFY_VENV=_venv())
    if models_dir is not None:
        env["COMFY_MODELS_DIR"] = str(models_dir)
    proc = subprocess.run(["bash", str(driver), *args], capture_output=True, text=True, env=env, timeout=timeout)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = {"stdout": proc.stdout[-2000:], "stderr": proc.stderr[-2000:]}
    return proc.returncode, report


@pytest.fixture(scope="module")
def server_inputs(tmp_path_factory) -> tuple[Path, Path]:
    """(inputs dir, models dir) for the real server."""
    from m2pdance.m2penc.examples import write_example_inputs
    from m2pdance.m2penc.motion.example import write_example_motion

    root = tmp_path_factory.mktemp("real_comfy")
    write_example_inputs(root / "inputs")
    write_example_motion(root / "inputs")
    models = root / "models"
    models.mkdir()
    try:
        from m2pdance.weights_manifest.smoke import write_smoke_weights
    except ImportError:
        pass  # no smoke weights yet: only model-free workflows can run
    else:
        write_smoke_weights(models)
    return root / "inputs", models


def _normalise(value):
    return json.loads(json.dumps(value))


def test_object_info_matches_what_the_harness_validates(driver, comfy_home, server_inputs):
    models = server_inputs[1]  # the same models folder on both sides, so the dropdowns can agree
    code, report = _run(driver, "info", "--node-dir", str(harness.runner.REPO_ROOT), "--full", models_dir=models)
    assert code == 0, report
    harness.install(comfy_home, models_dir=models)
    nodes = harness.load_pack(harness.runner.REPO_ROOT).nodes
    served = report["nodes"]
    assert set(nodes) <= set(served), f"missing in /object_info: {set(nodes) - set(served)}"
    for node_id, cls in nodes.items():
        spec = harness.executor.node_spec(cls)
        info = served[node_id]
        assert info["output"] == spec.outputs, node_id
        declared = {name: inp.io_type for name, inp in spec.inputs.items()}
        served_inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        assert {k: v[0] for k, v in served_inputs.items()} == declared, node_id
        for name, inp in spec.inputs.items():
            assert _normalise(served_inputs[name][1]) == _normalise(inp.options), f"{node_id}.{name}"


@pytest.mark.parametrize("path", [p for p in harness.example_workflows() if p.stem not in GPU_ONLY],
                         ids=lambda p: p.stem)
def test_example_workflow_runs_in_real_server(driver, server_inputs, path, tmp_path):
    inputs, models = server_inputs
    code, report = _run(driver, "run", "--node-dir", str(harness.runner.REPO_ROOT),
                        "--workflow", str(harness.api_twin(path)), "--inputs", str(inputs),
                        "--out", str(tmp_path / "out"), models_dir=models)
    assert code == 0 and report.get("success"), json.dumps(report, indent=1)[:4000]
    assert report.get("outputs"), "the workflow produced no output"
