"""Segmented sampling, segments joined by training-free in-painting of the previous segment's tail.

Each segment is a full DDIM run over its own latents ``(B, 4, cond + new, h, w)``:

1. initial latents from the segment's own noise (seeded by ``(seed, index)``, see :mod:`.noise`),
   optionally with the reference noise prior;
2. the first ``cond`` frames start as the previous segment's last ``cond`` clean latents
   forward-noised to the first timestep, and after every step they are replaced again by those
   clean latents forward-noised to the next timestep (with the model's own noise estimate by
   default; why, and the measured effect, in :mod:`.conditioning`);
3. the averaged context-window noise prediction (:mod:`.windows`) drives one scheduler step;
4. the ``cond`` frames are dropped; the new frames are the segment's output.

Only the current segment's latents and the ``cond``-frame tail of the previous one are alive,
so memory does not grow with the video's length. Guidance is requested per segment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch

from ..errors import InputError
from ..progress import NO_CONTROL, RunControl
from .conditioning import initial_condition, next_condition
from .guidance import GuidanceFn
from .noise import apply_noise_prior, segment_noise
from .options import LongVideoOptions
from .plan import Segment
from .windows import NoisePredictor, context_windows, windowed_prediction

@dataclass
class SegmentLatents:
    """Clean latents of one finished segment: ``latents`` is ``(B, 4, segment.num_new, h, w)``."""

    segment: Segment
    latents: torch.Tensor


@dataclass(frozen=True)
class SamplingContext:
    """Everything constant across the segments of one video.

    ``latent_shape`` is ``(B, 4, h, w)``; ``reference_latent`` ``(B, 4, h, w)`` is only needed for
    the noise prior; ``total_segments`` labels progress.
    """

    predict: NoisePredictor
    scheduler: Any
    guidance_fn: Optional[GuidanceFn]
    seed: int
    latent_shape: tuple[int, int, int, int]
    device: torch.device
    dtype: torch.dtype
    options: LongVideoOptions
    reference_latent: Optional[torch.Tensor] = None
    control: RunControl = NO_CONTROL
    total_segments: int = 1


def _segment_guidance(ctx: SamplingContext, segment: Segment) -> Optional[torch.Tensor]:
    """Guidance ``(B, C, num_latent, h, w)`` for the segment's frames, conditioning frames included."""
    if ctx.guidance_fn is None:
        return None
    frames = torch.arange(segment.latent_start, segment.stop, dtype=torch.long)
    guidance = ctx.guidance_fn(frames)
    if guidance is not None and guidance.shape[2] != segment.num_latent:
        raise InputError(
            f"guidance_fn returned {guidance.shape[2]} frames for segment {segment.index}, "
            f"expected {segment.num_latent}"
        )
    return None if guidance is None else guidance.to(device=ctx.device, dtype=ctx.dtype)


def _check_cond(segment: Segment, cond_latents: Optional[torch.Tensor], latent_shape: tuple[int, ...]) -> None:
    if segment.cond == 0:
        return
    batch, channels, height, width = latent_shape
    expected = (batch, channels, segment.cond, height, width)
    if cond_latents is None or tuple(cond_latents.shape) != expected:
        got = None if cond_latents is None else tuple(cond_latents.shape)
        raise InputError(
            f"segment {segment.index} is conditioned on {segment.cond} frames: "
            f"cond_latents must be {expected}, got {got}"
        )


@torch.no_grad()
def sample_segment(ctx: SamplingContext, segment: Segment, cond_latents: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Denoise one segment; regenerating a segment alone with the same inputs reproduces it exactly.

    Args:
        segment: from :func:`.plan.plan_segments`.
        cond_latents: ``(B, 4, segment.cond, h, w)`` clean latents of the frames just before
            ``segment.start`` (the previous segment's tail); ``None`` when ``segment.cond == 0``.
    Returns:
        ``(B, 4, segment.num_new, h, w)`` clean latents of the new frames.
    """
    _check_cond(segment, cond_latents, ctx.latent_shape)
    opts, k, scheduler = ctx.options, segment.cond, ctx.scheduler
    scheduler.set_timesteps(opts.num_steps, device=ctx.device)
    noise = segment_noise(ctx.seed, segment, ctx.latent_shape, ctx.device, ctx.dtype)  # (B, 4, F, h, w)
    latents = apply_noise_prior(scheduler, noise, ctx.reference_latent, opts.noise_prior_t)
    guidance = _segment_guidance(ctx, segment)
    windows = context_windows(segment.num_latent, opts.context_size, opts.context_overlap,
                              closed_loop=opts.closed_loop)
    cond = None if k == 0 else cond_latents.to(device=ctx.device, dtype=ctx.dtype)
    if cond is not None:
        latents[:, :, :k] = initial_condition(scheduler, cond, noise[:, :, :k], scheduler.timesteps[0])
    for i, t in enumerate(scheduler.timesteps):
        pred = windowed_prediction(ctx.predict, latents, t, guidance, windows, ctx.control)
        stepped = scheduler.step(pred, t, latents).prev_sample
        if cond is not None:
            stepped[:, :, :k] = next_condition(
                scheduler, cond, i, latents[:, :, :k], pred[:, :, :k], noise[:, :, :k], opts.cond_noise
            )
        latents = stepped
        stage = f"denoise segment {segment.index + 1}/{ctx.total_segments}"
        ctx.control.tick(stage, segment.index * opts.num_steps + i + 1, ctx.total_segments * opts.num_steps)
    return latents[:, :, k:].contiguous()


def iter_segment_latents(ctx: SamplingContext, segments: list[Segment]) -> Iterator[SegmentLatents]:
    """Sample ``segments`` in order, handing each one's tail to the next as conditioning.

    Yields each finished segment as soon as it is done; only the ``cond``-frame tail is kept
    between segments, so the caller decides how long a segment's latents live.
    """
    keep = max((segment.cond for segment in segments), default=0)
    tail: Optional[torch.Tensor] = None
    for segment in segments:
        cond = tail[:, :, tail.shape[2] - segment.cond:] if segment.cond else None
        latents = sample_segment(ctx, segment, cond)
        tail = latents[:, :, -keep:].clone() if keep else None
        yield SegmentLatents(segment, latents)
        del latents
