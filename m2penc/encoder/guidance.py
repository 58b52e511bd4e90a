"""Pose guidance at the diffusion latent size: the one place where it is resized.

M2PEnc predicts guidance on its fixed 64 x 64 grid. Champ adds ``guidance_fea`` ``(B, 320, F,
h, w)`` to the denoising UNet's ``conv_in`` output at the latent resolution, 1/8 of the image:
64 x 64 for 512 x 512 video, 80 x 80 for the paper's 640 x 640. Everything that feeds Champ goes
through :func:`resize_guidance` (bilinear, per frame).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from ..errors import InputError

#: Stable Diffusion's VAE downsamples by 8.
VAE_SCALE_FACTOR = 8


def latent_size_for(height: int, width: int) -> tuple[int, int]:
    """Latent ``(h, w)`` of a ``height x width`` video (both must be multiples of 8)."""
    if height % VAE_SCALE_FACTOR or width % VAE_SCALE_FACTOR or height <= 0 or width <= 0:
        raise InputError(f"video size must be positive multiples of {VAE_SCALE_FACTOR}, got {width}x{height}")
    return height // VAE_SCALE_FACTOR, width // VAE_SCALE_FACTOR


def resize_guidance(guidance: torch.Tensor, size: tuple[int, int], antialias: bool = False) -> torch.Tensor:
    """``(B, C, F, H, W) -> (B, C, F, h, w)`` by bilinear resampling of every frame.

    ``antialias``: low-pass first when shrinking (``F.interpolate``'s antialias), for targets
    brought down to a coarser grid; upsampling is unaffected.
    """
    if guidance.ndim != 5:
        raise InputError(f"guidance must be (B, C, F, H, W), got {tuple(guidance.shape)}")
    if tuple(guidance.shape[-2:]) == tuple(size):
        return guidance
    b = guidance.shape[0]
    frames = rearrange(guidance, "b c f h w -> (b f) c h w")
    frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return rearrange(frames, "(b f) c h w -> b c f h w", b=b)


def to_guidance_fea(guidance: torch.Tensor, height: int, width: int,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """M2PEnc guidance as Champ's ``guidance_fea``: ``(B, 320, F, height/8, width/8)``, contiguous."""
    out = resize_guidance(guidance, latent_size_for(height, width))
    return out.to(dtype=dtype or out.dtype).contiguous()
