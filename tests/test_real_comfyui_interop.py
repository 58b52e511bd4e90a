"""Our VIDEO with ComfyUI core's video nodes, in the real server (``--cpu``, loopback only).

One API workflow: Load Music -> Beat Choreographer -> Render Pose Maps -> our Video Combine, whose
VIDEO goes to core ``SaveVideo`` and to core ``GetVideoComponents`` (its AUDIO to ``SaveAudio``, its
IMAGE + fps + AUDIO back through ``CreateVideo`` -> ``SaveVideo``); beside it core ``CreateVideo``
from our IMAGE and AUDIO -> ``SaveVideo``. The saved files are opened with PyAV: frame count, frame
rate and an audio stream of the music's length.

Runs when ``COMFYUI_PATH`` points at a ComfyUI checkout (see tests/test_real_comfyui.py, whose
server driver and input fixtures this reuses). SaveVideo / CreateVideo / GetVideoComponents exist in
the rig's ComfyUI 0.3.64 (comfy_extras/nodes_video.py); they take ``comfy_api``'s ``VideoInput``
(``get_components``, ``save_to``, ``get_dimensions``, ``get_duration``).
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from m2pdance.devtools import comfy_harness as harness
from test_real_comfyui import COMFYUI_PATH, _run, driver, server_inputs  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_PATH, reason="set COMFYUI_PATH to a ComfyUI checkout (with its venv's "
                                                 "python on PATH or COMFY_VENV) to run workflows in the real server"),
]

SECONDS, FPS, SIZE = 2.0, 15, 128
FRAMES = int(SECONDS * FPS)
MUSIC = "m2pdance_example_music.wav"


def interop_workflow() -> dict:
    def node(class_type: str, **inputs) -> dict:
        return {"class_type": class_type, "inputs": inputs}

    return {
        "1": node("M2PDanceLoadMusic", audio=MUSIC, start=0.0, duration=SECONDS),
        "2": node("M2PDanceBeatChoreographer", music=["1", 0], seed=0, energy=1.0, fps=30.0),
        "3": node("M2PDanceRenderPoseMaps", motion=["2", 0], body="open body (no files)", width=SIZE,
                  height=SIZE, fps=float(FPS)),
        "4": node("M2PDanceVideoCombine", images=["3", 3], fps=["3", 6], format="mp4", crf=23,
                  filename_prefix="interop/combine", audio=["1", 0]),
        # our VIDEO -> core SaveVideo
        "5": node("SaveVideo", video=["4", 1], filename_prefix="interop/ours_saved", format="auto", codec="auto"),
        # our VIDEO -> core GetVideoComponents -> SaveAudio, and its parts -> CreateVideo -> SaveVideo
        "6": node("GetVideoComponents", video=["4", 1]),
        "7": node("SaveAudio", audio=["6", 1], filename_prefix="interop/ours_audio"),
        "8": node("CreateVideo", images=["6", 0], fps=["6", 2], audio=["6", 1]),
        "9": node("SaveVideo", video=["8", 0], filename_prefix="interop/ours_rebuilt", format="mp4", codec="h264"),
        # our IMAGE + AUDIO -> core CreateVideo -> core SaveVideo
        "10": node("CreateVideo", images=["3", 3], fps=["3", 6], audio=["1", 0]),
        "11": node("SaveVideo", video=["10", 0], filename_prefix="interop/core_created", format="mp4", codec="h264"),
        # the other formats' VIDEO: webm is its file, gif and png are frames + fps + music
        **{str(first + k): n for first, fmt in ((20, "webm"), (30, "gif"), (40, "png")) for k, n in enumerate((
            node("M2PDanceVideoCombine", images=["3", 3], fps=["3", 6], format=fmt, crf=30,
                 filename_prefix=f"interop/combine_{fmt}", audio=["1", 0]),
            node("SaveVideo", video=[str(first), 1], filename_prefix=f"interop/{fmt}_saved", format="mp4",
                 codec="h264"),
        ))},
    }


#: SaveVideo nodes whose mp4 must hold the whole dance and the music: ours as written, ours re-saved,
#: ours taken apart and rebuilt, core's CreateVideo from our frames, our webm / gif / png VIDEO saved.
SAVED_VIDEOS = ("4", "5", "9", "11", "21", "31", "41")


def _probe(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        frames = sum(1 for _ in container.decode(video=0))
        info = {"frames": frames, "rate": Fraction(video.average_rate), "size": (video.width, video.height),
                "audio": audio is not None}
        if audio is not None:
            container.seek(0)
            samples = sum(f.samples for f in container.decode(audio=0))
            info.update(audio_codec=audio.codec_context.name, audio_seconds=samples / audio.rate)
    return info


def _audio_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(f.samples for f in container.decode(audio=0)) / stream.rate


def test_core_video_nodes_take_our_video_and_images(driver, server_inputs, tmp_path):  # noqa: F811
    inputs, models = server_inputs
    workflow = tmp_path / "interop_api.json"
    workflow.write_text(json.dumps(interop_workflow(), indent=1))
    code, report = _run(driver, "run", "--node-dir", str(harness.runner.REPO_ROOT), "--workflow", str(workflow),
                        "--inputs", str(inputs), "--out", str(tmp_path / "out"), models_dir=models)
    assert code == 0 and report.get("success"), json.dumps(report, indent=1)[:6000]
    assert not report.get("node_errors") and not report.get("errors")

    files = {}
    for rec in report["outputs"]:                              # the png Video Combine lists its frame files
        assert rec["exists"] and rec["path"], rec
        files.setdefault(rec["node_id"], []).append(Path(rec["path"]))
    assert set(files) >= {*SAVED_VIDEOS, "7", "40"}, sorted(files)
    assert all(p.suffix == ".png" for p in files["40"]) and len(files["40"]) == FRAMES

    for node_id in SAVED_VIDEOS:
        (path,) = files[node_id]
        info = _probe(path)
        where = f"node {node_id} ({path.name}): {info}"
        assert info["frames"] == FRAMES and info["rate"] == FPS, where
        assert info["size"] == (SIZE, SIZE), where
        assert info["audio"] and abs(info["audio_seconds"] - SECONDS) < 0.15, where

    assert _probe(files["5"][0]) == _probe(files["4"][0])     # SaveVideo copies our streams as they are
    (flac,) = files["7"]
    assert flac.suffix == ".flac" and abs(_audio_seconds(flac) - SECONDS) < 0.15
