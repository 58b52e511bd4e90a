"""Champ's guidance encoder: RGB guidance frames -> ``guidance_fea`` at latent resolution.

One encoder per guidance type (depth, normal, semantic_map, dwpose); their outputs are summed.
Layout (Champ, ``GuidanceEncoder``): ``conv_in`` 3x3 + SiLU, then 6 convs each followed by SiLU
(every second one stride 2: 8x downsampling), then ONLY the last spatial transformer
(``attentions[-1]``, self-attention over the pixels of each frame), then ``conv_out`` 3x3.
``attentions[0..4]`` and ``guidance_attention`` exist in Champ's checkpoints but are unused
(Champ: "FIXME: temporarily only use the last attention"); we keep them so the keys match.
All ops are per frame. The spatial transformers are diffusers' ``Transformer2DModel`` without
cross-attention, whose keys equal Champ's ``Transformer3DModel``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from .config import GuidanceEncoderConfig
from .video_layout import batch_to_frames, frames_to_batch


def _spatial_transformer(channels: int, heads: int, groups: int) -> Transformer2DModel:
    return Transformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=channels // heads,
        in_channels=channels,
        norm_num_groups=groups,
        cross_attention_dim=None,
    )


class GuidanceEncoder(nn.Module):
    """RGB frames ``(B, 3, F, H, W)`` in [0, 1] -> features ``(B, C0, F, H/8, W/8)``."""

    def __init__(self, config: GuidanceEncoderConfig) -> None:
        super().__init__()
        self.m2p_config = config
        chans, heads = config.block_out_channels, config.num_attention_heads
        self.conv_in = nn.Conv2d(config.input_channels, chans[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        self.attentions = nn.ModuleList()
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            self.blocks.append(nn.Conv2d(c_in, c_in, kernel_size=3, padding=1))
            self.attentions.append(_spatial_transformer(c_in, heads, groups=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=2))
            self.attentions.append(_spatial_transformer(c_out, heads, groups=32))
        self.guidance_attention = _spatial_transformer(chans[-1], heads, groups=32)
        self.conv_out = nn.Conv2d(chans[-1], config.embedding_channels, kernel_size=3, padding=1)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        """``condition``: ``(B, 3, F, H, W)``, H and W divisible by 8 -> ``(B, C0, F, H/8, W/8)``."""
        batch = condition.shape[0]
        x = F.silu(self.conv_in(frames_to_batch(condition)))
        for block in self.blocks:
            x = F.silu(block(x))
        x = self.attentions[-1](x, return_dict=False)[0]
        return batch_to_frames(self.conv_out(x), batch)
