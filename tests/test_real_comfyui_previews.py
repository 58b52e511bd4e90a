"""In the real ComfyUI server: the example inputs appear in input/ at startup (an existing file is
kept), and every preview Video Combine reports is served by ``GET /view`` (PNG sequences included).

Runs when ``COMFYUI_PATH`` points at a ComfyUI checkout (as ``tests/test_real_comfyui.py``); one
server start, model-free workflow, well under a minute on CPU.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m2pdance.devtools import comfy_harness as harness

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
MUSIC, PHOTO = "m2pdance_example_music.wav", "m2pdance_example_dancer.png"
pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_PATH, reason="set COMFYUI_PATH to a ComfyUI checkout (and COMFY_VENV) "
                                                 "to run the real server"),
]


@pytest.fixture(scope="module")
def run_workflow(shared_dir):
    """The project's server driver module (stdlib only), for its ``Server`` and ``http``."""
    script = shared_dir / "tools" / "comfy" / "run_workflow.py"
    if not script.is_file():
        pytest.skip(f"server driver not found: {script}")
    spec = importlib.util.spec_from_file_location("m2p_run_workflow", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _venv() -> str:
    """As tests/test_real_comfyui.py: $COMFY_VENV, else the venv of the ``python`` on PATH."""
    if os.environ.get("COMFY_VENV"):
        return os.environ["COMFY_VENV"]
    python = shutil.which("python") or sys.executable
    return str(Path(python).resolve().parent.parent)


def _prompt() -> dict:
    combine = {"images": ["2", 0], "fps": 8.0, "crf": 30}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 6}},
        "3": {"class_type": "M2PDanceVideoCombine", "inputs": {**combine, "format": "png",
                                                             "filename_prefix": "M2PDance/frames"}},
        "4": {"class_type": "M2PDanceVideoCombine", "inputs": {**combine, "format": "gif",
                                                             "filename_prefix": "M2PDance/anim"}},
        "5": {"class_type": "M2PDanceVideoCombine", "inputs": {**combine, "format": "mp4",
                                                             "filename_prefix": "M2PDance/video"}},
    }


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, b"", ""


def test_example_inputs_at_startup_and_every_preview_is_served_by_view(run_workflow, tmp_path, monkeypatch):
    inputs, models = tmp_path / "inputs", tmp_path / "models"
    inputs.mkdir()
    models.mkdir()
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(inputs / PHOTO)  # the user's own photo
    mine = (inputs / PHOTO).read_bytes()
    monkeypatch.setenv("COMFY_DIR", COMFYUI_PATH)
    monkeypatch.setenv("COMFY_VENV", _venv())
    monkeypatch.setenv("COMFY_MODELS_DIR", str(models))
    server = run_workflow.Server([str(harness.runner.REPO_ROOT)], str(inputs),
                                 extra_args=["--disable-api-nodes"], log_path=str(tmp_path / "server.log"))
    try:
        server.start()
        base = Path(server.base)
        # 1. the missing example music was written at load, the user's photo kept
        assert (base / "input" / MUSIC).is_file(), server.log_tail()
        assert (base / "input" / PHOTO).read_bytes() == mine
        assert sorted(os.listdir(base / "input")) == sorted([MUSIC, PHOTO])
        status, body, _ = _get(f"{server.url}/object_info/M2PDanceLoadMusic")
        audio = json.loads(body)["M2PDanceLoadMusic"]["input"]["required"]["audio"]  # ["COMBO", {"options"...}]
        assert status == 200 and MUSIC in audio[1]["options"], audio

        # 2. every preview item is served by /view
        status, resp = run_workflow.http("POST", server.url + "/prompt",
                                         {"prompt": _prompt(), "client_id": uuid.uuid4().hex})
        assert status == 200 and not resp.get("node_errors"), resp
        prompt_id, entry, deadline = resp["prompt_id"], None, time.time() + 300
        while time.time() < deadline:
            _, history = run_workflow.http("GET", f"{server.url}/history/{prompt_id}")
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry and (entry["status"].get("completed") or entry["status"].get("status_str") == "error"):
                break
            time.sleep(0.5)
        assert entry and entry["status"]["status_str"] == "success", json.dumps(entry, indent=1)[:3000]
        outputs = entry["outputs"]
        assert set(outputs) == {"3", "4", "5"}, outputs
        for node_id, shown in outputs.items():
            assert shown["images"], (node_id, shown)
            for item in shown["images"]:
                query = urllib.parse.urlencode({k: item[k] for k in ("filename", "subfolder", "type")})
                status, body, ctype = _get(f"{server.url}/view?{query}")
                assert status == 200 and body, (node_id, item, status)
        frames = outputs["3"]["images"]
        assert len(frames) == 6 and all(i["filename"].endswith(".png") for i in frames)
        assert "animated" not in outputs["3"]
        folder = base / "output" / frames[0]["subfolder"]
        umask = os.umask(0o022)
        os.umask(umask)
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777 & ~umask  # the server inherits our umask
    finally:
        server.stop()
