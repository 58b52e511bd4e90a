"""The diffusion loss of training stages 2 and 3 (paper sec. 3.4, ``L_pix``), as Champ trains it.

Champ, whose weights stages 2 and 3 start from, trains with a zero-terminal-SNR ``scaled_linear``
schedule and **v-prediction** (``train_s1.py`` / ``train_s2.py``: ``enable_zero_snr`` adds
``rescale_betas_zero_snr``, ``v_prediction``; the training scheduler switches the betas to
``scaled_linear``, while inference keeps ``linear``, see :mod:`..m2penc.champ.sampler`):

* :func:`make_train_scheduler` - that schedule (a ``DDPMScheduler``; Champ builds a
  ``DDIMScheduler``, whose ``add_noise``/``get_velocity`` and ``alphas_cumprod`` are identical).
* :func:`diffusion_loss` - one Monte-Carlo sample of the objective: noise ``eps ~ N(0, I)``
  (plus Champ's optional per-channel ``noise_offset``), timesteps uniform in ``[0, 1000)`` per
  sample, ``x_t = add_noise(x_0, eps, t)``, target ``v = get_velocity(x_0, eps, t)``, loss = MSE.

How this ``L_pix`` relates to the paper's "pixel-wise MSE": the paper writes ``MSE(x, y)`` between
the predicted and the real frame. What is optimised (by Champ, hence here) is on the VAE
latents, not pixels. With ``alpha_t = sqrt(abar_t)``, ``sigma_t = sqrt(1 - abar_t)``,
``SNR_t = alpha_t^2 / sigma_t^2``, ``x_t = alpha_t x_0 + sigma_t eps`` and ``v = alpha_t eps -
sigma_t x_0``, a predicted ``v_hat`` implies ``x0_hat = alpha_t x_t - sigma_t v_hat`` and
``eps_hat = sigma_t x_t + alpha_t v_hat``, so per sample and timestep, exactly::

    |v_hat - v|^2 = (1 + SNR_t) |x0_hat - x_0|^2 = (1 + 1 / SNR_t) |eps_hat - eps|^2

i.e. the v-MSE is the latent-frame (``x_0``) MSE weighted by ``1 + SNR_t``, or the epsilon MSE
weighted by ``1 + 1/SNR_t``. At the zero-SNR step ``t = 999`` it is exactly the ``x_0`` MSE (the
epsilon form is undefined there, which is why Champ predicts v). With ``snr_gamma`` (Champ's
configs use 5.0) each sample's v-MSE is further weighted by ``min(SNR_t + 1, gamma) / (SNR_t + 1)``
(Champ's formula), i.e. the ``x_0`` MSE weighted by ``min(SNR_t + 1, gamma)``.

Randomness comes from torch's global RNG on the latents' device (the engine seeds and checkpoints
it). Draw order: noise, then the offset noise (if any), then the timesteps.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from ..m2penc.errors import InputError

#: Champ's training noise schedule (configs/train/stage{1,2}.yaml + ``enable_zero_snr`` + scaled_linear).
CHAMP_TRAIN_SCHEDULER_CONFIG: dict[str, object] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "clip_sample": False,
    "rescale_betas_zero_snr": True,
    "prediction_type": "v_prediction",
}
#: Champ's training configs: ``noise_offset: 0.05``, ``snr_gamma: 5.0`` (our defaults are 0 / off,
#: the paper's plain MSE; pass these to train exactly like Champ).
CHAMP_NOISE_OFFSET = 0.05
CHAMP_SNR_GAMMA = 5.0

#: ``unet_call(noisy_latents, timesteps) -> prediction`` of the latents' shape.
UNetCall = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Draws:
    """The random draws of one loss evaluation: per sample from its own seed, or from torch's global RNG.

    With ``seeds`` (``(B,)`` integers, one per sample, from the data side:
    :func:`..datasets.sample_seed`), sample ``i`` draws its condition-dropout coin, noise, offset
    noise and timestep from a CPU generator seeded by ``seeds[i]``, in that order. A sample's draws
    then depend on the sample alone, not on which process or micro-batch it lands in: N processes
    train exactly what one process trains on the same global batch. Without seeds, torch's global
    RNG on ``device`` is used (tests, notebooks).
    """

    def __init__(self, seeds: Optional[torch.Tensor], device: torch.device):
        self.device = device
        self.generators = (None if seeds is None
                           else [torch.Generator().manual_seed(int(s)) for s in seeds.reshape(-1).tolist()])

    def _per_sample(self, draw: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
        return torch.stack([draw(g) for g in self.generators]).to(self.device)

    def rand(self, b: int) -> torch.Tensor:
        """``(B,)`` uniform [0, 1)."""
        if self.generators is None:
            return torch.rand(b, device=self.device)
        return self._per_sample(lambda g: torch.rand((), generator=g))

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        """``shape = (B, ...)`` standard normal."""
        if self.generators is None:
            return torch.randn(shape, device=self.device)
        return self._per_sample(lambda g: torch.randn(shape[1:], generator=g))

    def randint(self, high: int, b: int) -> torch.Tensor:
        """``(B,)`` long in ``[0, high)``."""
        if self.generators is None:
            return torch.randint(0, high, (b,), device=self.device)
        return self._per_sample(lambda g: torch.randint(0, high, (), generator=g))


def make_train_scheduler() -> DDPMScheduler:
    """Champ's training schedule: zero-terminal-SNR ``scaled_linear`` betas, v-prediction, 1000 steps."""
    return DDPMScheduler(**CHAMP_TRAIN_SCHEDULER_CONFIG)


