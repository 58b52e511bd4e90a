"""Champ in the long-video sampler: a dance of any length, segment by segment, into a frame sink.

The segment loop (:mod:`..sampling`) only knows a window-level predictor; this plugs in Champ's
U-Net with CFG (:func:`.sampler.champ_predictor`) and the VAE decoder, asks the guidance source
for each segment's frames at the reference's latent size, and checks up front that the guidance
and the context windows fit the model. The reference photo is encoded once per video by the
caller (:func:`.reference.encode_reference`) and serves every segment and window. Latents stay
float32 between steps (as in Champ's sampler); only the U-Net runs in the models' dtype.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import InputError
from ..progress import NO_CONTROL, RunControl
from ..sampling import FrameSink, GuidanceSource, LongVideoOptions, render_long_video
from .decode import decode_latents
from .models import ChampModels
from .reference import ReferenceState
from .sampler import CHAMP_GUIDANCE_SCALE, champ_predictor, check_context_size, make_scheduler


def check_guidance_fits(models: ChampModels, guidance: GuidanceSource) -> None:
    """The guidance channels must equal the U-Net's ``conv_in`` width (320 for SD-1.5)."""
    expected = models.denoising_unet.m2p_config.block_out_channels[0]
    if guidance.channels != expected:
        raise InputError(f"the pose guidance has {guidance.channels} channels but this Champ U-Net adds "
                         f"{expected} after conv_in; use an M2PEnc (or guidance encoders) made for this Champ model")


def render_champ_video(models: ChampModels, reference: ReferenceState, guidance: GuidanceSource, sink: FrameSink, *,
                       seed: int, options: LongVideoOptions = LongVideoOptions(),
                       guidance_scale: float = CHAMP_GUIDANCE_SCALE, num_frames: Optional[int] = None,
                       vae_chunk_size: int = 1, latents_out: Optional[list[torch.Tensor]] = None,
                       control: RunControl = NO_CONTROL) -> int:
    """Generate ``num_frames`` (default: all the guidance has) frames into ``sink``; returns the count.

    Args:
        reference: from :func:`.reference.encode_reference`; its latent ``(1, 4, h, w)`` fixes the
            video size and serves the optional noise prior.
        guidance: per-frame pose guidance (M2PEnc or Champ pose maps), computed per segment.
        sink: receives decoded chunks ``(f, 8h, 8w, 3)`` float in [0, 1], in timeline order.
        vae_chunk_size: frames per VAE call inside each decode chunk.
        latents_out: if given, each decoded chunk's latents ``(1, 4, f, h, w)`` (CPU) are appended.
    """
    check_guidance_fits(models, guidance)
    check_context_size(models, options.context_size)
    total = guidance.num_frames if num_frames is None else num_frames
    if not 1 <= total <= guidance.num_frames:
        raise InputError(f"can generate 1..{guidance.num_frames} frames from this guidance, asked for {total}")
    latent_hw = tuple(reference.latents.shape[-2:])

    def guidance_fn(frames: torch.Tensor) -> torch.Tensor:
        return guidance.frames(frames, latent_hw, models.device, models.dtype)

    def decode(latents: torch.Tensor) -> torch.Tensor:
        if latents_out is not None:
            latents_out.append(latents.detach().float().cpu())
        return decode_latents(models.vae, latents, vae_chunk_size)

    return render_long_video(
        champ_predictor(models, reference, guidance_scale), make_scheduler(options.num_steps), total,
        seed=seed, latent_shape=tuple(reference.latents.shape), decode=decode, sink=sink,
        device=models.device, dtype=torch.float32, guidance_fn=guidance_fn, options=options,
        reference_latent=reference.latents.float(), control=control)
