"""Champ's pose-driven mode as a guidance source: rendered maps encoded a segment at a time.

:class:`PoseMapGuidance` holds per-frame depth / normal / semantic / skeleton maps (ComfyUI IMAGE
batches) and, when the sampler asks for a frame range, runs the guidance encoders it was given on
just those frames and sums them (:func:`.pose_guidance.encode_with`), so memory follows the
segment, not the song.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..encoder.guidance import resize_guidance
from ..errors import InputError
from .guidance_encoder import GuidanceEncoder
from .pose_guidance import encode_with

#: Frames per guidance-encoder pass.
DEFAULT_CHUNK = 16


class PoseMapGuidance:
    """A :class:`..sampling.GuidanceSource` over Champ-style guidance maps.

    Args:
        encoders: guidance type -> Champ guidance encoder (their outputs are summed).
        maps: guidance type -> uint8 or float maps ``(F, H, W, 3)`` (ComfyUI IMAGE layout).
        fps: frame rate of the maps.
        chunk_size: frames per encoder pass.
    """

    def __init__(self, encoders: Mapping[str, GuidanceEncoder], maps: Mapping[str, torch.Tensor], fps: float,
                 chunk_size: int = DEFAULT_CHUNK):
        if not maps:
            raise InputError("pose-driven guidance needs at least one of depth, normal, semantic_map, dwpose")
        missing = sorted(set(maps) - set(encoders))
        if missing:
            raise InputError(f"no Champ guidance encoder loaded for {missing}; loaded: {sorted(encoders)}")
        sizes = {name: tuple(m.shape[1:]) for name, m in maps.items()}
        bad = {n: s for n, s in sizes.items() if len(s) != 3 or s[2] != 3 or s[0] % 8 or s[1] % 8}
        if bad or len(set(sizes.values())) != 1:
            raise InputError(f"guidance map batches must be RGB images (frames, height, width, 3) of one size, "
                             f"height and width multiples of 8; got (height, width, channels) {sizes}: resize them "
                             "(e.g. to the video size) and drop any alpha channel")
        counts = {name: int(m.shape[0]) for name, m in maps.items()}
        if len(set(counts.values())) != 1:
            raise InputError(f"all guidance map batches must have the same number of frames, got {counts}")
        self.encoders = {name: encoders[name] for name in maps}
        self.maps = dict(maps)
        self.fps = float(fps)
        self.num_frames = next(iter(counts.values()))
        self.channels = int(next(iter(self.encoders.values())).m2p_config.embedding_channels)
        self.chunk_size = chunk_size

    def frames(self, indices: torch.Tensor, latent_hw: tuple[int, int], device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
        """Guidance ``(1, C, len(indices), h, w)`` for timeline frames ``indices``."""
        idx = indices.long().cpu()
        chosen = {}
        for name, maps in self.maps.items():
            frames = maps[idx]
            if not frames.is_floating_point():
                frames = frames.float() / 255.0
            chosen[name] = frames.permute(0, 3, 1, 2).contiguous()     # (F, 3, H, W)
        guidance = encode_with(self.encoders, chosen, self.chunk_size)
        return resize_guidance(guidance.float(), latent_hw).to(device=device, dtype=dtype)
