"""Sampler behaviour on tiny models: seeds, CFG rules, windows, dtypes, progress and cancel."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from m2pdance.m2penc.champ import (build_champ, decode_latents, encode_pose_guidance, encode_reference,
                                   make_scheduler, predict_noise_branches, sample_video)
from m2pdance.m2penc.errors import GenerationCancelled, InputError
from m2pdance.m2penc.progress import RunControl


def _sample(models, reference, guidance, seed: int, **kwargs) -> torch.Tensor:
    return sample_video(models, reference, guidance, num_steps=2, guidance_scale=3.5,
                        generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.fixture(scope="module")
def guidance(tiny_models, tiny_maps):
    return encode_pose_guidance(tiny_models, tiny_maps)


def test_scheduler_matches_champ_timesteps():
    assert make_scheduler(20).timesteps.tolist() == list(range(999, 0, -50))
    assert make_scheduler(20).config.prediction_type == "v_prediction"


def test_same_seed_same_latents_different_seed_different(tiny_models, tiny_reference, guidance):
    a = _sample(tiny_models, tiny_reference, guidance, seed=11)
    b = _sample(tiny_models, tiny_reference, guidance, seed=11)
    c = _sample(tiny_models, tiny_reference, guidance, seed=12)
    assert a.shape == (1, 4, 8, 8, 8)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-2


def test_uncond_branch_sees_no_reference_and_cond_does(tiny_models, tiny_reference, guidance):
    latents = torch.randn(1, 4, 8, 8, 8)
    other_bank = {k: torch.randn_like(v) for k, v in tiny_reference.bank.items()}
    other = dataclasses.replace(tiny_reference, bank=other_bank)
    u1, c1 = predict_noise_branches(tiny_models, tiny_reference, latents, 500, guidance)
    u2, c2 = predict_noise_branches(tiny_models, other, latents, 500, guidance)
    assert torch.equal(u1, u2)
    assert (c1 - c2).abs().max() > 1e-4


def test_context_windows_run_longer_clips(tiny_models, tiny_reference, tiny_maps):
    maps = {k: torch.cat([v, v[:3]]) for k, v in tiny_maps.items()}  # 11 frames
    guidance = encode_pose_guidance(tiny_models, maps)
    latents = _sample(tiny_models, tiny_reference, guidance, seed=0, context_size=4, context_overlap=1)
    assert latents.shape == (1, 4, 11, 8, 8) and torch.isfinite(latents).all()


def test_too_many_frames_for_one_pass_is_rejected(tiny_models, tiny_reference):
    latents = torch.randn(1, 4, 33, 8, 8)
    with pytest.raises(InputError, match="at most 32 frames"):
        predict_noise_branches(tiny_models, tiny_reference, latents, 999, torch.zeros(1, 32, 33, 8, 8))
    with pytest.raises(InputError, match="context_size"):
        sample_video(tiny_models, tiny_reference, torch.zeros(1, 32, 40, 8, 8), context_size=40)


def _one_step(dtype: str, maps: torch.Tensor) -> torch.Tensor:
    models = build_champ("tiny", seed=0, dtype=dtype, guidance_types=("dwpose",))
    reference = encode_reference(models, torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(3)))
    guidance = encode_pose_guidance(models, {"dwpose": maps})
    assert guidance.dtype == models.dtype
    return sample_video(models, reference, guidance, num_steps=2, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dtype,tolerance", [("bf16", 0.08), ("fp16", 0.01)])
def test_reduced_precision_agrees_with_fp32(dtype, tolerance, tiny_maps):
    """Same weights and noise: the half-precision U-Net lands where fp32 does (latents stay fp32)."""
    maps = tiny_maps["dwpose"][:4]
    reference = _one_step("fp32", maps)
    latents = _one_step(dtype, maps)
    assert latents.dtype == torch.float32
    error = float((latents - reference).abs().max() / reference.abs().max())
    assert error < tolerance, error
    assert float(reference.abs().mean()) > 0.1                   # not a vacuous comparison of zeros


def test_pose_driven_generation_end_to_end_with_progress_and_cancel(tiny_models, tiny_maps):
    events = []
    control = RunControl(progress=lambda stage, done, total: events.append((stage, done, total)))
    image = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(4))
    reference = encode_reference(tiny_models, image)
    guidance = encode_pose_guidance(tiny_models, tiny_maps)
    latents = sample_video(tiny_models, reference, guidance, num_steps=3, generator=torch.Generator().manual_seed(0),
                           control=control)
    frames = decode_latents(tiny_models.vae, latents, chunk_size=4, control=control)
    assert frames.shape == (8, 64, 64, 3) and frames.min() >= 0 and frames.max() <= 1
    assert events == [("denoise", 1, 3), ("denoise", 2, 3), ("denoise", 3, 3), ("decode", 4, 8), ("decode", 8, 8)]

    steps = []
    cancel = RunControl(progress=lambda stage, done, total: steps.append(done), should_cancel=lambda: len(steps) >= 2)
    with pytest.raises(GenerationCancelled):
        sample_video(tiny_models, reference, guidance, num_steps=5, control=cancel)
    assert steps == [1, 2]


def test_mismatched_guidance_is_rejected(tiny_models, tiny_reference):
    with pytest.raises(InputError, match="guidance_fea"):
        predict_noise_branches(tiny_models, tiny_reference, torch.randn(1, 4, 8, 8, 8), 999,
                               torch.zeros(1, 32, 7, 8, 8))
