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
from .models import ChampModels


def _to_unit_float(maps: torch.Tensor, name: str) -> torch.Tensor:
    if maps.dtype == torch.uint8:
        return maps.float() / 255.0
    if not maps.is_floating_point():
        raise InputError(f"guidance maps {name!r} must be uint8 or float, got {maps.dtype}")
    if maps.min() < 0 or maps.max() > 1:
        raise InputError(f"float guidance maps {name!r} must be in [0, 1]")
    return maps.float()


def _check_maps(models: ChampModels, maps: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    if not maps:
        raise InputError("at least one guidance map sequence is needed")
    missing = sorted(set(maps) - set(models.guidance_encoders))
    if missing:
        raise InputError(f"no guidance encoder loaded for {missing}; loaded: {sorted(models.guidance_encoders)}")
    shapes = {tuple(m.shape) for m in maps.values()}
    shape = next(iter(shapes))
    if len(shapes) != 1 or len(shape) != 4 or shape[1] != 3 or shape[2] % 8 or shape[3] % 8:
        raise InputError(f"guidance maps must all be (F, 3, H, W) with H, W multiples of 8, got {sorted(shapes)}")
    return shape


@torch.no_grad()
def encode_pose_guidance(models: ChampModels, maps: Mapping[str, torch.Tensor],
                         chunk_size: Optional[int] = None) -> torch.Tensor:
    """Sum of the guidance encoders' outputs.

    Args:
        maps: guidance type -> frames ``(F, 3, H, W)``, uint8 or float in [0, 1].
        chunk_size: frames encoded per pass (bounds memory); ``None`` = all at once.

    Returns:
        ``guidance_fea`` ``(1, C0, F, H/8, W/8)`` in the models' dtype and device.
    """
    num_frames = _check_maps(models, maps)[0]
    step = chunk_size or num_frames
    features = []
    for name in [t for t in GUIDANCE_TYPES if t in maps]:
        frames = _to_unit_float(maps[name], name).to(models.device, models.dtype)
        video = frames.permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, F, H, W)
        encoder = models.guidance_encoders[name]
        chunks = [encoder(video[:, :, s:s + step]) for s in range(0, num_frames, step)]
        features.append(torch.cat(chunks, dim=2))
    return torch.stack(features).sum(0)
