"""Guidance providers: where the sampler gets ``guidance_fea`` for the frames of a segment.

The sampler asks for guidance per segment (``frames -> (B, C, F, h, w)``), so a provider may
compute it lazily (run the music encoder on just those frames) and memory stays bounded. When
the whole sequence already exists as one tensor (e.g. a ComfyUI input), :func:`guidance_from_tensor`
slices it.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .segments import GuidanceFn


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
