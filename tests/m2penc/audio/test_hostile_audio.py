"""Hostile and careless music files (issue 17): many channels, long silence, garbage.

Loads that once crashed the interpreter (PyAV's planar-float conversion segfaults from 8
channels on) run in a subprocess, so a crash fails the test instead of killing pytest.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from m2pdance.m2penc.audio import io as audio_io
from m2pdance.m2penc.audio.io import LEADING_SILENCE_SECONDS, MAX_CHANNELS, load_audio
from m2pdance.m2penc.errors import AudioError, InputError

REPO_PARENT = Path(__file__).resolve().parents[4]

_CHILD = r"""
import json, sys
from m2pdance.m2penc.audio.io import load_audio
from m2pdance.m2penc.errors import M2PDanceError
out = {}
for path in sys.argv[1:]:
    try:
        audio = load_audio(path)
        out[path] = ["ok", list(audio["waveform"].shape), float(audio["waveform"].abs().max())]
    except M2PDanceError as e:
        out[path] = ["error", type(e).__name__, str(e)]
print(json.dumps(out))
"""


def load_in_subprocess(paths: list[Path], timeout: float = 120.0) -> dict[str, list]:
    """``load_audio`` of each path in a fresh interpreter; fails the test on a crash."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, *map(str, paths)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_PARENT)
    assert proc.returncode == 0, f"loading crashed the interpreter (exit code {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tone(channels: int, seconds: float = 0.25, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    gains = np.linspace(0.1, 0.5, channels)[None, :]
    return (np.sin(2 * np.pi * 440 * t)[:, None] * gains).astype(np.float32)


def test_wav_of_any_channel_count_loads_or_is_refused(tmp_path):
    counts = [1, 2, 6, 7, 8, 9, 12, 16, 32, MAX_CHANNELS]
    paths = []
    for channels in counts:
        path = tmp_path / f"ch{channels}.wav"
        sf.write(path, _tone(channels), 16000, subtype="PCM_16")
        paths.append(path)
    float_wav = tmp_path / "float16ch.wav"  # decodes straight to packed float
    sf.write(float_wav, _tone(16), 16000, subtype="FLOAT")
    vorbis = tmp_path / "vorbis12.ogg"  # decodes to planar float, the format that crashed
    sf.write(vorbis, _tone(12, seconds=1.0), 16000, format="OGG", subtype="VORBIS")
    too_many = tmp_path / "too_many.wav"
    sf.write(too_many, _tone(MAX_CHANNELS + 1), 16000, subtype="PCM_16")
    results = load_in_subprocess([*paths, float_wav, vorbis, too_many])
    for channels, path in zip(counts, paths):
        status, shape, peak = results[str(path)]
        assert status == "ok", results[str(path)]
        assert shape == [1, channels, 4000]
        assert peak == pytest.approx(0.5 if channels > 1 else 0.1, abs=2e-3)
    assert results[str(float_wav)][:2] == ["ok", [1, 16, 4000]]
    assert results[str(vorbis)][0] == "ok" and results[str(vorbis)][1][:2] == [1, 12]
    status, kind, message = results[str(too_many)]
    assert (status, kind) == ("error", "AudioError")
    assert "too_many.wav" in message and str(MAX_CHANNELS) in message and "downmix" in message


def test_many_channels_keep_their_samples(tmp_path):
    """The packed conversion puts each channel's samples back in its own row."""
    samples = _tone(9)
    path = tmp_path / "nine.wav"
    sf.write(path, samples, 16000, subtype="FLOAT")
    results = load_in_subprocess([path])
    assert results[str(path)][0] == "ok"
    audio = load_audio(path)
    np.testing.assert_allclose(audio["waveform"][0].numpy(), samples.T, atol=1e-6)


@pytest.fixture(scope="module")
def silent_half_hour(tmp_path_factory) -> Path:
    """30 minutes of digital silence, 8 kHz mono FLAC (about 45 kB)."""
    path = tmp_path_factory.mktemp("silence") / "silent_30min.flac"
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC") as f:
        minute = np.zeros(8000 * 60, dtype=np.float32)
        for _ in range(30):
            f.write(minute)
    return path


