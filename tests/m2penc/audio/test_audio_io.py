"""Music loading: every container/codec, trimming, resampling, AUDIO validation, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from m2pdance.m2penc.audio.io import (
    load_audio, resample, to_mono, trim_audio, validate_audio,
)
from m2pdance.m2penc.errors import AudioError

SAMPLE_RATE = 44100  # as written by the write_music fixture
SECONDS = 3.0

FORMATS = [".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac"]
LOSSLESS = [".wav", ".flac"]


def _best_lag(reference: np.ndarray, window: np.ndarray, offset: int, search: int = 1500) -> int:
    """Sample lag that best aligns ``window`` with ``reference[offset:]``."""
    errors = [np.abs(reference[offset + lag: offset + lag + len(window)] - window).mean()
              for lag in range(-search, search + 1)]
    return int(np.argmin(errors)) - search


@pytest.mark.parametrize("extension", FORMATS)
def test_every_format_decodes_to_audio_dict(tmp_path, stereo_noise, extension, write_music):
    path = write_music(tmp_path, extension, stereo_noise)
    audio = load_audio(path)
    waveform = audio["waveform"]
    assert audio["sample_rate"] == SAMPLE_RATE
    assert waveform.dtype == torch.float32 and waveform.ndim == 3 and waveform.shape[:2] == (1, 2)
    # Lossy codecs may add up to one codec frame of priming/padding.
    assert abs(waveform.shape[-1] / SAMPLE_RATE - SECONDS) < 0.05
    assert 0.1 < float(waveform.std()) < 1.0


@pytest.mark.parametrize("extension", LOSSLESS)
def test_lossless_decode_is_exact(tmp_path, stereo_noise, extension, write_music):
    path = write_music(tmp_path, extension, stereo_noise)
    decoded = load_audio(path)["waveform"][0].numpy().T
    np.testing.assert_allclose(decoded, stereo_noise, atol=1e-4)  # 16-bit quantisation


@pytest.mark.parametrize("extension", [".wav", ".mp3", ".ogg"])
def test_trim_window_is_sample_accurate(tmp_path, stereo_noise, extension, write_music):
    path = write_music(tmp_path, extension, stereo_noise)
    full = load_audio(path)["waveform"][0, 0].numpy()
    part = load_audio(path, start=1.25, duration=1.0)["waveform"][0, 0].numpy()
    assert part.shape == (SAMPLE_RATE,)
    assert _best_lag(full, part, int(1.25 * SAMPLE_RATE)) == 0


def test_resample_and_mono(tmp_path, stereo_noise, write_music):
    path = write_music(tmp_path, ".wav", stereo_noise)
    audio = load_audio(path, sample_rate=16000, mono=True, duration=2.0)
    assert audio["sample_rate"] == 16000
    assert audio["waveform"].shape == (1, 1, 32000)
    direct = resample(to_mono(load_audio(path, duration=2.0)["waveform"]), SAMPLE_RATE, 16000)
    torch.testing.assert_close(audio["waveform"], direct)


def test_to_mono_averages_channels():
    waveform = torch.tensor([[[1.0, 3.0], [3.0, 5.0]]])
    torch.testing.assert_close(to_mono(waveform), torch.tensor([[[2.0, 4.0]]]))


def test_peak_normalise_is_the_jukebox_input_convention():
    from m2pdance.m2penc.jukebox.music_input import peak_normalise

    y = np.array([0.1, -0.4, 0.2], dtype=np.float32)
    np.testing.assert_allclose(peak_normalise(y), [0.25, -1.0, 0.5])
    np.testing.assert_array_equal(peak_normalise(np.zeros(4, dtype=np.float32)), 0.0)   # silence stays zero
    with pytest.raises(AudioError, match="NaN"):
        peak_normalise(np.array([0.1, np.nan], dtype=np.float32))


def test_trim_audio_in_memory():
    audio = {"waveform": torch.arange(1000, dtype=torch.float32).reshape(1, 1, -1) / 1000, "sample_rate": 100}
    part = trim_audio(audio, start=2.0, duration=3.0)
    assert part["waveform"].shape[-1] == 300 and float(part["waveform"][0, 0, 0]) == pytest.approx(0.2)
    with pytest.raises(AudioError, match="beyond the end"):
        trim_audio(audio, start=10.0)
    with pytest.raises(AudioError, match="runs past the end"):
        trim_audio(audio, start=8.0, duration=5.0)


def test_validate_audio_accepts_comfy_dict_and_normalises_dtype():
    audio = {"waveform": torch.randn(1, 2, 500, dtype=torch.float64), "sample_rate": 8000}
    checked = validate_audio(audio)
    assert checked["waveform"].dtype == torch.float32 and checked["sample_rate"] == 8000


@pytest.mark.parametrize("audio, message", [
    ({"waveform": torch.randn(2, 500)}, "keys 'waveform' and 'sample_rate'"),
    ({"waveform": torch.randn(2, 500), "sample_rate": 8000}, r"\[batch, channels, samples\]"),
    ({"waveform": torch.randn(1, 2, 500), "sample_rate": 0}, "positive int"),
    ({"waveform": torch.zeros(1, 2, 0), "sample_rate": 8000}, "empty"),
    ({"waveform": torch.zeros(1, 2, 500), "sample_rate": 8000}, "silent"),
    ({"waveform": torch.full((1, 1, 10), float("nan")), "sample_rate": 8000}, "NaN"),
    ({"waveform": np.zeros((1, 1, 10)), "sample_rate": 8000}, "float torch tensor"),
])
def test_validate_audio_rejects_bad_dicts(audio, message):
    with pytest.raises(AudioError, match=message):
        validate_audio(audio)


def test_corrupt_bytes(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="corrupt"):
        load_audio(path)


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(path)


def test_silent_file(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="silent"):
        load_audio(path)
    assert load_audio(path, allow_silent=True)["waveform"].abs().max() == 0


def test_wrong_extension(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not music")
    with pytest.raises(AudioError, match="not an audio file"):
        load_audio(path)


def test_text_with_audio_extension(tmp_path):
    path = tmp_path / "fake.mp3"
    path.write_text("definitely not an mp3 " * 50)
    with pytest.raises(AudioError, match="could not"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")


@pytest.mark.parametrize("extension", [".wav", ".mp3"])
def test_start_beyond_end(tmp_path, stereo_noise, extension, write_music):
    path = write_music(tmp_path, extension, stereo_noise)
    with pytest.raises(AudioError, match="beyond the end"):
        load_audio(path, start=SECONDS + 1.0)


def test_duration_beyond_end(tmp_path, stereo_noise, write_music):
    path = write_music(tmp_path, ".flac", stereo_noise)
    with pytest.raises(AudioError, match="runs past the end"):
        load_audio(path, start=2.0, duration=5.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"start": -1.0}, "start must be"),
    ({"duration": 0.0}, "duration must be > 0"),
    ({"duration": 7200.0}, "exceeds the limit of 3600 s"),
])
def test_bad_windows(tmp_path, stereo_noise, kwargs, message, write_music):
    path = write_music(tmp_path, ".wav", stereo_noise)
    with pytest.raises(AudioError, match=message):
        load_audio(path, **kwargs)


def test_length_limit_applies_to_whole_file(tmp_path, stereo_noise, write_music):
    path = write_music(tmp_path, ".wav", stereo_noise)
    with pytest.raises(AudioError, match="above the limit of 2 s"):
        load_audio(path, max_seconds=2.0)
    assert load_audio(path, duration=1.5, max_seconds=2.0)["waveform"].shape[-1] == int(1.5 * SAMPLE_RATE)


def test_truncated_file(tmp_path, stereo_noise, write_music):
    path = write_music(tmp_path, ".wav", stereo_noise)
    path.write_bytes(path.read_bytes()[:2000])  # header says 3 s, data stops after ~11 ms
    with pytest.raises(AudioError):
        load_audio(path)
