"""Error texts as the real ComfyUI server (0.3.64, ``--cpu``) shows them: one validation message per
problem, unsafe file names refused at validation, and the project's exception types by plain name.

Reuses the server driver and fixtures of ``test_real_comfyui.py``; runs when ``COMFYUI_PATH`` is set.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2pdance.devtools import comfy_harness as harness
from test_real_comfyui import _run, driver, pytestmark  # noqa: F401  (fixture and markers reused)


def _music(node: str, audio: str) -> dict:
    return {node: {"class_type": "M2PDanceLoadMusic", "inputs": {"audio": audio, "start": 0.0, "duration": 1.0}},
            node + "p": {"class_type": "PreviewAudio", "inputs": {"audio": [node, 0]}}}


def test_music_file_errors_in_the_real_server(driver, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "not_music.wav").write_bytes(b"RIFF....WAVEfmt " + b"\x00" * 64)  # a wav header and nothing usable
    prompt = {**_music("1", "gone.wav"), **_music("2", "../outside.wav"), **_music("3", "not_music.wav")}
    workflow = tmp_path / "errors_api.json"
    workflow.write_text(json.dumps(prompt))
    code, report = _run(driver, "run", "--node-dir", str(harness.runner.REPO_ROOT), "--workflow", str(workflow),
                        "--inputs", str(inputs), "--out", str(tmp_path / "out"), timeout=600)
    shown = json.dumps(report, indent=1)[:4000]
    node_errors = report.get("node_errors") or {}
    missing = node_errors["1"]["errors"]
    assert len(missing) == 1 and "music file not found" in missing[0]["details"], shown
    unsafe = node_errors["2"]["errors"]
    assert len(unsafe) == 1 and "'..' would leave ComfyUI's input folder" in unsafe[0]["details"], shown
    errors = report.get("errors") or []
    assert errors and errors[0]["node_id"] == "3", shown
    assert errors[0]["exception_type"] == "m2pdance.AudioError", shown
    assert "\x1b" not in errors[0]["exception_message"]
