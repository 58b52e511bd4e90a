"""Fixtures for the long-video tests: Champ's scheduler, an exact toy denoiser, a toy decoder.

The toy denoiser is the Bayes-optimal denoiser for a video whose latents are a Gaussian process
over time (squared-exponential kernel, ``length`` frames) around ``guidance_weight * guidance``.
Its prediction for a frame depends on every other frame of the window, so it has real temporal
coupling: a segment sampled without conditioning starts unrelated to where the previous ended.
"""
from __future__ import annotations

from typing import Optional

import pytest
import torch
from diffusers import DDIMScheduler


def champ_scheduler() -> DDIMScheduler:
    """DDIM with Champ's inference config (shared/spec/champ/REPORT.md §8)."""
    return DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear",
        steps_offset=1, clip_sample=False, rescale_betas_zero_snr=True,
        timestep_spacing="trailing", prediction_type="v_prediction",
    )


class GaussianProcessDenoiser:
    """v-prediction of the exact posterior mean ``E[x0 | x_t]`` under a temporal GP prior."""

    def __init__(self, alphas_cumprod: torch.Tensor, length: float = 4.0, guidance_weight: float = 0.3) -> None:
        self.alphas = alphas_cumprod.double()
        self.length = length
        self.guidance_weight = guidance_weight
        self._cache: dict[tuple[int, int], torch.Tensor] = {}
        self.calls: list[tuple[int, int]] = []

    def _posterior(self, frames: int, t: int) -> torch.Tensor:
        """``(F, F)`` matrix ``sqrt(a) K (a K + (1 - a) I)^-1``."""
        if (frames, t) not in self._cache:
            a = self.alphas[t]
            i = torch.arange(frames, dtype=torch.float64)
            eye = torch.eye(frames, dtype=torch.float64)
            kernel = torch.exp(-((i[:, None] - i[None]) ** 2) / (2 * self.length**2)) + 1e-6 * eye
            self._cache[(frames, t)] = a.sqrt() * kernel @ torch.linalg.inv(a * kernel + (1 - a) * eye)
        return self._cache[(frames, t)]

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor, guidance: Optional[torch.Tensor]) -> torch.Tensor:
        t = int(timestep)
        self.calls.append((t, latents.shape[2]))
        a = self.alphas[t].to(latents.dtype)
        mean = 0.0 if guidance is None else self.guidance_weight * guidance
        post = self._posterior(latents.shape[2], t).to(latents.dtype)
        x0 = mean + ((latents - a.sqrt() * mean).movedim(2, -1) @ post.T).movedim(-1, 2)
        eps = (latents - a.sqrt() * x0) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0  # v = sqrt(a) eps - sqrt(1 - a) x0


def toy_decode(latents: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """``(1, 4, f, h, w)`` -> ``(f, h*scale, w*scale, 3)`` in [0, 1]: a stand-in for the VAE."""
    rgb = torch.sigmoid(latents[0, :3]).permute(1, 2, 3, 0)  # (f, h, w, 3)
    return rgb.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)


def smooth_guidance(frames: torch.Tensor, channels: int = 4, size: int = 8) -> torch.Tensor:
    """A timeline-continuous guidance signal ``(1, channels, F, size, size)`` for frames ``frames``."""
    t = frames.double().view(1, 1, -1, 1, 1)
    phase = torch.arange(channels, dtype=torch.float64).view(1, -1, 1, 1, 1)
    return torch.sin(t / 7.0 + phase).expand(1, channels, frames.numel(), size, size).float()


@pytest.fixture
def scheduler() -> DDIMScheduler:
    return champ_scheduler()


@pytest.fixture
def gp_denoiser(scheduler: DDIMScheduler) -> GaussianProcessDenoiser:
    return GaussianProcessDenoiser(scheduler.alphas_cumprod)


@pytest.fixture
def decode():
    return toy_decode


@pytest.fixture
def guidance_fn():
    return smooth_guidance


@pytest.fixture
def make_denoiser():
    """Factory ``() -> (scheduler, denoiser)`` for tests that need several independent runs."""
    def make(length: float = 4.0) -> tuple[DDIMScheduler, GaussianProcessDenoiser]:
        sched = champ_scheduler()
        return sched, GaussianProcessDenoiser(sched.alphas_cumprod, length=length)
    return make
