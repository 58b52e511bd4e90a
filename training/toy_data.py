"""A synthetic stage-1 dataset whose targets are a learnable function of the features.

Real stage-1 data needs the SDGPip (SMPL renders + DWPose + Champ's guidance encoder over
AIST++/EDGE motions), none of which can ship with the pack. This module writes shards in the
real format (:mod:`.datasets`) so the whole pipeline (data -> training -> weights the ComfyUI
loader reads) can be exercised anywhere in seconds:

* features ``(N, D)``: a smooth AR(1) random process per column (music features change slowly
  at 15 fps), so temporal context is informative;
* guidance ``(N, C_guid, G, G)`` = ``tanh(a_c * reshape(W f_t) + b_c)``: one fixed random
  projection ``W`` to a G x G map (M2PEnc's own FC + reshape), then a fixed per-channel affine
  map, shared by every shard so it can be learnt;
* heatmaps ``(N, C_heat, G, G)``: Gaussian blobs at keypoints ``(G - 1) * sigmoid(P f_t)``, a
  second fixed projection, so keypoints move with the features.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch

from ..m2penc.encoder.config import M2PEncConfig
from ..m2penc.errors import InputError
from ..m2penc.pose.heatmaps import DEFAULT_SIGMA, keypoints_to_heatmaps
from .datasets import write_shard

PathLike = Union[str, os.PathLike]
#: Correlation of consecutive feature frames.
SMOOTHNESS = 0.9
#: Seed offset of the target projections, so they are the same for any data seed.
_PROJECTION_SEED = 12345


def _smooth_features(frames: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """``(frames, dim)`` unit-variance AR(1) process with correlation :data:`SMOOTHNESS`."""
    noise = torch.randn(frames, dim, generator=generator)
    out = torch.empty_like(noise)
    out[0] = noise[0]
    scale = (1 - SMOOTHNESS**2) ** 0.5
    for t in range(1, frames):
        out[t] = SMOOTHNESS * out[t - 1] + scale * noise[t]
    return out


def toy_targets(features: torch.Tensor, model: M2PEncConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Guidance ``(N, C_guid, G, G)`` and heatmaps ``(N, C_heat, G, G)`` for ``(N, D)`` features."""
    g, k, c = model.grid_size, model.heatmap_channels, model.guidance_channels
    gen = torch.Generator().manual_seed(_PROJECTION_SEED)
    w_map = torch.randn(g * g, model.in_dim, generator=gen) / model.in_dim**0.5
    scale, shift = torch.randn(c, 1, 1, generator=gen), 0.5 * torch.randn(c, 1, 1, generator=gen)
    w_keys = torch.randn(2 * k, model.in_dim, generator=gen) / model.in_dim**0.5
    base = (features @ w_map.T).reshape(-1, 1, g, g)                            # (N, 1, G, G)
    guidance = torch.tanh(scale * base + shift)                                 # (N, C_guid, G, G)
    xy = (g - 1) * torch.sigmoid(2 * features @ w_keys.T).reshape(-1, k, 2)
    keypoints = torch.cat([xy, torch.ones_like(xy[..., :1])], dim=-1)          # (N, K, 3)
    sigma = max(1.0, DEFAULT_SIGMA * g / 64)
    return guidance, keypoints_to_heatmaps(keypoints, g, g, sigma=sigma)


def make_toy_data(out_dir: PathLike, model: M2PEncConfig, num_shards: int = 2, frames_per_shard: int = 90,
                  seed: int = 0, guidance_dtype: torch.dtype = torch.float16) -> list[Path]:
    """Write ``num_shards`` toy shards for ``model``'s shapes into ``out_dir``; returns their paths."""
    if num_shards < 1 or frames_per_shard < 1:
        raise InputError(f"need >= 1 shard of >= 1 frame, got {num_shards} x {frames_per_shard}")
    out_dir = Path(out_dir)
    generator = torch.Generator().manual_seed(seed)
    paths = []
    for index in range(num_shards):
        features = _smooth_features(frames_per_shard, model.in_dim, generator)
        guidance, heatmaps = toy_targets(features, model)
        paths.append(write_shard(out_dir / f"toy_{index:04d}.safetensors", features, guidance.to(guidance_dtype),
                                 heatmaps.to(guidance_dtype), fps=model.fps, feature_kind=model.feature_kind))
    return paths
