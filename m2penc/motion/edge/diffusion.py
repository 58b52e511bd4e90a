"""EDGE's diffusion: the cosine schedule and its two DDIM samplers (REPORT.md §6-§7).

EDGE's network predicts x0. Its sampler is DDIM with ``eta = 1`` (so it is stochastic: fresh
Gaussian noise every step), 50 steps over ``reversed(int(linspace(-1, 999, 51)))`` and guidance
weight 2; x0 is clamped to ``[-1, 1]`` and the noise estimate is derived from the *clamped* x0.

* :func:`ddim_sample` - independent windows.
* :func:`long_ddim_sample` - B consecutive windows overlapping by half (EDGE's ``test.py``): after
  every update with ``t > 0`` the first half of window i is overwritten by the second half of
  window i-1 (in-painting), and the guidance weight ramps up from 0. The final x0 is returned
  unconstrained, so overlaps agree closely but not exactly; joining them is the caller's job.

Noise is drawn in float32 on the generator's device (CPU by default) and then moved, so a seeded
CPU generator gives the same motion on CPU and CUDA. Or pass ``noises`` ``(steps, B, L, F)``:
``noises[0]`` is x_T and ``noises[k]`` (k >= 1) the noise added by step k-1 (the last step
adds none). The running state and all schedule arithmetic stay float32; only the network runs
in the model's dtype.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ...errors import InputError
from ...progress import NO_CONTROL, RunControl
from .model import DanceDecoder

NUM_TIMESTEPS = 1000
COSINE_S = 0.008
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 2.0
#: Progress stage label passed to :meth:`RunControl.tick`.
STAGE = "edge"
#: ``on_step(k, x0, x)``: after step k, the clamped x0 and the new state (both fp32 ``(B, L, F)``).
StepFn = Callable[[int, torch.Tensor, torch.Tensor], None]


def cosine_alphas_cumprod(steps: int = NUM_TIMESTEPS, s: float = COSINE_S) -> torch.Tensor:
    """``(steps,)`` float32 ``alphas_cumprod`` of the cosine schedule, exactly as EDGE builds it.

    ``abar(t) = cos^2(((t/T) + s) / (1 + s) pi/2) / abar(0)``; ``beta_t = clip(1 - abar(t+1)/abar(t),
    0, 0.999)`` in float64, cast to float32, then ``cumprod(1 - beta)`` in float32.
    """
    x = np.linspace(0, steps + 1, steps + 1)
    abar = np.cos(((x / (steps + 1)) + s) / (1 + s) * np.pi * 0.5) ** 2
    abar = abar / abar[0]
    betas = torch.tensor(np.clip(1 - abar[1:] / abar[:-1], 0, 0.999), dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(steps: int = DEFAULT_STEPS, num_timesteps: int = NUM_TIMESTEPS) -> list[int]:
    """``reversed(int(linspace(-1, T - 1, steps + 1)))``: 999, 979, ..., 19, -1 for 50 steps."""
    if steps < 1 or steps > num_timesteps:
        raise InputError(f"DDIM steps must be in [1, {num_timesteps}], got {steps}")
    return list(reversed(torch.linspace(-1, num_timesteps - 1, steps=steps + 1).int().tolist()))


def guidance_ramp(steps: int, weight: float) -> list[float]:
    """Long mode's per-step weight ``min(linspace(0, 2w, steps)[k], w)``: 0 first, w from mid-way."""
    return [float(w) for w in np.clip(np.linspace(0, weight * 2, steps), None, weight)]


def ddim_coefficients(alpha: float, alpha_next: float, eta: float) -> tuple[float, float, float]:
    """``(sqrt(a'), c, sigma)`` of the DDIM update ``x' = sqrt(a') x0 + c eps + sigma z``.

    EDGE's float32 expressions ``sigma = eta sqrt((1 - a/a')(1 - a')/(1 - a))`` and
    ``c = sqrt(1 - a' - sigma^2)``, evaluated with IEEE-rounded float32 scalars (numpy), and ``c^2``
    clamped at 0. Why: at t = 999 (a = 2.4e-9) ``c^2`` is +-6e-8, decided by one rounding of
    ``sqrt``. Correctly rounded (the test vectors) it is +6e-8, c = 2^-12; torch's CPU ``sqrt`` on
    some processors is 1 ulp off and EDGE's own code then returns NaN motion.
    """
    f = np.float32
    a, an, one = f(alpha), f(alpha_next), f(1.0)
    sigma = f(eta) * np.sqrt((one - a / an) * (one - an) / (one - a))
    c2 = one - an - sigma ** 2
    return float(np.sqrt(an)), float(np.sqrt(max(c2, f(0.0)))), float(sigma)


def _noise_source(shape: Sequence[int], steps: int, generator: Optional[torch.Generator],
                  noises: Optional[torch.Tensor], device: torch.device) -> Callable[[int], torch.Tensor]:
    """``draw(i)``: the i-th Gaussian draw of the run (0 = x_T), float32 on ``device``."""
    if noises is not None:
        want = (steps, *shape)
        if tuple(noises.shape) != want:
            raise InputError(f"noises must be (steps={steps}, {', '.join(map(str, shape))}): x_T then one "
                             f"noise per step but the last, got {tuple(noises.shape)}")
        return lambda i: noises[i].to(device=device, dtype=torch.float32)
    source = generator.device if generator is not None else torch.device("cpu")
    return lambda i: torch.randn(tuple(shape), generator=generator, device=source,
                                 dtype=torch.float32).to(device)


