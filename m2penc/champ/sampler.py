"""Champ's sampler: DDIM (zero-terminal-SNR, trailing, v-prediction), CFG and context windows.

* :func:`make_scheduler` - Champ's inference scheduler (``linear`` betas as in its
  inference.yaml, ``rescale_betas_zero_snr``, ``trailing`` spacing, ``v_prediction``, eta 0).
* :func:`predict_noise` - one model evaluation with classifier-free guidance: the unconditional
  branch gets zero CLIP embeddings AND no reference tokens (Champ's training/inference rule).
* :func:`champ_predictor` - that, as the window-level predictor the samplers in
  :mod:`..sampling` call.
* :func:`sample_video` - the short-clip loop: per step, every closed-loop context window is
  denoised with CFG, predictions are averaged per frame, then one scheduler step on all frames.
  Long videos go through :mod:`.long_video` (segments) instead.

Latents are kept in float32 between steps (the scheduler runs in fp32); only the U-Net runs in
the models' dtype. Unlike Champ, averaging over windows also happens without CFG (Champ only
divides by the window counter inside its CFG branch - a bug for ``guidance_scale <= 1``).
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from diffusers import DDIMScheduler

from ..errors import InputError
from ..progress import NO_CONTROL, RunControl
from ..sampling.windows import CONTEXT_OVERLAP, CONTEXT_SIZE, NoisePredictor, context_windows, windowed_prediction
from .models import ChampModels
from .reference import ReferenceState
from .reference_attention import ReferenceRead

#: Champ's inference scheduler (configs/inference/inference.yaml + pipeline defaults).
CHAMP_SCHEDULER_CONFIG: dict[str, object] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "steps_offset": 1,
    "clip_sample": False,
    "set_alpha_to_one": True,
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "prediction_type": "v_prediction",
}


#: Champ's classifier-free guidance scale (configs/inference/inference.yaml).
CHAMP_GUIDANCE_SCALE = 3.5


def make_scheduler(num_steps: int = 20) -> DDIMScheduler:
    """A ``DDIMScheduler`` with Champ's config, timesteps set (20 steps: 999, 949, ..., 49)."""
    if num_steps < 1:
        raise InputError(f"num_steps must be >= 1, got {num_steps}")
    scheduler = DDIMScheduler(**CHAMP_SCHEDULER_CONFIG)
    scheduler.set_timesteps(num_steps)
    return scheduler


def check_shapes(models: ChampModels, latents: torch.Tensor, guidance_fea: torch.Tensor) -> None:
    """Latents ``(B, 4, F, h, w)`` and guidance ``(B, C0, F, h, w)`` must agree with each other and the model."""
    cfg = models.denoising_unet.m2p_config
    expected = (latents.shape[0], cfg.block_out_channels[0], *latents.shape[2:])
    if latents.ndim != 5 or latents.shape[1] != cfg.in_channels or tuple(guidance_fea.shape) != expected:
        raise InputError(
            f"latents {tuple(latents.shape)} and guidance_fea {tuple(guidance_fea.shape)} do not fit: expected "
            f"latents (B, {cfg.in_channels}, F, h, w) and guidance_fea (B, {cfg.block_out_channels[0]}, F, h, w)"
        )


@torch.no_grad()
def predict_noise_branches(models: ChampModels, ref_state: ReferenceState, latents: torch.Tensor,
                           timestep: Union[int, torch.Tensor], guidance_fea: torch.Tensor,
                           with_uncond: bool = True,
                           motion_modules: bool = True) -> tuple[Optional[torch.Tensor], torch.Tensor]:
    """Unconditional and conditional model outputs of one batched U-Net call.

    Args:
        latents: ``(B, 4, F, h, w)``; guidance_fea: ``(B, C0, F, h, w)``.
        with_uncond: also run the unconditional branch (zero CLIP, no reference tokens).
        motion_modules: ``False`` runs the per-frame U-Net (frames independent, as stage-2 training).

    Returns:
        ``(uncond or None, cond)``, each ``(B, 4, F, h, w)`` float32.
    """
    check_shapes(models, latents, guidance_fea)
    b = latents.shape[0]
    embeds = ref_state.image_embeds.to(models.device, models.dtype).expand(b, -1, -1)
    if with_uncond:
        latents, guidance_fea = torch.cat([latents, latents]), torch.cat([guidance_fea, guidance_fea])
        embeds = torch.cat([torch.zeros_like(embeds), embeds])
    flags = (False,) * b + (True,) * b if with_uncond else (True,) * b
    out = models.denoising_unet(latents.to(models.device), timestep, embeds, guidance_fea.to(models.device),
                                reference=ReferenceRead(ref_state.bank, flags), motion_modules=motion_modules).float()
    return (out[:b], out[b:]) if with_uncond else (None, out)


