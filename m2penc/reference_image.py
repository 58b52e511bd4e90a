"""The reference photo as users really supply it: any size, RGBA, grayscale, a batch.

ComfyUI hands images over as IMAGE ``(B, H, W, C)`` float in [0, 1]. Champ wants one RGB image
``(1, 3, H, W)`` at the generation size. Here: the first image of a batch is used; an alpha
channel is composited over white (a transparent background must not turn black); one channel
is repeated to RGB; the photo is centre-cropped to the target aspect ratio and resized, so a
person is never stretched. Tiny or broken images are refused with the fix in the message.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import InputError

#: Smallest reference side accepted, in pixels (the VAE downsamples by 8; CLIP sees 224).
MIN_REFERENCE_SIDE = 32


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """IMAGE ``(B, H, W, C)`` with C in {1, 2, 3, 4} -> ``(B, H, W, 3)``; alpha composited over white."""
    if image.ndim == 3:
        image = image[..., None]
    if image.ndim != 4:
        raise InputError(f"reference image must be an IMAGE (batch, height, width, channels), got {tuple(image.shape)}")
    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels == 1:
        return image.expand(*image.shape[:-1], 3)
    if channels in (2, 4):
        color, alpha = image[..., :-1], image[..., -1:].clamp(0, 1)
        color = color.expand(*color.shape[:-1], 3) if color.shape[-1] == 1 else color
        return color * alpha + (1.0 - alpha)
    raise InputError(f"reference image has {channels} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")


def fit_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(1, 3, H, W)`` -> centre crop to ``width/height`` aspect, then antialiased resize."""
    _, _, h, w = image.shape
    target = width / height
    if w / h > target:
        new_w = max(1, round(h * target))
        left = (w - new_w) // 2
        image = image[..., left:left + new_w]
    else:
        new_h = max(1, round(w / target))
        top = (h - new_h) // 2
        image = image[..., top:top + new_h, :]
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def prepare_reference(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """ComfyUI IMAGE -> Champ reference ``(1, 3, height, width)`` float32 in [0, 1]."""
    if height % 8 or width % 8:
        raise InputError(f"video size must be multiples of 8, got {width}x{height}")
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise InputError(f"reference image must be a float tensor (ComfyUI IMAGE), got {type(image).__name__}")
    rgb = to_rgb(image.float())[:1]
    if min(rgb.shape[1:3]) < MIN_REFERENCE_SIDE:
        raise InputError(f"reference image is {rgb.shape[2]}x{rgb.shape[1]} pixels; use a photo of at least "
                         f"{MIN_REFERENCE_SIDE}x{MIN_REFERENCE_SIDE} (ideally the video size, e.g. 512x512)")
    if not torch.isfinite(rgb).all():
        raise InputError("reference image contains NaN or infinite values")
    return fit_crop(rgb.clamp(0, 1).permute(0, 3, 1, 2).contiguous(), height, width)
