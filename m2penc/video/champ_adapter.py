"""Champ plugged into the long-video sampler: predictor, decoder and a one-call renderer.

The segment sampler only knows a step-level :data:`.windows.NoisePredictor`; this module wraps
:func:`..champ.predict_noise` (CFG included) and :func:`..champ.decode_latents` into that shape.
The reference photo is encoded once per video by the caller (:func:`..champ.encode_reference`)
and the same :class:`..champ.ReferenceState` serves every segment and window.

CFG is applied per window before averaging; Champ averages the two branches first and applies
CFG after, which is the same thing because CFG is linear in both branches.
Latents stay float32 between steps (as in Champ's sampler); only the U-Net runs in the models' dtype.
"""
from __future__ import annotations

from typing import Optional

import torch
from diffusers import AutoencoderKL

from ..champ import ChampModels, ReferenceState, decode_latents, make_scheduler, predict_noise
from ..errors import InputError
from ..progress import NO_CONTROL, RunControl
from .options import LongVideoOptions
from .render import FrameSink, LatentDecoder, render_long_video
from .segments import GuidanceFn
from .windows import NoisePredictor

#: Champ's classifier-free guidance scale (configs/inference/inference.yaml).
CHAMP_GUIDANCE_SCALE = 3.5


def champ_predictor(models: ChampModels, ref_state: ReferenceState,
                    guidance_scale: float = CHAMP_GUIDANCE_SCALE) -> NoisePredictor:
    """A :data:`NoisePredictor` running Champ's U-Net with CFG on one window ``(1, 4, f, h, w)``."""

    def predict(latents: torch.Tensor, timestep: torch.Tensor, guidance: Optional[torch.Tensor]) -> torch.Tensor:
        if guidance is None:
            raise InputError("Champ needs guidance features for every frame; pass a guidance_fn")
        pred = predict_noise(models, ref_state, latents, timestep, guidance, guidance_scale)
        return pred.to(latents.device)

    return predict


def champ_decoder(vae: AutoencoderKL, chunk_size: int = 1) -> LatentDecoder:
    """A :data:`LatentDecoder`: ``(1, 4, f, h, w)`` -> ``(f, 8h, 8w, 3)`` float32 in [0, 1] on CPU."""
    return lambda latents: decode_latents(vae, latents, chunk_size)


def render_champ_video(
    models: ChampModels,
    ref_state: ReferenceState,
    guidance_fn: GuidanceFn,
    num_frames: int,
    sink: FrameSink,
    *,
    seed: int,
    options: LongVideoOptions = LongVideoOptions(),
    guidance_scale: float = CHAMP_GUIDANCE_SCALE,
    vae_chunk_size: int = 1,
    control: RunControl = NO_CONTROL,
) -> int:
    """Render ``num_frames`` frames with Champ, segment by segment, into ``sink``; returns frames written.

    Args:
        ref_state: from :func:`..champ.encode_reference` (once per video); its latents
            ``(1, 4, h, w)`` fix the latent size and serve the optional noise prior.
        guidance_fn: frames ``(F,)`` -> ``guidance_fea`` ``(1, C0, F, h, w)``.
        vae_chunk_size: frames per VAE call inside each decode chunk.
    """
    max_len = models.denoising_unet.m2p_config.motion_max_seq_length
    if options.context_size > max_len:
        raise InputError(f"context_size {options.context_size} exceeds the motion module length {max_len}")
    latent_shape = tuple(ref_state.latents.shape)
    return render_long_video(
        champ_predictor(models, ref_state, guidance_scale), make_scheduler(options.num_steps), num_frames,
        seed=seed, latent_shape=latent_shape, decode=champ_decoder(models.vae, vae_chunk_size), sink=sink,
        device=models.device, dtype=torch.float32, guidance_fn=guidance_fn, options=options,
        reference_latent=ref_state.latents.float(), control=control,
    )
