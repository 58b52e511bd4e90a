"""Long music: context windows over the token sequence, FFT resampling, crossfade stitching.

The prior sees at most ``n_ctx`` tokens (8192 = 23.8 s). Longer music is cut into windows on
the *frame* grid: every window spans ``M`` whole output frames (M = floor(n_ctx * fps / rate)),
starts on a frame boundary (its first token is the nearest one, at most half a token = 1.45 ms
off) and holds ``floor(M * rate / fps)`` tokens, so librosa's FFT resampling of one window lands
on the global frame grid with < 0.05 frame drift. Each window is processed like a jukemirlib
clip (fresh context from position 0). Consecutive windows overlap by at least
``overlap_frames``; in an overlap the output moves linearly from the earlier window to the later
one, so features are continuous at seams and FFT edge ringing gets little weight. Outside
overlaps the output is exactly one window's single-pass result.

Music that fits one window is a single pass, identical to jukemirlib.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import librosa
import numpy as np

from ..errors import InputError
from ..sampling.windows import crossfade_weights, window_starts


@dataclass(frozen=True)
class Window:
    """Tokens ``[token_start, +token_count)`` give output frames ``[frame_start, +frame_count)``."""

    token_start: int
    token_count: int
    frame_start: int
    frame_count: int


def plan_windows(n_tokens: int, n_frames: int, token_rate: float, fps: float, max_tokens: int,
                 overlap_frames: int) -> list[Window]:
    """Windows covering ``n_frames`` frames; one window if all tokens fit in ``max_tokens``."""
    if n_tokens <= max_tokens:
        return [Window(0, n_tokens, 0, n_frames)]
    frames_per_window = math.floor(max_tokens * fps / token_rate)
    hop = frames_per_window - overlap_frames
    if hop < 1:
        raise InputError(
            f"overlap of {overlap_frames} frames leaves no hop in windows of {frames_per_window} frames "
            f"({max_tokens} tokens at {fps} fps); use a smaller overlap"
        )
    starts = window_starts(n_frames, frames_per_window, hop)
    tokens_per_window = math.floor(frames_per_window * token_rate / fps)
    windows = []
    for start in starts:
        token_start = min(round(start * token_rate / fps), n_tokens - 1)
        windows.append(Window(token_start, min(tokens_per_window, n_tokens - token_start), start, frames_per_window))
    return windows


def resample_to_fps(features: np.ndarray, token_rate: float, fps: float, n_frames: int) -> np.ndarray:
    """(T, C) at ``token_rate`` -> (n_frames, C) at ``fps`` by librosa FFT resampling (jukemirlib's
    ``downsample``), cropped -- or, if one frame short from rounding, edge-padded -- to n_frames."""
    resampled = librosa.resample(np.asfortranarray(features.T), orig_sr=token_rate, target_sr=fps,
                                 res_type="fft").T  # (ceil(T * fps / rate), C)
    if len(resampled) < n_frames:
        resampled = np.pad(resampled, ((0, n_frames - len(resampled)), (0, 0)), mode="edge")
    return np.ascontiguousarray(resampled[:n_frames], dtype=np.float32)


class FrameStitcher:
    """Accumulates per-window frames (in increasing start order) into one (n_frames, C) array."""

    def __init__(self, n_frames: int, channels: int) -> None:
        self.out = np.zeros((n_frames, channels), dtype=np.float32)
        self._end = 0

    def add(self, frames: np.ndarray, frame_start: int) -> None:
        """Place (F, C) frames at ``frame_start``, crossfading with what is already there."""
        if frame_start > self._end:
            raise ValueError(f"gap in windows: frame {self._end} .. {frame_start} not covered")
        overlap = min(self._end - frame_start, len(frames))
        if overlap > 0:
            w = crossfade_weights(overlap).numpy()[:, None]
            region = slice(frame_start, frame_start + overlap)
            self.out[region] = (1 - w) * self.out[region] + w * frames[:overlap]
        self.out[frame_start + overlap: frame_start + len(frames)] = frames[overlap:]
        self._end = max(self._end, frame_start + len(frames))

    def result(self) -> np.ndarray:
        if self._end != len(self.out):
            raise ValueError(f"windows covered {self._end} of {len(self.out)} frames")
        return self.out
