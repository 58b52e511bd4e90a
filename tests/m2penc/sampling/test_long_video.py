"""End to end: segmented sampling -> chunked decode -> streaming writer, with cancel and failure."""
from __future__ import annotations

import os

import av
import pytest
import torch

from m2pdance.m2penc.errors import GenerationCancelled
from m2pdance.m2penc.progress import RunControl
from m2pdance.m2penc.sampling import LongVideoOptions, render_long_video
from m2pdance.m2penc.video import VideoWriter

FPS = 15
LATENT = (1, 4, 8, 8)
OPTIONS = LongVideoOptions(segment_frames=30, num_steps=4, decode_chunk=7)


def _render(make_denoiser, decode, sink, num_frames=70, control=RunControl(), options=OPTIONS, seed=0):
    scheduler, denoiser = make_denoiser()
    return render_long_video(denoiser, scheduler, num_frames, seed=seed, latent_shape=LATENT, decode=decode,
                             sink=sink, device=torch.device("cpu"), dtype=torch.float32, options=options,
                             control=control)


def test_frames_reach_the_sink_in_chunks_and_order(make_denoiser, decode):
    chunks: list[torch.Tensor] = []
    assert _render(make_denoiser, decode, chunks.append) == 70
    assert [c.shape[0] for c in chunks] == [7, 7, 7, 7, 2] * 2 + [7, 3]  # segments of 30, 30, 10
    again: list[torch.Tensor] = []
    _render(make_denoiser, decode, again.append)
    assert torch.equal(torch.cat(chunks), torch.cat(again))


@pytest.mark.parametrize("join", ["condition", "average", "none"])
def test_rendered_file_has_every_frame_and_the_music(tmp_path, make_denoiser, decode, join):
    music = {"waveform": 0.1 * torch.randn(1, 2, 44100 * 10), "sample_rate": 44100}
    with VideoWriter(tmp_path / "dance.mp4", FPS, "mp4", audio=music) as writer:
        _render(make_denoiser, decode, writer.write, options=LongVideoOptions(
            segment_frames=30, num_steps=2, join=join))
    with av.open(str(writer.path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 70
    with av.open(str(writer.path)) as container:
        audio = container.streams.audio[0]
        assert abs(float(audio.duration * audio.time_base) - 70 / FPS) <= 1 / FPS


def test_cancel_during_render_leaves_no_file(tmp_path, make_denoiser, decode):
    ticks = []
    # cancel in segment 2: after 4 steps + 5 decoded chunks of segment 1 and 2 steps of segment 2
    control = RunControl(progress=lambda *a: ticks.append(a), should_cancel=lambda: len(ticks) >= 11)
    with pytest.raises(GenerationCancelled):
        with VideoWriter(tmp_path / "dance.mp4", FPS, "mp4") as writer:
            _render(make_denoiser, decode, writer.write, control=control)
    assert writer.frames_written == 30  # the first segment was already encoded...
    assert os.listdir(tmp_path) == []  # ...and still nothing is left behind


def test_failing_decoder_leaves_no_file(tmp_path, make_denoiser):
    def broken_decode(latents: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("VAE out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        with VideoWriter(tmp_path / "dance.webm", FPS, "webm") as writer:
            _render(make_denoiser, broken_decode, writer.write)
    assert os.listdir(tmp_path) == []
