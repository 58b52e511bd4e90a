"""Video writer: every format decodes back with PyAV with the right frames, rate and soundtrack."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.video import VideoWriter, get_format

FPS = 15
NUM_FRAMES = 23  # 1.533 s: not a whole number of AAC/Opus frames either
SAMPLE_RATE = 44100


def _frames(n: int = NUM_FRAMES, height: int = 32, width: int = 48) -> torch.Tensor:
    """ComfyUI IMAGE ``(n, H, W, 3)``: a bright square moving over a gradient."""
    y = torch.linspace(0, 1, height).view(1, height, 1, 1)
    x = torch.linspace(0, 1, width).view(1, 1, width, 1)
    frames = (0.3 * y + 0.3 * x).expand(n, height, width, 3).clone()
    for i in range(n):
        frames[i, 4:12, i % (width - 8):i % (width - 8) + 8] = 1.0
    return frames


def _audio(seconds: float, channels: int = 2, rate: int = SAMPLE_RATE) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    tone = 0.2 * torch.sin(2 * torch.pi * 440 * t)
    return {"waveform": tone.expand(1, channels, -1).clone(), "sample_rate": rate}


def _write(path: Path, fmt: str, frames: torch.Tensor, batch: int = 10, **kwargs) -> Path:
    with VideoWriter(path, FPS, fmt, **kwargs) as writer:
        for lo in range(0, frames.shape[0], batch):
            writer.write(frames[lo:lo + batch])
    return writer.path


def _stream_end(path: Path, kind: str) -> float:
    """End time (s) of the last packet of the first ``kind`` stream."""
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        ends = [(p.pts + p.duration) * p.time_base for p in container.demux(stream) if p.pts is not None]
    return float(max(ends))


def _decoded_video(path: Path, fmt: str) -> list[np.ndarray]:
    if fmt == "png":
        container = av.open(str(path / "frame_%05d.png"), format="image2", options={"framerate": str(FPS)})
    else:
        container = av.open(str(path))
    with container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_video_with_music_decodes_back(tmp_path, fmt):
    path = _write(tmp_path / "dance", fmt, _frames(), audio=_audio(3.0))
    assert path == tmp_path / f"dance{get_format(fmt).suffix}"
    assert os.listdir(tmp_path) == [path.name]
    frames = _decoded_video(path, fmt)
    assert len(frames) == NUM_FRAMES and frames[0].shape == (32, 48, 3)
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.average_rate == FPS
        assert audio.codec_context.name == ("aac" if fmt == "mp4" else "opus")
    duration = NUM_FRAMES / FPS
    assert abs(_stream_end(path, "video") - duration) < 1e-3
    assert abs(_stream_end(path, "audio") - duration) <= 1 / FPS  # music trimmed to the video


def test_short_music_is_padded_to_video_length(tmp_path):
    path = _write(tmp_path / "short.mp4", "mp4", _frames(), audio=_audio(0.5, channels=1))
    assert abs(_stream_end(path, "audio") - NUM_FRAMES / FPS) <= 1 / FPS
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    rate = SAMPLE_RATE
    assert np.abs(samples[int(0.1 * rate):int(0.4 * rate)]).max() > 0.1  # the tone
    assert np.abs(samples[int(0.7 * rate):int(1.4 * rate)]).max() < 0.01  # silence after the music


def test_music_starts_at_the_generation_offset(tmp_path):
    audio = _audio(3.0)
    audio["waveform"][..., : SAMPLE_RATE] = 0.0  # first second silent, tone afterwards
    path = _write(tmp_path / "offset.mp4", "mp4", _frames(), audio=audio, audio_start_s=1.0)
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    assert np.abs(samples[int(0.05 * SAMPLE_RATE):int(0.5 * SAMPLE_RATE)]).max() > 0.1


def test_gif_and_png_have_frames_rate_and_colours(tmp_path):
    frames = _frames()
    expected = (frames * 255).round().to(torch.uint8).numpy()
    for fmt in ("gif", "png"):
        path = _write(tmp_path / f"out_{fmt}", fmt, frames, audio=_audio(2.0))
        decoded = _decoded_video(path, fmt)
        assert len(decoded) == NUM_FRAMES
        assert np.abs(decoded[7].astype(int) - expected[7]).mean() < 2.0
    with av.open(str(tmp_path / "out_gif.gif")) as container:
        assert len(container.streams.audio) == 0
        assert abs(container.duration / 1e6 - NUM_FRAMES / FPS) <= 0.011  # GIF delays are 1/100 s
    assert sorted(os.listdir(tmp_path / "out_png"))[0] == "frame_00000.png"


def test_odd_size_is_padded_to_even_for_yuv420p(tmp_path):
    frames = _frames(height=33, width=45)
    path = _write(tmp_path / "odd.mp4", "mp4", frames)
    decoded = _decoded_video(path, "mp4")
    assert decoded[0].shape == (34, 46, 3)
    assert np.abs(decoded[3][-1].astype(int) - decoded[3][-2].astype(int)).mean() < 6  # edge replicated
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_uint8_frames_are_accepted(tmp_path):
    frames = (_frames() * 255).round().to(torch.uint8)
    path = _write(tmp_path / "u8.mp4", "mp4", frames)
    assert len(_decoded_video(path, "mp4")) == NUM_FRAMES


def test_failure_mid_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(tmp_path / "broken.mp4", FPS, "mp4", audio=_audio(2.0)) as writer:
            writer.write(_frames()[:10])
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_size_change_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(InputError, match="frame size"):
        with VideoWriter(tmp_path / "sizes", FPS, "png") as writer:
            writer.write(_frames(3))
            writer.write(_frames(3, height=16))
    assert os.listdir(tmp_path) == []


def test_unsupported_format_and_bad_frames_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="supported formats: mp4, webm, gif, png"):
        VideoWriter(tmp_path / "x.avi", FPS, "avi")
    with pytest.raises(InputError, match=r"\.webm"):
        VideoWriter(tmp_path / "x.mp4", FPS, "webm")
    with VideoWriter(tmp_path / "rgba.mp4", FPS, "mp4") as writer:
        with pytest.raises(InputError, match="RGB"):
            writer.write(torch.rand(2, 8, 8, 4))
        writer.write(_frames(2))
    assert os.listdir(tmp_path) == ["rgba.mp4"]


def test_fractional_frame_rate_is_kept(tmp_path):
    with VideoWriter(tmp_path / "ntsc.mp4", 30000 / 1001, "mp4") as writer:
        writer.write(_frames(6))
    with av.open(str(writer.path)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


def test_closing_without_frames_is_an_error_and_leaves_nothing(tmp_path):
    writer = VideoWriter(tmp_path / "empty.mp4", FPS, "mp4").open()
    with pytest.raises(InputError, match="no frames"):
        writer.close()
    assert os.listdir(tmp_path) == []


def test_music_must_be_a_single_comfy_audio_track(tmp_path):
    with pytest.raises(InputError, match="single track"):
        VideoWriter(tmp_path / "a.mp4", FPS, "mp4", audio={"waveform": torch.zeros(2, 2, 100), "sample_rate": 44100})
    with pytest.raises(InputError, match="AUDIO dict"):
        VideoWriter(tmp_path / "a.mp4", FPS, "mp4", audio=torch.zeros(1, 2, 100))
