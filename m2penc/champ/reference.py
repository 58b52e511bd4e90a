"""The per-video reference state: VAE latent, CLIP embedding and ReferenceNet bank of the photo.

Computed once per video (Champ runs the ReferenceNet once, at timestep 0, and reuses the bank for
every step and window). Preprocessing follows Champ: the photo is resized to the generation size
and mapped to [-1, 1] for the VAE (``latent_dist.mean * scaling_factor``); for CLIP it is resized
to the encoder's square input and normalised with OpenAI's mean/std. We resize with antialiased
bicubic in torch where Champ uses PIL (Lanczos for the VAE, bicubic for CLIP).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import InputError
from .image_encoder import CLIP_MEAN, CLIP_STD
from .models import ChampModels


@dataclass
class ReferenceState:
    """What the denoiser needs from the reference photo.

    Attributes:
        latents: ``(1, 4, h, w)`` scaled VAE latents.
        image_embeds: ``(1, 1, D)`` CLIP image embeddings (cross-attention context).
        bank: spatial block path -> ``(1, L, C)`` ReferenceNet tokens (``bank_dtype``).
    """

    latents: torch.Tensor
    image_embeds: torch.Tensor
    bank: dict[str, torch.Tensor]


def _check_image(image: torch.Tensor) -> None:
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise InputError(f"reference image must be (1, 3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point() or image.min() < 0 or image.max() > 1:
        raise InputError("reference image must be a float tensor in [0, 1]")


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


@torch.no_grad()
def encode_image_latents(models: ChampModels, image: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` in [0, 1] -> ``(1, 4, H/8, W/8)`` scaled latents (distribution mean)."""
    pixels = (image * 2 - 1).to(models.device, models.vae.dtype)
    return models.vae.encode(pixels).latent_dist.mean * models.vae.config.scaling_factor


@torch.no_grad()
def encode_clip_image(models: ChampModels, image: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` in [0, 1] -> ``(1, 1, D)`` projected CLIP image embeddings."""
    side = models.image_encoder.config.image_size
    pixels = _resize(image, (side, side))
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(1, 3, 1, 1)
    pixels = ((pixels - mean) / std).to(models.device, models.image_encoder.dtype)
    return models.image_encoder(pixel_values=pixels).image_embeds.unsqueeze(1)


def reference_state_from_latents(models: ChampModels, latents: torch.Tensor, image_embeds: torch.Tensor,
                                 bank_dtype: torch.dtype = torch.float16) -> ReferenceState:
    """Run the ReferenceNet on given latents ``(1, 4, h, w)`` and embeds ``(1, 1, D)``."""
    latents = latents.to(models.device, models.dtype)
    image_embeds = image_embeds.to(models.device, models.dtype)
    bank = models.reference_unet.write_bank(latents, image_embeds, bank_dtype)
    return ReferenceState(latents=latents, image_embeds=image_embeds, bank=bank)


def encode_reference(models: ChampModels, image: torch.Tensor, height: Optional[int] = None,
                     width: Optional[int] = None, bank_dtype: torch.dtype = torch.float16) -> ReferenceState:
    """Encode the reference photo once per video.

    Args:
        image: ``(1, 3, H, W)`` float in [0, 1].
        height, width: generation size in pixels (multiples of 8); default: the image's own size.
        bank_dtype: dtype of the reference bank (Champ: float16).
    """
    _check_image(image)
    height, width = height or image.shape[-2], width or image.shape[-1]
    if height % 8 or width % 8:
        raise InputError(f"height and width must be multiples of 8, got {height} and {width}")
    latents = encode_image_latents(models, _resize(image, (height, width)))
    return reference_state_from_latents(models, latents, encode_clip_image(models, image), bank_dtype)
