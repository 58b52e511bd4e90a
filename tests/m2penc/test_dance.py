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
