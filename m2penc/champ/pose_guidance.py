"""Champ's original pose-driven mode: rendered guidance maps -> ``guidance_fea``.

Each map sequence goes through its own :class:`.guidance_encoder.GuidanceEncoder` and the
results are summed (stacked in Champ's type order, then summed). Maps are RGB, uint8 (divided by
255) or float in [0, 1]; Champ feeds them without [-1, 1] normalisation.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch

from ..errors import InputError
from .config import GUIDANCE_TYPES
from .guidance_encoder import GuidanceEncoder
from .models import ChampModels


def _to_unit_float(maps: torch.Tensor, name: str) -> torch.Tensor:
    if maps.dtype == torch.uint8:
        return maps.float() / 255.0
    if not maps.is_floating_point():
        raise InputError(f"guidance maps {name!r} must be uint8 or float, got {maps.dtype}")
    if maps.min() < 0 or maps.max() > 1:
        raise InputError(f"float guidance maps {name!r} must be in [0, 1]")
    return maps.float()


def _check_maps(encoders: Mapping[str, GuidanceEncoder], maps: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    if not maps:
        raise InputError("at least one guidance map sequence is needed")
    missing = sorted(set(maps) - set(encoders))
    if missing:
        raise InputError(f"no guidance encoder loaded for {missing}; loaded: {sorted(encoders)}")
    shapes = {tuple(m.shape) for m in maps.values()}
    shape = next(iter(shapes))
    if len(shapes) != 1 or len(shape) != 4 or shape[1] != 3 or shape[2] % 8 or shape[3] % 8:
        raise InputError(f"guidance maps must all be (F, 3, H, W) with H, W multiples of 8, got {sorted(shapes)}")
    return shape


@torch.no_grad()
def encode_with(encoders: Mapping[str, GuidanceEncoder], maps: Mapping[str, torch.Tensor],
                chunk_size: Optional[int] = None) -> torch.Tensor:
    """:func:`sum_of_encoders` without gradients (inference)."""
    return sum_of_encoders(encoders, maps, chunk_size)


def sum_of_encoders(encoders: Mapping[str, GuidanceEncoder], maps: Mapping[str, torch.Tensor],
                    chunk_size: Optional[int] = None) -> torch.Tensor:
    """Sum of ``encoders``' outputs over ``maps`` (each encoder's own device and dtype), keeping the graph
    when gradients are on (Champ's image stage trains the encoders).

    Args:
        encoders: guidance type -> Champ guidance encoder; every type in ``maps`` needs one.
        maps: guidance type -> frames ``(F, 3, H, W)``, uint8 or float in [0, 1].
        chunk_size: frames encoded per pass (bounds memory); ``None`` = all at once.

    Returns:
        ``guidance_fea`` ``(1, C0, F, H/8, W/8)`` in the encoders' dtype and device.
    """
    num_frames = _check_maps(encoders, maps)[0]
    step = chunk_size or num_frames
    features = []
    for name in [t for t in GUIDANCE_TYPES if t in maps]:
        encoder = encoders[name]
        param = next(encoder.parameters())
        frames = _to_unit_float(maps[name], name).to(param.device, param.dtype)
        video = frames.permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, F, H, W)
        chunks = [encoder(video[:, :, s:s + step]) for s in range(0, num_frames, step)]
        features.append(torch.cat(chunks, dim=2))
    return torch.stack(features).sum(0)


def encode_pose_guidance(models: ChampModels, maps: Mapping[str, torch.Tensor],
                         chunk_size: Optional[int] = None) -> torch.Tensor:
    """:func:`encode_with` the guidance encoders of ``models``: ``(1, C0, F, H/8, W/8)``."""
    return encode_with(models.guidance_encoders, maps, chunk_size)
