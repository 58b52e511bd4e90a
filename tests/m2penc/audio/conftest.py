"""Fixtures for the music tests: synthetic music files (soundfile, PyAV), tiny Jukebox weights."""
from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from m2pdance.m2penc.audio.jukebox_features import clear_loaded_jukebox
from m2pdance.m2penc.jukebox import write_tiny_jukebox

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


@pytest.fixture(scope="session")
def tiny_jukebox(tmp_path_factory) -> tuple[Path, Path]:
    """(vqvae_path, prior_path) of tiny random self-describing Jukebox weights (6 layers, width 16)."""
    return write_tiny_jukebox(tmp_path_factory.mktemp("tiny_jukebox"), seed=0)


@pytest.fixture
def jukebox_env():
    """No Jukebox model kept in ``LOADED`` from another test, before or after (the root
    conftest already runs every test on one torch thread)."""
    clear_loaded_jukebox()
    yield
    clear_loaded_jukebox()


@pytest.fixture
def fake_jukemirlib(monkeypatch) -> types.ModuleType:
    """A stand-in ``jukemirlib`` (found by importlib) recording setup and extract calls; each
    ``extract`` returns ones of shape (tokens, 4800), as the real one returns layer activations."""
    fake = types.ModuleType("jukemirlib")
    fake.__spec__ = importlib.machinery.ModuleSpec("jukemirlib", None)
    fake.lib = types.ModuleType("jukemirlib.lib")
    fake.lib.VQVAE = fake.lib.TOP_PRIOR = fake.lib.x_cond = fake.lib.y_cond = None
    fake.DEVICE, fake.setup_calls, fake.extract_calls = "cpu", [], []

    def setup_models(cache_dir=None, remote_prefix=None, device=None, verbose=True):
        fake.setup_calls.append((cache_dir, device))
        return object(), object()

    def extract(audio=None, layers=None, **options):
        fake.extract_calls.append((len(audio), layers))
        return {layers[0]: np.ones((len(audio) // 128, 4800), dtype=np.float32)}

    fake.setup_models, fake.extract = setup_models, extract
    monkeypatch.setitem(sys.modules, "jukemirlib", fake)
    monkeypatch.setitem(sys.modules, "jukemirlib.lib", fake.lib)
    return fake
