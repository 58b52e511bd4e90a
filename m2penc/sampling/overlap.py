"""Whole-video overlap averaging: the alternative to segment conditioning (``join="average"``).

This is how Champ's and UniAnimate's released code make long videos: every denoising step runs
the context windows over the *whole* sequence and averages overlapping predictions, so there is
no segment boundary at all. The price is memory: the latents and the guidance of every frame are
held for the whole run (``(B, 4, N, h, w)`` and ``(B, C, N, h, w)``), which grows linearly with the
video's length. Decoding and writing still stream segment by segment afterwards.

Noise is the concatenation of the per-segment noise of an unconditioned plan, so a seed gives the
same starting point as ``join="none"``.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch

from ..errors import InputError
from .noise import apply_noise_prior, segment_noise
from .plan import Segment
from .segments import SamplingContext, SegmentLatents
from .windows import context_windows, windowed_prediction


def _whole_video_guidance(ctx: SamplingContext, num_frames: int) -> Optional[torch.Tensor]:
    """Guidance ``(B, C, N, h, w)`` for every frame, or ``None`` without a provider."""
    if ctx.guidance_fn is None:
        return None
    guidance = ctx.guidance_fn(torch.arange(num_frames, dtype=torch.long))
    if guidance is not None and guidance.shape[2] != num_frames:
        raise InputError(f"guidance_fn returned {guidance.shape[2]} frames, expected {num_frames}")
    return None if guidance is None else guidance.to(device=ctx.device, dtype=ctx.dtype)


@torch.no_grad()
def sample_whole_video(ctx: SamplingContext, segments: list[Segment]) -> torch.Tensor:
    """Denoise all frames of ``segments`` jointly with overlapping context windows.

    ``segments`` must be an unconditioned plan (``cond == 0``) covering ``[0, N)``.
    Returns ``(B, 4, N, h, w)`` clean latents.
    """
    if any(segment.cond for segment in segments):
        raise InputError("overlap averaging needs a plan without conditioning frames (cond_frames=0)")
    opts, scheduler = ctx.options, ctx.scheduler
    num_frames = segments[-1].stop
    scheduler.set_timesteps(opts.num_steps, device=ctx.device)
    noise = torch.cat([segment_noise(ctx.seed, s, ctx.latent_shape, ctx.device, ctx.dtype) for s in segments], dim=2)
    latents = apply_noise_prior(scheduler, noise, ctx.reference_latent, opts.noise_prior_t)  # (B, 4, N, h, w)
    del noise
    guidance = _whole_video_guidance(ctx, num_frames)
    windows = context_windows(num_frames, opts.context_size, opts.context_overlap, closed_loop=opts.closed_loop)
    for i, t in enumerate(scheduler.timesteps):
        pred = windowed_prediction(ctx.predict, latents, t, guidance, windows, ctx.control)
        latents = scheduler.step(pred, t, latents).prev_sample
        ctx.control.tick("denoise whole video", i + 1, opts.num_steps)
    return latents


def iter_averaged_latents(ctx: SamplingContext, segments: list[Segment]) -> Iterator[SegmentLatents]:
    """Run :func:`sample_whole_video`, then hand the result out segment by segment for decoding."""
    latents = sample_whole_video(ctx, segments)
    for segment in segments:
        yield SegmentLatents(segment, latents[:, :, segment.start:segment.stop])
    del latents
