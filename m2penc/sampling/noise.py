"""Per-segment initial noise, derived from ``(seed, segment index)`` only.

Why per segment: regenerating segment ``s`` alone (say, to fix one bad stretch of a long dance)
must reproduce it bit for bit given the same conditioning frames, so its noise may not depend on
how many random numbers earlier segments drew. Each segment gets its own ``torch.Generator``
seeded from a hash of ``(seed, index)``.

Noise is always drawn on the CPU in float32 and then moved, so a seed gives the same video on
CPU and CUDA (CUDA generators produce different streams) and in every dtype.

The optional *noise prior* is UniAnimate's long-video trick (``noise = q_sample(ref_latent,
t=939, noise)``): the initial latents already carry a faint copy of the reference image.
"""
from __future__ import annotations

import hashlib
from typing import Any, Optional

import torch

from ..errors import InputError
from .plan import Segment

#: UniAnimate's ``noise_prior_value`` (configs/UniAnimate_infer_long.yaml).
UNIANIMATE_NOISE_PRIOR_T = 939


def segment_seed(seed: int, index: int) -> int:
    """A 63-bit seed for segment ``index`` of a video generated with ``seed``."""
    digest = hashlib.sha256(f"m2pdance-segment:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def segment_noise(
    seed: int,
    segment: Segment,
    shape: tuple[int, int, int, int],
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Standard normal noise for one segment.

    Args:
        seed: the video's seed.
        segment: the segment; its ``num_latent`` frames get noise.
        shape: ``(B, C, h, w)`` of one latent frame batch.
    Returns:
        ``(B, C, segment.num_latent, h, w)`` tensor on ``device`` in ``dtype``.
    """
    batch, channels, height, width = shape
    gen = torch.Generator(device="cpu").manual_seed(segment_seed(seed, segment.index))
    noise = torch.randn((batch, channels, segment.num_latent, height, width), generator=gen, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)


def apply_noise_prior(
    scheduler: Any, noise: torch.Tensor, reference_latent: Optional[torch.Tensor], prior_t: Optional[int]
) -> torch.Tensor:
    """Initial latents: pure ``noise``, or with the reference latent diffused to ``prior_t`` mixed in.

    Args:
        scheduler: a diffusers scheduler (uses ``add_noise``).
        noise: ``(B, 4, F, h, w)`` segment noise.
        reference_latent: ``(B, 4, h, w)`` VAE latent of the reference image (scaled like the
            UNet's latents); required when ``prior_t`` is set.
        prior_t: training timestep to diffuse the reference to (UniAnimate: 939), or ``None``.
    """
    if prior_t is None:
        return noise * scheduler.init_noise_sigma
    if reference_latent is None:
        raise InputError("the noise prior needs the reference image latent; pass reference_latent or disable the prior")
    if reference_latent.shape != noise[:, :, 0].shape:
        raise InputError(
            f"reference_latent must be (B, C, h, w) = {tuple(noise[:, :, 0].shape)}, "
            f"got {tuple(reference_latent.shape)}"
        )
    ref = reference_latent.to(noise.dtype).unsqueeze(2).expand_as(noise)  # (B, 4, F, h, w)
    t = torch.tensor([int(prior_t)], device=noise.device, dtype=torch.long)
    return scheduler.add_noise(ref, noise, t)