def test_long_silent_file_is_refused_after_its_first_window(silent_half_hour, monkeypatch):
    decoded = []
    add = audio_io._WindowCollector.add

    def counting_add(self, frame):
        decoded.append(frame.samples)
        return add(self, frame)

    monkeypatch.setattr(audio_io._WindowCollector, "add", counting_add)
    began = time.perf_counter()
    with pytest.raises(AudioError, match="silent") as info:
        load_audio(silent_half_hour)
    assert time.perf_counter() - began < 10
    assert "silent_30min.flac" in str(info.value) and "start" in str(info.value)
    # only the first window was decoded, not the 30 minutes
    assert sum(decoded) <= (LEADING_SILENCE_SECONDS + 5) * 8000


def test_silence_then_music_inside_the_first_window_is_fine(tmp_path):
    samples = np.zeros(int(3.0 * 8000), dtype=np.float32)
    samples[-8000:] = 0.3 * np.sin(np.arange(8000) / 5.0)
    path = tmp_path / "late.flac"
    sf.write(path, samples, 8000)
    assert load_audio(path)["waveform"].shape == (1, 1, 24000)


def test_allow_silent_reads_long_silence(tmp_path):
    path = tmp_path / "quiet.flac"
    sf.write(path, np.zeros(8000 * (int(LEADING_SILENCE_SECONDS) + 5), dtype=np.float32), 8000)
    audio = load_audio(path, allow_silent=True)
    assert audio["waveform"].shape[-1] == 8000 * (int(LEADING_SILENCE_SECONDS) + 5)


def test_over_long_file_is_refused_from_its_header(tmp_path, monkeypatch):
    """The stated limit (MAX_AUDIO_SECONDS) is checked on the container's duration before decoding."""
    path = tmp_path / "long.flac"
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC") as f:
        for _ in range(3):
            f.write(0.1 * np.ones(8000 * 60, dtype=np.float32))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the length check")

    monkeypatch.setattr(audio_io, "_drain", no_decoding)
    with pytest.raises(AudioError, match=r"long.flac is 180\.0 s long.*limit of 120 s"):
        load_audio(path, max_seconds=120)


@pytest.mark.parametrize("payload", [
    b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x00\x00\x40\x1f\x00\x00",  # header cut short
    b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00\x00"
    b"\x00\x00\x00\x00\x04\x00\x10\x00data\xff\xff\xff\xff" + b"\x01\x02" * 100,  # zero sample rate
    b"\x00" * 4096,
    bytes(range(256)) * 8,
])
def test_garbage_wav_is_an_input_error_naming_the_file(tmp_path, payload):
    path = tmp_path / "garbage.wav"
    path.write_bytes(payload)
    results = load_in_subprocess([path])
    status, kind, message = results[str(path)]
    assert status == "error" and kind == "AudioError"
    assert "garbage.wav" in message
    with pytest.raises(InputError, match="garbage.wav"):
        load_audio(path)


@pytest.mark.parametrize("seconds", [2.0, 6.0])
def test_normal_short_music_gives_no_library_warnings(seconds):
    """librosa warned on every run ("Trying to estimate tuning from empty frequency set",
    "n_fft=512 is too large for input signal of length=480") from chroma CENS."""
    import warnings

    import torch

    from m2pdance.m2penc.audio.features import extract_music_features
    from m2pdance.m2penc.audio.rhythm import music_rhythm
    from m2pdance.m2penc.examples import synth_music

    audio = {"waveform": torch.from_numpy(synth_music(seconds=seconds))[None], "sample_rate": 44100}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fps in (15, 30):
            assert extract_music_features(audio, fps=fps).features.shape == (int(seconds * fps), 35)
        music_rhythm(audio)


def test_wav_with_an_unknown_codec_tag(tmp_path):
    """Found by the fuzz module: no decoder for the stream (codec_context None) gave an AttributeError."""
    path = tmp_path / "odd_codec.wav"
    sf.write(path, _tone(1), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[20:22] = (0x3412).to_bytes(2, "little")  # WAVE format tag: no such codec
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="odd_codec.wav.*codec cannot be decoded"):
        load_audio(path)
