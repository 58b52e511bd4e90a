"""Generated music for the SDGPip tests: click tracks (a decaying sine burst on every beat over a hum)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

SR = 22050


def click_track(path: Path, seconds: float, bpm: float = 120.0, pitch: float = 880.0) -> Path:
    """Write a ``seconds``-long 22.05 kHz mono click track at ``bpm`` to ``path``."""
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.02 * np.sin(2 * np.pi * 110 * t)
    burst = np.exp(-np.arange(900) / 200.0) * np.sin(2 * np.pi * pitch * np.arange(900) / SR)
    for beat in np.arange(0.0, seconds, 60.0 / bpm):
        start = int(beat * SR)
        end = min(start + burst.size, t.size)
        wave[start:end] += 0.5 * burst[:end - start]
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave.astype(np.float32), SR)
    return path