def snr(scheduler: DDPMScheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """``SNR_t = abar_t / (1 - abar_t)`` per timestep ``(B,)`` float32 (0 at the zero-SNR step)."""
    abar = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    return abar / (1.0 - abar)


def diffusion_loss(unet_call: UNetCall, latents: torch.Tensor, scheduler: DDPMScheduler, noise_offset: float = 0.0,
                   snr_gamma: Optional[float] = None,
                   draws: Optional[Draws] = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The v-prediction MSE of one noising of ``latents`` (see the module docstring).

    Args:
        unet_call: ``(noisy (B, ...), timesteps (B,) long) -> prediction`` of the same shape.
        latents: clean scaled VAE latents ``(B, 4, F, h, w)`` (any shape with batch first).
        scheduler: :func:`make_train_scheduler` (``v_prediction``).
        noise_offset: Champ's offset noise: ``eps += noise_offset * N(0, 1)`` drawn per sample and
            channel, broadcast over the other dims (Champ: 0.05).
        snr_gamma: Champ's min-SNR weighting (Champ: 5.0); ``None`` = plain mean.
        draws: where the noise and timesteps come from (default: torch's global RNG).

    Returns:
        ``(loss, parts)``: scalar float32 loss (with gradient) and detached logging parts
        ``l_pix`` (the loss) and ``timestep`` (mean timestep of the batch).
    """
    if scheduler.config.prediction_type != "v_prediction":
        raise InputError(f"Champ's U-Net predicts v; the scheduler is {scheduler.config.prediction_type!r}: "
                         "use make_train_scheduler()")
    if noise_offset < 0:
        raise InputError(f"noise_offset must be >= 0, got {noise_offset}")
    latents = latents.float()
    b = latents.shape[0]
    draws = draws or Draws(None, latents.device)
    noise = draws.randn(tuple(latents.shape))
    if noise_offset > 0:
        noise = noise + noise_offset * draws.randn((b, latents.shape[1]) + (1,) * (latents.ndim - 2))
    timesteps = draws.randint(scheduler.config.num_train_timesteps, b).long()
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = scheduler.get_velocity(latents, noise, timesteps)
    pred = unet_call(noisy, timesteps)
    if pred.shape != target.shape:
        raise InputError(f"the U-Net predicted {tuple(pred.shape)} for latents {tuple(target.shape)}")
    if snr_gamma is None:
        loss = F.mse_loss(pred.float(), target.float(), reduction="mean")
    else:
        ratio = snr(scheduler, timesteps) + 1.0
        weights = torch.clamp(ratio, max=float(snr_gamma)) / ratio
        per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)
        loss = (per_sample * weights).mean()
    return loss, {"l_pix": loss.detach(), "timestep": timesteps.float().mean()}
