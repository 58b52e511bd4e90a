"""EDGE's music conditioning: 5-second slices every 2.5 seconds, each analysed on its own.

EDGE (``test.py``, ``data/slice.py``, ``data/audio_extraction/*``) never sees a song's features
as one sequence: it cuts the music into 5 s windows at a 2.5 s stride and extracts the features
of every slice separately -- a fresh Jukebox context per slice (``jukemirlib.extract`` on the
clip, layer 66, resampled to 30 fps) or the 35-d librosa set computed on the clip -- giving
``(150, C)`` per window. Those windows are what its long-form sampler denoises jointly
(in-painting the overlaps). This module reproduces that slicing with the pack's own extractors
(:func:`.features.extract_music_features` on each slice, so the feature cache serves repeats).

Deviation: EDGE uses full windows only and drops the song's tail. Here windows keep EDGE's exact
hop of half a window (its in-painting constraint needs it) and continue until the song is
covered; the last window's features past the end of the music repeat its last frame, and the
stitched dance is cut back to the song's length.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch

from ..errors import AudioError
from ..motion.edge.generate import window_count
from ..progress import NO_CONTROL, RunControl
from ..timeline import frame_count
from .features import extract_music_features
from .featureset import BASELINE, JUKEBOX

#: EDGE's window, seconds (5 s = 150 frames at 30 fps); windows start every half window (2.5 s).
EDGE_WINDOW_SECONDS = 5.0
EDGE_FPS = 30.0


@dataclass(frozen=True)
class EDGEWindows:
    """Per-window music features for EDGE.

    Attributes:
        features: ``(B, L, C)`` float32, one row of ``L = 150`` frames per window.
        starts: first frame (at 30 fps) of each window in the song.
        num_frames: frames the song covers at 30 fps (the dance's length).
    """

    features: torch.Tensor
    starts: tuple[int, ...]
    num_frames: int


def edge_window_starts(num_frames: int, window: int) -> list[int]:
    """Starts ``0, L/2, L, ...`` until a window reaches the last frame (the last may run past it)."""
    return [i * (window // 2) for i in range(window_count(num_frames, window))]


def edge_music_windows(audio: Mapping[str, Any], kind: str = JUKEBOX, *, fps: float = EDGE_FPS,
                       window_frames: int = round(EDGE_WINDOW_SECONDS * EDGE_FPS),
                       control: RunControl = NO_CONTROL, **extract: Any) -> EDGEWindows:
    """Slice ``audio`` (ComfyUI AUDIO, one song) as EDGE does and extract each slice's features.

    Args:
        kind: ``"jukebox"`` (EDGE's released checkpoint: layer 66, 4800-d) or ``"baseline"`` (35-d).
        fps, window_frames: the model's frame rate and window (its ``seq_len``; EDGE: 30 fps, 150);
            windows start every half window (EDGE's 2.5 s), which its in-painting needs.
        extract: passed to :func:`.features.extract_music_features` (layer, Jukebox paths, device,
            dtype, cache, extractor ...).
    Returns:
        :class:`EDGEWindows`; frames past the end of the music repeat the last one.
    """
    if kind not in (JUKEBOX, BASELINE):
        raise AudioError(f"EDGE reads 'jukebox' or 'baseline' features, got {kind!r}")
    sample_rate = int(audio["sample_rate"])
    total = frame_count(int(audio["waveform"].shape[-1]), sample_rate, fps)
    window = int(window_frames)
    if window < 2 or window % 2:
        raise AudioError(f"EDGE windows must hold an even number of frames >= 2, got {window}")
    if total < 1:
        raise AudioError(f"the music is shorter than one frame at {fps} fps")
    starts = edge_window_starts(total, window)
    rows = []
    for index, start in enumerate(starts):
        control.check_cancel()
        seconds = min(window, total - start) / fps
        music = extract_music_features(audio, kind=kind, fps=fps, start=start / fps, duration=seconds,
                                       control=control, **extract).features          # (<= L, C)
        if music.shape[0] < window:                                   # past the end of the music
            music = torch.cat([music, music[-1:].expand(window - music.shape[0], -1)])
        rows.append(music[:window])
        control.tick("edge music", index + 1, len(starts))
    return EDGEWindows(torch.stack(rows), tuple(starts), total)
