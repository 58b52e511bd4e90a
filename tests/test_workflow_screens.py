"""Each UI example workflow in the REAL ComfyUI frontend at its saved view (issue 17): loads without missing
nodes, saved scale above the low-detail threshold, every node on the canvas. Opt-in: needs COMFYUI_PATH (a
ComfyUI checkout; its venv in COMFY_VENV, with playwright) and Debian's chromium; ~20 s per workflow.
Screenshots go to pytest's tmp dir (printed on failure); ``scripts/check_workflow_screens.py --thumbnails``
is the same check that also rewrites the thumbnails."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_PATH, reason="set COMFYUI_PATH (and COMFY_VENV) to check the workflows in "
                                                 "the real frontend"),
    pytest.mark.skipif(not shutil.which(os.environ.get("CHROMIUM", "chromium")), reason="needs chromium"),
]


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    import check_workflow_screens as screens

    os.environ.setdefault("COMFY_DIR", COMFYUI_PATH or "")
    if not screens.BROWSER_CHECK.is_file():
        pytest.skip(f"browser check not found: {screens.BROWSER_CHECK}")
    out = tmp_path_factory.mktemp("workflow_screens")
    return screens, out, screens.example_inputs(out / "inputs")


@pytest.mark.parametrize("path", sorted((ROOT / "example_workflows").glob("*.json")), ids=lambda p: p.stem)
def test_workflow_reads_well_in_the_real_frontend(screens, path):
    module, out, inputs = screens
    result = module.check_one(path, out, inputs)
    assert not result["problems"], f"{result['problems']} (screenshot {result['screenshot']})"