def apply_cfg(uncond: Optional[torch.Tensor], cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """``uncond + scale * (cond - uncond)``; just ``cond`` when there is no unconditional branch."""
    return cond if uncond is None else uncond + guidance_scale * (cond - uncond)


def predict_noise(models: ChampModels, ref_state: ReferenceState, latents: torch.Tensor,
                  timestep: Union[int, torch.Tensor], guidance_fea: torch.Tensor,
                  guidance_scale: float = CHAMP_GUIDANCE_SCALE, motion_modules: bool = True) -> torch.Tensor:
    """Guided model output ``(B, 4, F, h, w)`` (v-prediction) for latents ``(B, 4, F, h, w)``.

    CFG runs only when ``guidance_scale > 1`` (as in Champ); ``F`` must fit one motion-module
    pass (``<= motion_max_seq_length``); use :func:`sample_video` for longer clips.
    """
    uncond, cond = predict_noise_branches(models, ref_state, latents, timestep, guidance_fea, guidance_scale > 1,
                                          motion_modules)
    return apply_cfg(uncond, cond, guidance_scale)


def champ_predictor(models: ChampModels, ref_state: ReferenceState,
                    guidance_scale: float = CHAMP_GUIDANCE_SCALE, motion_modules: bool = True) -> NoisePredictor:
    """A :data:`..sampling.NoisePredictor` running Champ's U-Net with CFG on one window ``(1, 4, f, h, w)``.

    CFG is applied per window before the windows are averaged; Champ averages the two branches
    first and applies CFG after, which is the same thing because CFG is linear in both branches.
    """

    def predict(latents: torch.Tensor, timestep: torch.Tensor, guidance: Optional[torch.Tensor]) -> torch.Tensor:
        if guidance is None:
            raise InputError("Champ needs guidance features for every frame; pass a guidance source")
        return predict_noise(models, ref_state, latents, timestep, guidance, guidance_scale,
                             motion_modules).to(latents.device)

    return predict


def check_context_size(models: ChampModels, context_size: int) -> None:
    """Context windows must fit one motion-module pass (its positional table's length)."""
    max_len = models.denoising_unet.m2p_config.motion_max_seq_length
    if context_size > max_len:
        raise InputError(f"context_size {context_size} exceeds the motion module's length {max_len}; "
                         f"use at most {max_len}")


def initial_latents(guidance_fea: torch.Tensor, latent_channels: int,
                    generator: Optional[torch.Generator]) -> torch.Tensor:
    """Gaussian latents ``(B, latent_channels, F, h, w)`` float32, drawn on the generator's device."""
    b, _, f, h, w = guidance_fea.shape
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn((b, latent_channels, f, h, w), generator=generator, device=device, dtype=torch.float32)


def sample_video(models: ChampModels, ref_state: ReferenceState, guidance_fea: torch.Tensor, num_steps: int = 20,
                 guidance_scale: float = CHAMP_GUIDANCE_SCALE, generator: Optional[torch.Generator] = None,
                 control: RunControl = NO_CONTROL, context_size: int = CONTEXT_SIZE,
                 context_overlap: int = CONTEXT_OVERLAP,
                 init_latents: Optional[torch.Tensor] = None, motion_modules: bool = True) -> torch.Tensor:
    """Denoise a whole clip.

    Args:
        guidance_fea: ``(1, C0, F, h, w)`` summed guidance features (pose encoders or music encoder).
        num_steps: DDIM steps (Champ: 20). guidance_scale: CFG scale (Champ: 3.5).
        generator: seeds the initial noise (drawn on its device, float32).
        control: progress ``("denoise", step, num_steps)`` after every step; cancel is honoured
            between steps (raises :class:`~..errors.GenerationCancelled`).
        context_size, context_overlap: Champ's closed-loop context windows (24 / 4);
            ``context_size`` must not exceed the motion module length.
        init_latents: ``(1, 4, F, h, w)`` to start from instead of fresh noise.
        motion_modules: ``False`` denoises every frame on its own (the per-frame U-Net of stage 2).

    Returns:
        Final latents ``(1, 4, F, h, w)`` float32 on the models' device (unscaled: divide by the
        VAE scaling factor before decoding, as :func:`.decode.decode_latents` does).
    """
    check_context_size(models, context_size)
    scheduler = make_scheduler(num_steps)
    latents = init_latents if init_latents is not None else initial_latents(
        guidance_fea, models.denoising_unet.config.in_channels, generator)
    latents = latents.to(models.device, torch.float32) * scheduler.init_noise_sigma
    check_shapes(models, latents, guidance_fea)
    windows = context_windows(latents.shape[2], context_size, context_overlap, closed_loop=True)
    predict = champ_predictor(models, ref_state, guidance_scale, motion_modules)
    control.check_cancel()
    for i, t in enumerate(scheduler.timesteps):
        noise_pred = windowed_prediction(predict, latents, t, guidance_fea, windows, control)
        latents = scheduler.step(noise_pred, t, latents, eta=0.0).prev_sample
        control.tick("denoise", i + 1, len(scheduler.timesteps))
    return latents