def _model_place(model: DanceDecoder) -> tuple[torch.device, torch.dtype]:
    weight = model.input_projection.weight
    return weight.device, weight.dtype


@torch.no_grad()
def _ddim_loop(model: DanceDecoder, cond: torch.Tensor, steps: int, eta: float, weights: list[float],
               inpaint: bool, generator: Optional[torch.Generator], noises: Optional[torch.Tensor],
               control: RunControl, on_step: Optional[StepFn]) -> torch.Tensor:
    cfg = model.config
    if cond.ndim != 3:
        raise InputError(f"EDGE music features must be (windows, frames, channels), got {tuple(cond.shape)}")
    device, dtype = _model_place(model)
    batch, length = cond.shape[0], cond.shape[1]
    shape = (batch, length, cfg.nfeats)
    draw = _noise_source(shape, steps, generator, noises, device)
    cond = cond.to(device=device, dtype=dtype)
    schedule = cosine_alphas_cumprod()                    # CPU: the step coefficients below need no device sync
    acp = schedule.to(device)
    sqrt_recip, sqrt_recipm1 = torch.sqrt(1.0 / acp), torch.sqrt(1.0 / acp - 1)
    times = ddim_timesteps(steps)
    half = length // 2
    x = draw(0)
    for k, (time, time_next) in enumerate(zip(times[:-1], times[1:])):
        control.check_cancel()
        t = torch.full((batch,), time, device=device, dtype=torch.long)
        x0 = model.guided(x.to(dtype), cond, t, weights[k]).float().clamp(-1.0, 1.0)
        eps = (sqrt_recip[time] * x - x0) / sqrt_recipm1[time]
        if time_next < 0:
            x = x0
        else:
            root_next, c, sigma = ddim_coefficients(float(schedule[time]), float(schedule[time_next]), eta)
            x = x0 * root_next + c * eps + sigma * draw(k + 1)
            if inpaint and time > 0:
                x[1:, :half] = x[:-1, half:]
        if on_step is not None:
            on_step(k, x0, x)
        control.tick(STAGE, k + 1, steps)
    return x


def ddim_sample(model: DanceDecoder, cond: torch.Tensor, *, steps: int = DEFAULT_STEPS, eta: float = 1.0,
                guidance_weight: float = DEFAULT_GUIDANCE, generator: Optional[torch.Generator] = None,
                noises: Optional[torch.Tensor] = None, control: RunControl = NO_CONTROL,
                on_step: Optional[StepFn] = None) -> torch.Tensor:
    """EDGE's ``ddim_sample``: independent windows, constant guidance weight.

    Args:
        model: a :class:`DanceDecoder` in eval mode, on the device and in the dtype to run.
        cond: ``(B, L, C)`` music features of B windows (L = ``model.config.seq_len``).
        steps: DDIM steps (EDGE: 50). eta: DDIM stochasticity (EDGE: 1).
        guidance_weight: classifier-free guidance weight w (EDGE: 2).
        generator: seeds the noise (drawn on its device in float32, then moved).
        noises: ``(steps, B, L, F)`` stored noises instead of drawing (see module docstring).
        control: cancel hook and progress (``tick("edge", k, steps)`` after every step).
        on_step: optional ``on_step(k, x0, x)`` spy after every step.
    Returns:
        ``(B, L, F)`` float32 x0 in EDGE's normalised motion space, on the model's device.
    """
    return _ddim_loop(model, cond, steps, eta, [float(guidance_weight)] * steps, False, generator, noises,
                      control, on_step)


def long_ddim_sample(model: DanceDecoder, cond: torch.Tensor, *, guidance_weight: float = DEFAULT_GUIDANCE,
                     generator: Optional[torch.Generator] = None, noises: Optional[torch.Tensor] = None,
                     control: RunControl = NO_CONTROL, steps: int = DEFAULT_STEPS, eta: float = 1.0,
                     on_step: Optional[StepFn] = None) -> torch.Tensor:
    """EDGE's ``long_ddim_sample``: B consecutive windows at a hop of L/2, sampled jointly.

    ``cond`` ``(B, L, C)`` holds the music of windows starting every L/2 frames (L even). The
    guidance weight ramps as :func:`guidance_ramp`; after each update with ``t > 0`` the state obeys
    ``x[1:, :L/2] = x[:-1, L/2:]``. With B = 1 this is :func:`ddim_sample` (constant weight), as in
    EDGE. Other arguments and the return value as :func:`ddim_sample`.
    """
    if cond.ndim == 3 and cond.shape[0] == 1:
        return ddim_sample(model, cond, steps=steps, eta=eta, guidance_weight=guidance_weight,
                           generator=generator, noises=noises, control=control, on_step=on_step)
    if cond.ndim != 3 or cond.shape[1] % 2:
        raise InputError(f"long sampling needs music (windows, frames, channels) with an even number of "
                         f"frames (windows overlap by half), got {tuple(cond.shape)}")
    return _ddim_loop(model, cond, steps, eta, guidance_ramp(steps, float(guidance_weight)), True, generator,
                      noises, control, on_step)

