"""Synthetic example inputs (music and a reference photo) so every workflow runs as shipped.

Nothing here is a model: the music is a 120 BPM drum-and-bass loop synthesised from sines and
noise bursts, the "photo" a flat-shaded figure on a gradient. Both are deterministic, small, and
written atomically. The demo command and the tests place them in ComfyUI's ``input/`` folder
under the names the example workflows use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import atomic_write

EXAMPLE_MUSIC = "m2pdance_example_music.wav"
EXAMPLE_REFERENCE = "m2pdance_example_dancer.png"
EXAMPLE_SAMPLE_RATE = 44_100  # Hz, Jukebox's rate
EXAMPLE_BPM = 120.0


def synth_music(seconds: float = 6.0, sample_rate: int = EXAMPLE_SAMPLE_RATE, bpm: float = EXAMPLE_BPM,
                seed: int = 0) -> np.ndarray:
    """A stereo drum-and-bass loop, float32 ``(2, S)`` in [-1, 1], with a kick on every beat."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    beat = 60.0 / bpm
    out = np.zeros(n, dtype=np.float64)
    for k in range(int(seconds / beat) + 1):
        start = int(round(k * beat * sample_rate))
        length = min(int(0.25 * sample_rate), n - start)
        if length <= 0:
            break
        tt = np.arange(length) / sample_rate
        kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 12)
        out[start:start + length] += 0.8 * kick
        hat_start = start + int(round(beat / 2 * sample_rate))
        hat_len = min(int(0.05 * sample_rate), n - hat_start)
        if hat_len > 0:
            out[hat_start:hat_start + hat_len] += 0.15 * rng.standard_normal(hat_len) * np.exp(-np.arange(hat_len) / 300)
    bass_notes = (55.0, 55.0, 65.41, 49.0)  # A1 A1 C2 G1, one per bar
    bar = 4 * beat
    note = np.array([bass_notes[int(x // bar) % len(bass_notes)] for x in t])
    out += 0.25 * np.sin(2 * np.pi * note * t)
    out /= np.max(np.abs(out)) + 1e-9
    stereo = np.stack([out, 0.9 * out]).astype(np.float32)
    return 0.9 * stereo


def synth_reference(size: int = 512) -> np.ndarray:
    """A flat-shaded standing figure on a gradient, uint8 ``(size, size, 3)``."""
    from PIL import Image, ImageDraw

    grad = np.linspace(0, 1, size)[:, None]
    bg = np.stack([200 - 60 * grad, 210 - 40 * grad, 230 - 20 * grad], axis=-1) * np.ones((1, size, 1))
    img = Image.fromarray(bg.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    s = size / 512
    cx = size // 2
    draw.ellipse([cx - 40 * s, 60 * s, cx + 40 * s, 150 * s], fill=(230, 190, 160))  # head
    draw.rectangle([cx - 60 * s, 160 * s, cx + 60 * s, 320 * s], fill=(200, 40, 60))  # shirt
    draw.rectangle([cx - 55 * s, 320 * s, cx + 55 * s, 360 * s], fill=(40, 50, 120))  # hips
    for side in (-1, 1):
        draw.line([cx + side * 60 * s, 175 * s, cx + side * 120 * s, 300 * s], fill=(200, 40, 60), width=int(28 * s))
        draw.line([cx + side * 30 * s, 360 * s, cx + side * 45 * s, 490 * s], fill=(40, 50, 120), width=int(34 * s))
    return np.asarray(img, dtype=np.uint8)


def write_example_inputs(input_dir: str | Path, seconds: float = 6.0) -> tuple[Path, Path]:
    """Write the example music and reference image into ``input_dir`` (atomically)."""
    import soundfile
    from PIL import Image

    input_dir = Path(input_dir)
    music = atomic_write(input_dir / EXAMPLE_MUSIC, lambda tmp: soundfile.write(
        tmp, synth_music(seconds).T, EXAMPLE_SAMPLE_RATE, format="WAV", subtype="PCM_16"))
    ref = atomic_write(input_dir / EXAMPLE_REFERENCE,
                       lambda tmp: Image.fromarray(synth_reference()).save(tmp, format="PNG"))
    return music, ref
