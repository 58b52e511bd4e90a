"""Long video end to end: plan -> sample segment by segment -> VAE-decode in chunks -> sink.

The sink is usually :meth:`..video.writer.VideoWriter.write`, so finished frames go to disk as soon as a
segment is done and a video of any length needs the memory of one segment. Progress and cancel
go through :class:`~..progress.RunControl`: one tick per denoising step (stage
``"denoise segment s/S"``, counting over the whole video) and one per decoded chunk (stage
``"decode"``). A cancel raises :class:`~..errors.GenerationCancelled` between steps/windows/chunks;
the sampler's tensors are released before it propagates, and a writer used as a context manager
removes its temporary file, so nothing is left behind.
"""
from __future__ import annotations

import gc
from typing import Any, Callable, Iterator, Optional

import torch

from ..progress import NO_CONTROL, RunControl
from .options import LongVideoOptions
from .overlap import iter_averaged_latents
from .plan import Segment, plan_segments
from .guidance import GuidanceFn
from .segments import SamplingContext, SegmentLatents, iter_segment_latents
from .windows import NoisePredictor

#: ``latents (1, 4, f, h, w) -> frames (f, H, W, 3)`` float in [0, 1] (ComfyUI IMAGE layout).
LatentDecoder = Callable[[torch.Tensor], torch.Tensor]
#: Receives each decoded chunk ``(f, H, W, 3)`` in timeline order.
FrameSink = Callable[[torch.Tensor], None]


def plan_for(num_frames: int, options: LongVideoOptions) -> list[Segment]:
    """The segment plan ``render_long_video`` uses for ``num_frames`` frames with ``options``."""
    return plan_segments(num_frames, options.segment_frames, options.effective_cond_frames)


def _decode_segment(item: SegmentLatents, decode: LatentDecoder, sink: FrameSink, chunk: int,
                    written: int, total: int, control: RunControl) -> int:
    """Decode ``item`` ``chunk`` frames at a time into ``sink``; returns frames written so far."""
    for lo in range(0, item.latents.shape[2], chunk):
        frames = decode(item.latents[:, :, lo:lo + chunk])
        sink(frames)
        written += frames.shape[0]
        del frames
        control.tick("decode", written, total)
    return written


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def render_long_video(
    predict: NoisePredictor,
    scheduler: Any,
    num_frames: int,
    *,
    seed: int,
    latent_shape: tuple[int, int, int, int],
    decode: LatentDecoder,
    sink: FrameSink,
    device: torch.device,
    dtype: torch.dtype,
    guidance_fn: Optional[GuidanceFn] = None,
    options: LongVideoOptions = LongVideoOptions(),
    reference_latent: Optional[torch.Tensor] = None,
    control: RunControl = NO_CONTROL,
) -> int:
    """Generate ``num_frames`` frames segment by segment and push them, decoded, into ``sink``.

    Args:
        predict: step-level noise predictor (see :data:`.windows.NoisePredictor`), e.g.
            :func:`..champ.long_video.champ_predictor`.
        scheduler: a diffusers scheduler (Champ's DDIM config); re-timed for every segment.
        latent_shape: ``(1, 4, h, w)``: one latent frame, batch 1.
        decode: VAE decode of a latent chunk (see :data:`LatentDecoder`).
        sink: receives decoded chunks in order.
        guidance_fn: per-frame guidance provider (see :data:`.guidance.GuidanceFn`).
        reference_latent: ``(1, 4, h, w)``, only for ``options.noise_prior_t``.
    Returns:
        Number of frames written to ``sink`` (``num_frames``).
    """
    device = torch.device(device)
    segments = plan_for(num_frames, options)
    ctx = SamplingContext(
        predict=predict, scheduler=scheduler, guidance_fn=guidance_fn, seed=seed,
        latent_shape=tuple(latent_shape), device=device, dtype=dtype, options=options,
        reference_latent=reference_latent, control=control, total_segments=len(segments),
    )
    source: Iterator[SegmentLatents] = (
        iter_averaged_latents(ctx, segments) if options.join == "average" else iter_segment_latents(ctx, segments)
    )
    written = 0
    try:
        for item in source:
            written = _decode_segment(item, decode, sink, options.decode_chunk, written, num_frames, control)
            del item
    finally:
        source.close()
        del source, ctx
        _release(device)
    return written
