"""Shared fixtures for the Jukebox tests: tiny configs, spec paths, single-threaded torch.

The CI box has 2 shared cores; with several OpenMP threads each tiny op waits ~15 ms for
its siblings, so these tests pin torch to one thread (restored afterwards).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

SPEC_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "spec" / "jukebox"


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
