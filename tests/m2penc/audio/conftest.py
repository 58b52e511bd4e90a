"""Fixtures for the music tests: small synthetic music files written with soundfile and PyAV."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

SAMPLE_RATE = 44100
SECONDS = 3.0


def noise_stereo(seconds: float = SECONDS, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """Clipped white-noise stereo, float32 (S, 2); non-periodic so sample offsets are detectable."""
    rng = np.random.default_rng(seed)
    left = np.clip(0.3 * rng.standard_normal(int(seconds * sample_rate)), -0.9, 0.9)
    return np.stack([left, 0.5 * left], axis=1).astype(np.float32)


def encode_with_pyav(path: Path, samples: np.ndarray, codec: str, container_format: str | None = None,
                     sample_rate: int = SAMPLE_RATE) -> Path:
    """Encode (S, 2) float32 samples with an ffmpeg encoder through PyAV."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout="stereo")
        pts = 0
        for first in range(0, len(samples), 1024):
            chunk = np.ascontiguousarray(samples[first:first + 1024]).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="stereo")
            frame.sample_rate, frame.pts = sample_rate, pts
            pts += chunk.shape[1] // 2
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _write_music(directory: Path, extension: str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``samples`` as a file of the given format into ``directory``."""
    path = directory / f"music{extension}"
    if extension in (".wav", ".flac"):
        sf.write(path, samples, sample_rate)
    elif extension == ".ogg":
        sf.write(path, samples, sample_rate, format="OGG", subtype="VORBIS")
    elif extension == ".mp3":
        encode_with_pyav(path, samples, "libmp3lame", sample_rate=sample_rate)
    elif extension == ".m4a":
        encode_with_pyav(path, samples, "aac", "mp4", sample_rate=sample_rate)
    elif extension == ".aac":
        encode_with_pyav(path, samples, "aac", "adts", sample_rate=sample_rate)
    else:
        raise ValueError(extension)
    return path


@pytest.fixture
def stereo_noise() -> np.ndarray:
    """3 s of 44.1 kHz stereo noise, float32 (S, 2)."""
    return noise_stereo()


@pytest.fixture
def write_music():
    """``write_music(directory, extension, samples) -> Path`` for wav/flac/ogg/mp3/m4a/aac."""
    return _write_music
