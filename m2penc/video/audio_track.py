"""The music to mux: a ComfyUI AUDIO dict cut to start where the frames start, read in spans.

The frames of a dance are generated from the music starting at some offset (the node may skip an
intro). The soundtrack must start at that same offset, and it must end with the video: longer
music is trimmed, shorter music is padded with silence. The writer asks for sample spans as video
frames arrive (``span(a, b)``), so trimming and padding happen lazily and the audio is encoded
in step with the video.

Channels: mono and stereo are kept; with more than two channels the first two (front left/right
in FFmpeg's channel order) are kept, since AAC/Opus stereo is what players expect.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioTrack:
    """``samples`` is ``(C, S)`` float32 starting at the video's first frame; C is 1 or 2."""

    samples: np.ndarray
    sample_rate: int

    @property
    def layout(self) -> str:
        """FFmpeg channel layout name."""
        return "mono" if self.samples.shape[0] == 1 else "stereo"

    def span(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` as ``(C, stop - start)`` float32, zero past the music's end."""
        out = np.zeros((self.samples.shape[0], max(stop - start, 0)), dtype=np.float32)
        have = self.samples[:, start:stop]
        out[:, : have.shape[1]] = have
        return out


def _waveform(audio: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """``(C, S)`` float32 and sample rate from a ComfyUI AUDIO dict, validated."""
    if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
        raise InputError("audio must be a ComfyUI AUDIO dict {'waveform': [B, C, S] tensor, 'sample_rate': int}")
    waveform, rate = audio["waveform"], int(audio["sample_rate"])
    if not isinstance(waveform, torch.Tensor) or waveform.ndim != 3:
        shape = getattr(waveform, "shape", "")
        raise InputError(f"audio waveform must be a [B, C, S] tensor, got {type(waveform).__name__} {shape}")
    if waveform.shape[0] != 1:
        raise InputError(f"audio holds a batch of {waveform.shape[0]} tracks; pass a single track (batch 1)")
    if rate <= 0 or waveform.shape[1] < 1:
        raise InputError(
            f"audio needs >= 1 channel and a positive sample rate, got {waveform.shape[1]} ch at {rate} Hz"
        )
    samples = waveform[0, :2].detach().to(device="cpu", dtype=torch.float32).numpy()
    if not np.isfinite(samples).all():
        raise InputError("audio waveform contains NaN or infinite samples")
    return samples, rate


def audio_track_from_comfy(audio: Mapping[str, Any], start_s: float = 0.0) -> AudioTrack:
    """Cut a ComfyUI AUDIO dict so that sample 0 is the music at ``start_s`` seconds."""
    if start_s < 0:
        raise InputError(f"audio start offset must be >= 0 s, got {start_s}")
    samples, rate = _waveform(audio)
    first = int(round(start_s * rate))
    if first >= samples.shape[1]:
        log.warning("audio offset %.3f s is past the music's end (%.3f s): the video will be silent",
                    start_s, samples.shape[1] / rate)
    return AudioTrack(np.ascontiguousarray(samples[:, first:]), rate)
