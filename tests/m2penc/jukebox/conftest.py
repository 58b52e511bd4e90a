"""Shared fixtures for the Jukebox tests: spec paths, music, a stand-in jukemirlib, one thread.

The CI box has 2 shared cores; with several OpenMP threads each tiny op waits ~15 ms for
its siblings, so these tests pin torch to one thread (restored afterwards).
"""
from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

SPEC_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "spec" / "jukebox"


@pytest.fixture
def spec_dir() -> Path:
    if not SPEC_DIR.is_dir():
        pytest.skip(f"key manifests not found at {SPEC_DIR.resolve()}")
    return SPEC_DIR.resolve()


def _music(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(44100 * seconds)) / 44100
    tone = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    beat = 0.5 * (1 + np.sign(np.sin(2 * np.pi * 2.0 * t)))
    return (tone * (0.4 + 0.6 * beat) + 0.2 * rng.standard_normal(len(t)) * beat).astype(np.float32)


@pytest.fixture
def make_music():
    """``make_music(seconds, seed=0)`` -> deterministic music-like mono 44.1 kHz float32 signal
    (a beating chord with noisy onsets)."""
    return _music


class _FakeJukemirlib(types.ModuleType):
    """Stand-in for jukemirlib's surface that our backend touches (``setup_models``, ``extract``,
    ``DEVICE``, the ``lib.VQVAE``/``lib.TOP_PRIOR`` globals). It records what it is given and
    answers each ``extract`` call k with (tokens, 4800) activations equal to k."""

    def __init__(self) -> None:
        super().__init__("jukemirlib")
        self.__spec__ = importlib.machinery.ModuleSpec("jukemirlib", None)
        self.lib = types.ModuleType("jukemirlib.lib")
        self.lib.__spec__ = importlib.machinery.ModuleSpec("jukemirlib.lib", None)
        self.lib.VQVAE = self.lib.TOP_PRIOR = self.lib.x_cond = self.lib.y_cond = None
        self.DEVICE = "cpu"
        self.setup_calls: list[dict] = []
        self.extract_calls: list[dict] = []

    def setup_models(self, cache_dir=None, remote_prefix=None, device=None, verbose=True):
        self.setup_calls.append({"cache_dir": cache_dir, "device": device, "DEVICE": self.DEVICE})
        return object(), object()

    def extract(self, audio=None, layers=None, **options):
        assert self.lib.VQVAE is not None and self.lib.TOP_PRIOR is not None, "extract before setup"
        self.extract_calls.append({"audio": np.asarray(audio), "layers": layers, **options})
        tokens = len(audio) // 128
        return {layers[0]: np.full((tokens, 4800), float(len(self.extract_calls)), dtype=np.float32)}


@pytest.fixture
def fake_jukemirlib(monkeypatch) -> _FakeJukemirlib:
    """Install :class:`_FakeJukemirlib` as ``jukemirlib`` (found by ``importlib.util.find_spec``)."""
    fake = _FakeJukemirlib()
    monkeypatch.setitem(sys.modules, "jukemirlib", fake)
    monkeypatch.setitem(sys.modules, "jukemirlib.lib", fake.lib)
    return fake
