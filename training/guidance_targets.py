"""Pose-guidance targets computed while training, on the training device, by Champ's frozen encoders.

The paper's L_guid compares M2PEnc's output with Champ's pose guidance: the sum of the four guidance
encoders over the depth, normal, semantic and DWPose maps of the frame. Storing that guidance costs
320 x 64 x 64 x 2 B = 2.6 MB per frame (1.5 TB for the paper's 560k frames), so SDGPip stores the
maps as PNGs (tens of kB) and :class:`GuidanceTargets` encodes a batch's maps right before the loss,
without gradients, in the encoders' own dtype. The encoders are not part of the trained model.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from einops import rearrange

from ..m2penc.champ.config import GUIDANCE_TYPES
from ..m2penc.champ.guidance_encoder import GuidanceEncoder
from ..m2penc.champ.pose_guidance import sum_of_encoders
from ..m2penc.errors import InputError

#: Order of the maps in a batch's ``maps`` tensor: Champ's guidance types.
MAP_ORDER: tuple[str, ...] = GUIDANCE_TYPES


class GuidanceTargets:
    """``maps (B, L, 4, H, W, 3) uint8 -> guidance (B, L, C, H/8, W/8)`` float32, no gradients.

    Args:
        encoders: Champ guidance type -> frozen encoder, for every type in :data:`MAP_ORDER`.
        chunk_frames: frames per encoder pass (bounds activation memory).
    """

    def __init__(self, encoders: Mapping[str, GuidanceEncoder], chunk_frames: int = 64):
        missing = [t for t in MAP_ORDER if t not in encoders]
        if missing:
            raise InputError(f"guidance targets need Champ's encoders for {list(MAP_ORDER)}; missing {missing}")
        self.encoders = {t: encoders[t].eval().requires_grad_(False) for t in MAP_ORDER}
        self.chunk_frames = chunk_frames
        first = self.encoders[MAP_ORDER[0]]
        self.channels = int(first.m2p_config.embedding_channels)

    @property
    def device(self) -> torch.device:
        """Where the encoders are."""
        return next(self.encoders[MAP_ORDER[0]].parameters()).device

    def to(self, device: torch.device) -> "GuidanceTargets":
        """Move the encoders to ``device`` (keeping their dtype)."""
        for encoder in self.encoders.values():
            encoder.to(device)
        return self

    @torch.no_grad()
    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        """``maps (B, L, 4, H, W, 3)`` uint8 in :data:`MAP_ORDER` -> guidance ``(B, L, C, H/8, W/8)`` float32."""
        with torch.autocast(maps.device.type, enabled=False):     # targets in the encoders' own precision
            return encode_maps(self.encoders, maps, self.chunk_frames).float()


def encode_maps(encoders: Mapping[str, GuidanceEncoder], maps: torch.Tensor,
                chunk_frames: Optional[int] = None) -> torch.Tensor:
    """Champ's pose guidance of a batch of stored maps, keeping the graph (the image stage trains the encoders).

    Args:
        encoders: guidance type -> encoder, for every type in :data:`MAP_ORDER`.
        maps: ``(B, L, 4, H, W, 3)`` uint8 in :data:`MAP_ORDER` (H and W multiples of 8).
        chunk_frames: frames per encoder pass (``None``: all at once).
    Returns:
        ``(B, L, C, H/8, W/8)`` in the encoders' dtype: the sum of the four encoders' outputs.
    """
    if maps.ndim != 6 or maps.shape[2] != len(MAP_ORDER) or maps.shape[-1] != 3 or maps.dtype != torch.uint8:
        raise InputError(f"maps must be uint8 (B, L, {len(MAP_ORDER)}, H, W, 3), "
                         f"got {maps.dtype} {tuple(maps.shape)}")
    batch, length = maps.shape[:2]
    frames = rearrange(maps, "b l k h w c -> k (b l) c h w")
    named = {t: frames[i] for i, t in enumerate(MAP_ORDER)}
    guidance = sum_of_encoders(encoders, named, chunk_size=chunk_frames)              # (1, C, B*L, G, G)
    return rearrange(guidance[0], "c (b l) h w -> b l c h w", b=batch, l=length)
