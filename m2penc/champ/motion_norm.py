"""Per-frame GroupNorm for AnimateDiff motion modules: our one numerical divergence from diffusers.

diffusers' ``AnimateDiffTransformer3D`` applies its GroupNorm to a ``(B, C, F, H, W)`` tensor, so
the statistics are pooled over all frames. Champ (and the original AnimateDiff, whose weights
Champ fine-tuned) normalise every frame on its own (``(B F) C H W``). With identical weights the
two differ by up to ~1.3 on real inputs, so Champ's motion module needs the per-frame version.
:class:`FrameGroupNorm` subclasses ``nn.GroupNorm`` (same ``weight``/``bias`` keys) and is swapped
into diffusers' module instead of forking the file.
"""
from __future__ import annotations

import torch
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from torch import nn


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm that normalises each frame of a ``(B, C, F, H, W)`` input separately."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, F, H, W)`` (or any shape ``nn.GroupNorm`` takes); same shape out."""
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * f, c, h, w)
        return super().forward(frames).reshape(b, f, c, h, w).transpose(1, 2)


def use_frame_group_norm(module: nn.Module) -> None:
    """Replace the GroupNorm of every ``AnimateDiffTransformer3D`` inside ``module`` in place."""
    for motion in module.modules():
        if isinstance(motion, AnimateDiffTransformer3D):
            motion.norm = _frame_norm_like(motion.norm)


def _frame_norm_like(norm: nn.GroupNorm) -> FrameGroupNorm:
    new = FrameGroupNorm(norm.num_groups, norm.num_channels, norm.eps, norm.affine,
                         device=norm.weight.device, dtype=norm.weight.dtype)
    if not norm.weight.is_meta:
        new.load_state_dict(norm.state_dict())
    return new
