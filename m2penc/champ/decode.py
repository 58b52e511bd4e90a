"""Latents -> RGB frames with the VAE, a few frames at a time (Champ decodes one by one)."""
from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from ..errors import InputError
from ..progress import NO_CONTROL, RunControl


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, chunk_size: int = 1,
                   control: RunControl = NO_CONTROL) -> torch.Tensor:
    """Decode ``(B, 4, F, h, w)`` latents to frames ``(B*F, 8h, 8w, 3)`` float32 in [0, 1] on CPU.

    ``chunk_size`` frames go through the VAE at once; progress is reported as ``"decode"``.
    """
    if latents.ndim != 5:
        raise InputError(f"latents must be (B, C, F, h, w), got {tuple(latents.shape)}")
    if chunk_size < 1:
        raise InputError(f"chunk_size must be >= 1, got {chunk_size}")
    b, c, f, h, w = latents.shape
    flat = latents.transpose(1, 2).reshape(b * f, c, h, w) / vae.config.scaling_factor
    frames = []
    for start in range(0, flat.shape[0], chunk_size):
        chunk = flat[start:start + chunk_size].to(vae.device, vae.dtype)
        pixels = vae.decode(chunk).sample.float()
        frames.append(((pixels / 2 + 0.5).clamp(0, 1)).permute(0, 2, 3, 1).cpu())
        control.tick("decode", min(start + chunk_size, flat.shape[0]), flat.shape[0])
    return torch.cat(frames)
