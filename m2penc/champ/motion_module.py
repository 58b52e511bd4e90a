"""A stand-alone Champ/AnimateDiff-v2 motion module (temporal transformer over frames).

Inside the denoising U-Net the motion modules are diffusers' own blocks (see
:mod:`.denoising_unet`); this class exposes one module on its own, with the same per-frame
GroupNorm, for tests and tools. Keys follow diffusers' ``AnimateDiffTransformer3D``; Champ's
names are converted by :func:`.keymap.champ_to_m2p_keys`.
"""
from __future__ import annotations

import torch
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

from ..errors import InputError
from .config import MotionModuleConfig
from .motion_norm import use_frame_group_norm
from .video_layout import batch_to_frames, frames_to_batch


class MotionModule(AnimateDiffTransformer3D):
    """Temporal self-attention x2 + GEGLU feed-forward with sinusoidal frame positions."""

    def __init__(self, config: MotionModuleConfig) -> None:
        super().__init__(
            num_attention_heads=config.num_attention_heads,
            attention_head_dim=config.channels // config.num_attention_heads,
            in_channels=config.channels,
            num_layers=config.num_layers,
            norm_num_groups=config.norm_num_groups,
            cross_attention_dim=None,
            attention_bias=False,
            activation_fn="geglu",
            double_self_attention=True,
            positional_embeddings="sinusoidal",
            num_positional_embeddings=config.max_seq_length,
        )
        self.m2p_config = config
        use_frame_group_norm(self)

    def forward_video(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, F, H, W)`` with ``F <= max_seq_length`` -> same shape (residual included)."""
        b, _, f, _, _ = x.shape
        if f > self.m2p_config.max_seq_length:
            raise InputError(f"a motion module sees at most {self.m2p_config.max_seq_length} frames, got {f}")
        return batch_to_frames(self(frames_to_batch(x), num_frames=f), b)
