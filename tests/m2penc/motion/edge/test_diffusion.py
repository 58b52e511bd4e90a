"""EDGE's samplers on a tiny random model: in-painting, guidance ramp, cancel, seeds, low precision.

The numbers against EDGE's own code are in ``test_model_vectors.py``; these tests pin the
behaviour the vectors cannot show (long mode with several windows, control flow, dtypes).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import GenerationCancelled, InputError
from m2pdance.m2penc.motion.edge import (DanceDecoder, EDGEConfig, cosine_alphas_cumprod, ddim_sample,
                                         ddim_timesteps, guidance_ramp, long_ddim_sample)
from m2pdance.m2penc.motion.edge.diffusion import ddim_coefficients
from m2pdance.m2penc.progress import RunControl

STEPS = 8


@pytest.fixture(scope="module")
def model() -> DanceDecoder:
    torch.manual_seed(0)
    return DanceDecoder(EDGEConfig.preset("tiny")).eval()


def _cond(windows: int, seed: int = 1) -> torch.Tensor:
    cfg = EDGEConfig.preset("tiny")
    return torch.randn(windows, cfg.seq_len, cfg.cond_feature_dim, generator=torch.Generator().manual_seed(seed))


def _spy_weights(model: DanceDecoder, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    weights: list[float] = []
    guided = model.guided

    def spy(x, cond, t, weight):
        weights.append(float(weight))
        return guided(x, cond, t, weight)

    monkeypatch.setattr(model, "guided", spy)
    return weights


def test_long_mode_inpaints_every_noisy_state_but_not_the_final_x0(model: DanceDecoder) -> None:
    half = model.config.seq_len // 2
    states: list[tuple[int, torch.Tensor]] = []
    out = long_ddim_sample(model, _cond(4), steps=STEPS, generator=torch.Generator().manual_seed(0),
                           on_step=lambda k, x0, x: states.append((k, x.clone())))
    assert [k for k, _ in states] == list(range(STEPS))
    for k, x in states[:-1]:  # every update with t > 0: window i starts with window i-1's second half
        assert torch.equal(x[1:, :half], x[:-1, half:]), f"constraint broken after step {k}"
    assert torch.equal(states[-1][1], out)
    assert not torch.equal(out[1:, :half], out[:-1, half:]), "the final x0 must be returned unconstrained"
    assert out.shape == (4, model.config.seq_len, 151) and out.dtype == torch.float32
    assert out.abs().max() <= 1.0


def test_long_mode_overlap_is_closer_than_independent_windows(model: DanceDecoder) -> None:
    half = model.config.seq_len // 2
    cond = _cond(4)
    joint = long_ddim_sample(model, cond, steps=STEPS, generator=torch.Generator().manual_seed(0))
    alone = ddim_sample(model, cond, steps=STEPS, generator=torch.Generator().manual_seed(0))
    gap = (joint[1:, :half] - joint[:-1, half:]).abs().mean()
    assert gap < (alone[1:, :half] - alone[:-1, half:]).abs().mean()


def test_guidance_ramp_values() -> None:
    ramp = guidance_ramp(50, 2.0)
    assert len(ramp) == 50 and ramp[0] == 0.0
    assert ramp == pytest.approx([min(4 * k / 49, 2.0) for k in range(50)], abs=1e-12)
    assert ramp[24] < 2.0 and ramp[25] == 2.0 and ramp[-1] == 2.0
    assert guidance_ramp(5, 3.0) == pytest.approx(list(np.clip(np.linspace(0, 6, 5), None, 3)))


def test_samplers_pass_the_ramp_or_constant_weight(model: DanceDecoder, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = _spy_weights(model, monkeypatch)
    long_ddim_sample(model, _cond(2), steps=STEPS, guidance_weight=2.0, generator=torch.Generator().manual_seed(0))
    assert weights == pytest.approx(guidance_ramp(STEPS, 2.0))
    weights.clear()
    ddim_sample(model, _cond(2), steps=STEPS, guidance_weight=2.5, generator=torch.Generator().manual_seed(0))
    assert weights == [2.5] * STEPS


def test_one_window_long_mode_is_plain_ddim(model: DanceDecoder) -> None:
    long = long_ddim_sample(model, _cond(1), steps=STEPS, generator=torch.Generator().manual_seed(5))
    plain = ddim_sample(model, _cond(1), steps=STEPS, generator=torch.Generator().manual_seed(5))
    assert torch.equal(long, plain)


def test_cancel_is_honoured_and_progress_reported(model: DanceDecoder) -> None:
    ticks: list[tuple[str, int, int]] = []
    control = RunControl(progress=lambda stage, done, total: ticks.append((stage, done, total)),
                         should_cancel=lambda: len(ticks) >= 3)
    with pytest.raises(GenerationCancelled):
        long_ddim_sample(model, _cond(2), steps=STEPS, control=control)
    assert ticks == [("edge", 1, STEPS), ("edge", 2, STEPS), ("edge", 3, STEPS)]


def test_seeded_generator_is_deterministic_and_matches_stored_noises(model: DanceDecoder) -> None:
    cond = _cond(2)
    a = ddim_sample(model, cond, steps=STEPS, generator=torch.Generator().manual_seed(7))
    b = ddim_sample(model, cond, steps=STEPS, generator=torch.Generator().manual_seed(7))
    c = ddim_sample(model, cond, steps=STEPS, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(7)  # documented layout: x_T, then one noise per step but the last
    noises = torch.stack([torch.randn(2, 30, 151, generator=g) for _ in range(STEPS)])
    assert torch.equal(ddim_sample(model, cond, steps=STEPS, noises=noises), a)


@pytest.mark.parametrize("dtype,max_atol,mean_atol", [(torch.float16, 2e-2, 3e-3), (torch.bfloat16, 1e-1, 2e-2)])
def test_low_precision_agrees_with_fp32(model: DanceDecoder, dtype: torch.dtype, max_atol: float,
                                        mean_atol: float) -> None:
    """Same noise, model cast to fp16/bf16 (measured: fp16 5e-3 max, bf16 3e-2 max)."""
    low = DanceDecoder(model.config)
    low.load_state_dict(model.state_dict())
    low = low.to(dtype).eval()
    cond = _cond(3)
    ref = long_ddim_sample(model, cond, steps=STEPS, generator=torch.Generator().manual_seed(1))
    out = long_ddim_sample(low, cond, steps=STEPS, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.float32
    err = (out - ref).abs()
    assert err.max() < max_atol and err.mean() < mean_atol, (err.max().item(), err.mean().item())


def test_schedule_and_coefficients() -> None:
    acp = cosine_alphas_cumprod()
    assert acp.shape == (1000,) and acp.dtype == torch.float32
    assert torch.all(acp[1:] < acp[:-1]) and 0 < acp[-1] < 1e-8
    assert ddim_timesteps(50)[:3] == [999, 979, 959] and ddim_timesteps(50)[-2:] == [19, -1]
    # t = 999 -> 799: float32 c^2 is one rounding away from negative; never NaN, c = 2^-12 as EDGE's vectors.
    root, c, sigma = ddim_coefficients(float(acp[999]), float(acp[799]), 1.0)
    assert c == 2.0 ** -12 and root == pytest.approx(acp[799].sqrt().item())
    assert sigma == pytest.approx(np.sqrt(1 - acp[799].item()), rel=1e-6)
    assert ddim_coefficients(float(acp[799]), float(acp[599]), 0.0)[2] == 0.0


def test_bad_inputs_name_the_fix(model: DanceDecoder) -> None:
    with pytest.raises(InputError, match="even number of frames"):
        long_ddim_sample(model.__class__(EDGEConfig.preset("tiny", seq_len=31)).eval(),
                         torch.randn(2, 31, 35), steps=2)
    with pytest.raises(InputError, match="noises must be"):
        ddim_sample(model, _cond(2), steps=3, noises=torch.randn(4, 2, 30, 151))
    with pytest.raises(InputError, match="seq_len=30"):
        ddim_sample(model, torch.randn(1, 40, 35), steps=2)
    with pytest.raises(InputError, match="baseline"):
        ddim_sample(model, torch.randn(1, 30, 4800), steps=2)


def test_the_step_loop_never_waits_for_the_device() -> None:
    """On CUDA every ``float(tensor)`` in the loop is a host sync; a meta-device model makes any of them an error."""
    cfg = EDGEConfig.preset("tiny")
    with torch.device("meta"):
        meta = DanceDecoder(cfg).eval()
    cond = torch.zeros(3, cfg.seq_len, cfg.cond_feature_dim, device="meta")
    out = long_ddim_sample(meta, cond, steps=3, generator=torch.Generator().manual_seed(0))
    assert out.device.type == "meta" and out.shape == (3, cfg.seq_len, cfg.nfeats)
