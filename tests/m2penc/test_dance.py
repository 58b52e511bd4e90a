"""Music file + photo -> video file in one streaming call (library and ``m2pdance dance``)."""
from __future__ import annotations

import av
import pytest

from m2pdance.cli import main
from m2pdance.m2penc.dance import DanceOptions, DanceWeights, make_dance_video
from m2pdance.m2penc.errors import GenerationCancelled
from m2pdance.m2penc.examples import write_example_inputs
from m2pdance.m2penc.progress import RunControl
from m2pdance.m2penc.sampling import LongVideoOptions
from m2pdance.weights_manifest.smoke import SMOKE_FILES


@pytest.fixture
def inputs(tmp_path):
    return write_example_inputs(tmp_path / "input", seconds=2.0)


def test_cli_dance_writes_a_video_with_the_music(inputs, smoke_models, tmp_path):
    music, photo = inputs
    out = tmp_path / "out" / "dance.mp4"
    assert main(["dance", "--music", str(music), "--photo", str(photo), "--out", str(out), "--models-dir",
                 str(smoke_models), "--smoke", "--duration", "1", "--size", "64", "--steps", "2"]) == 0
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 15
        assert container.streams.audio


def test_cancel_leaves_no_file(inputs, smoke_models, tmp_path):
    music, photo = inputs
    ticks = {"n": 0}

    def cancel_soon() -> bool:
        ticks["n"] += 1
        return ticks["n"] > 3

    with pytest.raises(GenerationCancelled):
        weights = DanceWeights(m2penc=smoke_models / "m2penc" / SMOKE_FILES["m2penc"],
                               champ=smoke_models / "champ" / SMOKE_FILES["champ"],
                               vae=smoke_models / "vae" / SMOKE_FILES["vae"],
                               image_encoder=smoke_models / "clip_vision" / SMOKE_FILES["clip_vision"])
        make_dance_video(music, photo, tmp_path / "out" / "dance.mp4", weights,
                         DanceOptions(duration=1.0, width=64, height=64, sampling=LongVideoOptions(num_steps=4)),
                         control=RunControl(should_cancel=cancel_soon))
    out_dir = tmp_path / "out"
    assert not out_dir.exists() or not any(out_dir.iterdir()), "a cancelled run must leave nothing"


def test_cli_smoke_defaults_to_the_smoke_size_and_steps_and_finds_the_models_folder(inputs, smoke_models, tmp_path,
                                                                                   monkeypatch):
    """``--smoke`` runs at the smoke workflow's 256 px / 8 steps (the paper's 512 / 20 took 25+ minutes on a CPU);
    ``--models-dir`` defaults to $COMFYUI_PATH/models."""
    import m2pdance.m2penc.dance as dance

    seen = {}
    monkeypatch.setattr(dance, "make_dance_video",
                        lambda music, photo, out, weights, options, control: seen.update(w=weights, o=options) or out)
    monkeypatch.setenv("COMFYUI_PATH", str(smoke_models.parent))
    music, photo = inputs
    assert main(["dance", "--music", str(music), "--photo", str(photo), "--out", str(tmp_path / "x.mp4"),
                 "--smoke"]) == 0
    assert (seen["o"].width, seen["o"].height, seen["o"].sampling.num_steps) == (256, 256, 8)
    assert seen["w"].m2penc == smoke_models / "m2penc" / SMOKE_FILES["m2penc"]
    assert seen["o"].device in ("cpu", "cuda")                       # resolved, and reported
    assert main(["dance", "--music", str(music), "--photo", str(photo), "--out", str(tmp_path / "x.mp4"),
                 "--smoke", "--size", "64", "--steps", "2"]) == 0
    assert (seen["o"].width, seen["o"].sampling.num_steps) == (64, 2)
    monkeypatch.delenv("COMFYUI_PATH")
    monkeypatch.chdir(tmp_path)                                      # no ./comfy_home/models here
    assert main(["dance", "--music", str(music), "--photo", str(photo), "--out", "x.mp4", "--smoke"]) == 1


def test_sigterm_stops_the_cli_and_leaves_no_partial_file(inputs, smoke_models, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    music, photo = inputs
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "m2pdance.cli", "dance", "--music", str(music), "--photo", str(photo),
               "--out", str(out / "dance.mp4"), "--models-dir", str(smoke_models), "--smoke", "--size", "64",
               "--steps", "200"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and not any(out.iterdir()):
            time.sleep(0.05)                                         # the writer's .partial file appeared
        assert process.poll() is None, process.communicate()[1][-2000:]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130 and "cancelled" in stderr
    assert not any(out.iterdir()), sorted(p.name for p in out.iterdir())
