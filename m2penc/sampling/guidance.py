"""The sampler's guidance contract: where ``guidance_fea`` for the frames of a segment comes from.

Two shapes of the same idea:

* :class:`GuidanceSource` -- what flows between nodes as POSE_GUIDANCE: it knows ``num_frames``,
  ``fps`` and ``channels`` and computes the guidance of any frame range when asked, so a source
  may run its encoder lazily and memory never grows with the song. Implementations:
  :class:`..encoder.streaming.M2PEncGuidance` (music) and
  :class:`..champ.pose_map_guidance.PoseMapGuidance` (Champ's rendered maps).
* :data:`GuidanceFn` -- what the segment loop calls: ``frames (F,) -> (B, C, F, h, w)``; a source
  becomes one by fixing the latent size, device and dtype; :func:`guidance_from_tensor` slices an
  existing tensor.
"""
from __future__ import annotations

from typing import Callable, Optional, Protocol

import torch

from ..errors import InputError

#: ``frame_indices (F,) long -> guidance (B, C, F, h, w)`` for those timeline frames, or ``None``.
GuidanceFn = Callable[[torch.Tensor], Optional[torch.Tensor]]


class GuidanceSource(Protocol):
    """Per-frame pose guidance for the diffusion U-Net, computed on request."""

    num_frames: int
    fps: float
    channels: int

    def frames(self, indices: torch.Tensor, latent_hw: tuple[int, int], device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
        """Guidance ``(1, channels, len(indices), h, w)`` for timeline frames ``indices`` (sorted)."""


def guidance_from_tensor(guidance_fea: torch.Tensor) -> GuidanceFn:
    """A provider slicing ``guidance_fea`` ``(B, C, N, h, w)`` along frames (kept where it lives)."""
    if guidance_fea.ndim != 5:
        raise InputError(f"guidance_fea must be (B, C, N, h, w), got {tuple(guidance_fea.shape)}")
    num_frames = guidance_fea.shape[2]

    def provide(frames: torch.Tensor) -> torch.Tensor:
        if int(frames.max()) >= num_frames:
            raise InputError(f"guidance covers {num_frames} frames but frame {int(frames.max())} was requested")
        return guidance_fea.index_select(2, frames.to(guidance_fea.device))

    return provide
