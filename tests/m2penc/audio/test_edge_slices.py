"""EDGE's music slicing: half-window hop, each slice analysed on its own, the tail padded."""
from __future__ import annotations

import numpy as np
import torch

from m2pdance.m2penc.audio.edge_slices import edge_music_windows, edge_window_starts
from m2pdance.m2penc.audio.features import extract_music_features


def _music(seconds: float, sr: int = 22050) -> dict:
    t = np.arange(int(seconds * sr)) / sr
    clicks = (np.sin(2 * np.pi * 440 * t) * (np.mod(t, 0.5) < 0.05)).astype(np.float32)
    return {"waveform": torch.from_numpy(0.5 * clicks + 0.05 * np.sin(2 * np.pi * 110 * t).astype(np.float32))[None, None],
            "sample_rate": sr}


def test_windows_start_every_half_window_until_the_song_is_covered():
    assert edge_window_starts(100, 150) == [0]
    assert edge_window_starts(150, 150) == [0]
    assert edge_window_starts(151, 150) == [0, 75]
    assert edge_window_starts(330, 150) == [0, 75, 150, 225]       # the last window runs past frame 329


def test_each_window_is_its_own_slice_of_the_music():
    audio = _music(9.0)                                              # 270 frames at 30 fps -> windows at 0, 75, 150
    windows = edge_music_windows(audio, "baseline")
    assert windows.features.shape == (3, 150, 35) and windows.starts == (0, 75, 150) and windows.num_frames == 270
    second = extract_music_features(audio, kind="baseline", fps=30, start=2.5, duration=5.0).features
    torch.testing.assert_close(windows.features[1], second)          # a fresh analysis of 2.5 s .. 7.5 s
    whole = extract_music_features(audio, kind="baseline", fps=30).features
    assert not torch.allclose(windows.features[1], whole[75:225])    # not a slice of one long analysis
    last = extract_music_features(audio, kind="baseline", fps=30, start=5.0, duration=4.0).features
    torch.testing.assert_close(windows.features[2, :120], last)      # 4 s of music left ...
    assert torch.equal(windows.features[2, 120:], last[-1:].expand(30, -1))  # ... then its last frame repeated
