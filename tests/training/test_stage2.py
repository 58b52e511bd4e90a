"""Stage 2 (per-frame U-Net + ReferenceNet) and the shared diffusion loss, on tiny CPU models.

Overfitting needs the same noise, timesteps and dropout draws every step: the tests re-seed
torch's global RNG before every forward (the module draws from it, as the engine expects).
"""
from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from m2pdance.m2penc.champ import ChampModels, build_champ
from m2pdance.m2penc.encoder import M2PEncConfig
from m2pdance.m2penc.encoder.model import M2PEnc
from m2pdance.m2penc.errors import InputError
from m2pdance.training.diffusion_loss import (CHAMP_TRAIN_SCHEDULER_CONFIG, diffusion_loss, make_train_scheduler,
                                              snr)
from m2pdance.training.stage2 import Stage2Module

#: Tiny Champ's conv_in width (block_out_channels[0]): M2PEnc's guidance channels.
WIDTH = 32


def tiny_parts(seed: int = 0) -> tuple[ChampModels, M2PEnc]:
    torch.manual_seed(seed)
    return build_champ("tiny", seed=seed), M2PEnc(M2PEncConfig.preset("tiny", guidance_channels=WIDTH))


def stage2_batch(seed: int = 0, b: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"reference": torch.rand(b, 3, 64, 64, generator=g), "target": torch.rand(b, 3, 64, 64, generator=g),
            "features": torch.randn(b, 8, 35, generator=g), "frame": torch.tensor([1, 5, 0, 7][:b])}


def seeded_loss(module: torch.nn.Module, batch: dict, seed: int = 123) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return module(batch)


# ----- the diffusion loss --------------------------------------------------------------------

def test_train_scheduler_is_champs() -> None:
    sched = make_train_scheduler()
    assert sched.config.prediction_type == "v_prediction" and sched.config.beta_schedule == "scaled_linear"
    champ = DDIMScheduler(**CHAMP_TRAIN_SCHEDULER_CONFIG, timestep_spacing="trailing")   # what train_s1 builds
    assert torch.equal(sched.alphas_cumprod, champ.alphas_cumprod)
    assert sched.alphas_cumprod[-1] == 0 and abs(float(sched.alphas_cumprod[0]) - 0.99915) < 1e-5


def test_v_mse_is_snr_weighted_x0_and_eps_mse() -> None:
    """|v_hat - v|^2 = (1 + SNR) |x0_hat - x0|^2 = (1 + 1/SNR) |eps_hat - eps|^2, per sample."""
    sched = make_train_scheduler()
    g = torch.Generator().manual_seed(0)
    x0, eps, v_hat = (torch.randn(4, 4, 1, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0, 250, 700, 999])
    abar = sched.alphas_cumprod[t].double().view(-1, 1, 1, 1, 1)
    alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    x_t, v = alpha * x0 + sigma * eps, alpha * eps - sigma * x0
    x0_hat, eps_hat = alpha * x_t - sigma * v_hat, sigma * x_t + alpha * v_hat
    ratio = snr(sched, t).double()
    v_mse = (v_hat - v).square().flatten(1).mean(1)
    torch.testing.assert_close(v_mse, (1 + ratio) * (x0_hat - x0).square().flatten(1).mean(1))
    torch.testing.assert_close(v_mse[:3], (1 + 1 / ratio[:3]) * (eps_hat - eps).square().flatten(1).mean(1)[:3])
    torch.testing.assert_close(v.float(), sched.get_velocity(x0.float(), eps.float(), t), atol=1e-6, rtol=1e-6)


def test_diffusion_loss_values() -> None:
    sched, latents = make_train_scheduler(), torch.randn(3, 4, 2, 8, 8)
    seen = {}

    def exact(noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen["t"] = t
        abar = sched.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
        eps = (noisy - abar.sqrt() * latents) / (1 - abar).sqrt()
        return abar.sqrt() * eps - (1 - abar).sqrt() * latents          # the true velocity

    torch.manual_seed(5)
    loss, parts = diffusion_loss(exact, latents, sched)
    assert loss.dtype == torch.float32 and float(loss) < 1e-8 and set(parts) == {"l_pix", "timestep"}
    assert seen["t"].dtype == torch.long and ((0 <= seen["t"]) & (seen["t"] < 1000)).all()

    torch.manual_seed(5)
    zero, _ = diffusion_loss(lambda x, t: torch.zeros_like(x), latents, sched)
    torch.manual_seed(5)
    noise, t = torch.randn_like(latents), torch.randint(0, 1000, (3,))
    target = sched.get_velocity(latents, noise, t)
    torch.testing.assert_close(zero, target.square().mean())
    torch.manual_seed(5)
    weighted, _ = diffusion_loss(lambda x, t: torch.zeros_like(x), latents, sched, snr_gamma=5.0)
    ratio = snr(sched, t) + 1
    torch.testing.assert_close(weighted, (target.square().flatten(1).mean(1) * ratio.clamp(max=5) / ratio).mean())


# ----- stage 2 -------------------------------------------------------------------------------

def test_trainable_set_training_and_frozen_parts() -> None:
    """Overfits a fixed batch; exactly the intended parameters change; the rest and all buffers are bit-identical."""
    champ, m2penc = tiny_parts()
    module = Stage2Module(champ, m2penc, cond_drop=0.0)
    names = [n for n, _ in module.named_parameters()]
    intended = {n for n in names if n.startswith("denoising_unet.") and ".motion_modules." not in n}
    intended |= {n for n in names
                 if n.startswith("reference_unet.") and not n.startswith("reference_unet.up_blocks.1.")}
    inert = {n for n in intended if ".transformer_blocks.0." in n and n.split(".transformer_blocks.0.")[1].startswith(
        ("norm2.", "attn2.to_q.", "attn2.to_k."))}
    assert len(inert) == 4 * 6                    # norm2 weight+bias, to_q, to_k of 6 trained spatial blocks
    intended -= inert
    assert set(module.trainable_parameter_names()) == intended
    assert {n for n, p in module.named_parameters() if p.requires_grad} == intended

    module.train()
    for frozen in (module.vae, module.image_encoder, module.m2penc, module.reference_unet.up_blocks[-1],
                   *module.denoising_unet.motion_module_list()):
        assert not frozen.training
    assert module.denoising_unet.training and module.reference_unet.training and module.training
    before = {k: v.clone() for k, v in module.state_dict().items()}
    batch = stage2_batch()
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(40):
        out = seeded_loss(module, batch)
        optimizer.zero_grad()
        out["loss"].backward()
        if not losses:
            assert all(p.grad is not None for p in module.parameters() if p.requires_grad)
            _assert_inert(module, batch, inert)
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert set(out) == {"loss", "l_pix", "timestep", "kept"} and out["loss"].dtype == torch.float32
    assert losses[-1] <= 0.1 * losses[0], losses

    after = module.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == intended
    assert not any(p.grad is not None for p in module.parameters() if not p.requires_grad)


def _assert_inert(module: Stage2Module, batch: dict, inert: set[str]) -> None:
    """The left-out cross-attention parameters get a zero gradient (one CLIP token: softmax over one key)."""
    params = [p.requires_grad_(True) for n, p in module.named_parameters() if n in inert]
    grads = torch.autograd.grad(seeded_loss(module, batch)["loss"], params)
    for param in params:
        param.requires_grad_(False)
    assert max(float(g.abs().max()) for g in grads) < 1e-7          # zero up to rounding (~1e-10 seen)


def test_condition_dropout_drops_reference_and_clip() -> None:
    champ, m2penc = tiny_parts()
    batch = stage2_batch(b=2)
    other = dict(batch, reference=torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(9)))
    with torch.no_grad():
        dropped = Stage2Module(champ, m2penc, cond_drop=1.0)
        a, b = seeded_loss(dropped, batch), seeded_loss(dropped, other)
        assert float(a["kept"]) == 0 and torch.equal(a["loss"], b["loss"])
        kept = Stage2Module(champ, m2penc, cond_drop=0.0)
        c, d = seeded_loss(kept, batch), seeded_loss(kept, other)
        assert float(c["kept"]) == 1 and abs(float(c["loss"]) - float(d["loss"])) > 1e-6
        assert abs(float(a["loss"]) - float(c["loss"])) > 1e-6
        # per sample: with one of two samples dropped, changing only the dropped reference changes nothing
        half = Stage2Module(champ, m2penc, cond_drop=0.5)
        seed = next(s for s in range(100) if _kept(s, 2, 0.5) == [True, False])
        mixed = dict(batch, reference=torch.stack([batch["reference"][0], other["reference"][1]]))
        e, f = seeded_loss(half, batch, seed), seeded_loss(half, mixed, seed)
        assert float(e["kept"]) == 0.5 and torch.equal(e["loss"], f["loss"])
        mixed = dict(batch, reference=torch.stack([other["reference"][0], batch["reference"][1]]))
        assert abs(float(seeded_loss(half, mixed, seed)["loss"]) - float(e["loss"])) > 1e-6


def _kept(seed: int, b: int, p: float) -> list[bool]:
    torch.manual_seed(seed)
    return (torch.rand(b) >= p).tolist()


def test_batch_and_model_checks() -> None:
    champ, _ = tiny_parts()
    with pytest.raises(InputError, match="guidance_channels=32"):
        Stage2Module(champ, M2PEnc(M2PEncConfig.preset("tiny")))
    champ, m2penc = tiny_parts()
    module = Stage2Module(champ, m2penc)
    batch = stage2_batch()
    with pytest.raises(InputError, match="divide uint8 frames by 255"):
        module(dict(batch, target=batch["target"] * 255))
    with pytest.raises(InputError, match="feature window"):
        module(dict(batch, frame=torch.tensor([0, 8])))
    with pytest.raises(InputError, match="multiples of 8"):
        module(dict(batch, target=batch["target"][..., :60]))


def test_unet_gets_m2penc_guidance_at_the_target_frame_without_motion_modules() -> None:
    champ, m2penc = tiny_parts()
    module = Stage2Module(champ, m2penc, cond_drop=0.0)
    batch, seen = stage2_batch(), {}

    def spy(unet: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.update(guidance_fea=args[3], embeds=args[2], **kwargs)

    handle = module.denoising_unet.register_forward_pre_hook(spy, with_kwargs=True)
    with torch.no_grad():
        seeded_loss(module, batch)
        handle.remove()
        guidance = m2penc(batch["features"]).guidance                               # (B, C, L, G, G)
        at_frame = torch.stack([guidance[i, :, int(f)] for i, f in enumerate(batch["frame"])]).unsqueeze(2)
        want = torch.nn.functional.interpolate(at_frame[:, :, 0], size=(8, 8), mode="bilinear",
                                               align_corners=False).unsqueeze(2)   # 64 px frames -> 8 x 8 latents
    torch.testing.assert_close(seen["guidance_fea"], want)
    assert seen["motion_modules"] is False and seen["embeds"].shape == (2, 1, 32)


# ----- Champ's image stage: guided by the rendered maps, the guidance encoders trained too ------------------

def maps_batch(seed: int = 0, b: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed + 1)
    return {**stage2_batch(seed, b), "maps": torch.randint(0, 256, (b, 4, 64, 64, 3), generator=g, dtype=torch.uint8)}


def test_image_stage_guides_with_the_maps_and_trains_the_encoders() -> None:
    from m2pdance.m2penc.champ.pose_guidance import encode_with
    from m2pdance.training.guidance_targets import MAP_ORDER

    champ, _ = tiny_parts()
    module = Stage2Module(champ, None, cond_drop=0.0, guidance_encoders=champ.guidance_encoders)
    names = [n for n, _ in module.named_parameters()]
    encoders = {n for n in names if n.startswith("guidance_encoders.")}
    unused = {n for n in encoders if ".guidance_attention." in n or
              any(f".attentions.{i}." in n for i in range(5))}
    assert unused and set(module.trainable_parameter_names()) >= encoders - unused
    assert not set(module.trainable_parameter_names()) & unused          # Champ's unused attentions stay out
    assert not any(n.startswith("m2penc.") for n in names)

    batch, seen = maps_batch(), {}
    handle = module.denoising_unet.register_forward_pre_hook(lambda m, a, k: seen.update(fea=a[3]), with_kwargs=True)
    with torch.no_grad():
        seeded_loss(module, batch)
        frames = {t: batch["maps"][:, i].permute(0, 3, 1, 2) for i, t in enumerate(MAP_ORDER)}
        want = encode_with(champ.guidance_encoders, frames)[0].permute(1, 0, 2, 3).unsqueeze(2)   # (B, C, 1, 8, 8)
    handle.remove()
    torch.testing.assert_close(seen["fea"], want)

    before = {n: p.detach().clone() for n, p in module.named_parameters() if n in encoders}
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(25):
        out = seeded_loss(module, batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.5 * losses[0], losses
    changed = {n for n, p in module.named_parameters() if n in encoders and not torch.equal(p, before[n])}
    assert changed == encoders - unused


def test_image_stage_refusals() -> None:
    champ, m2penc = tiny_parts()
    with pytest.raises(InputError, match="pass one of them"):
        Stage2Module(champ, None)
    module = Stage2Module(champ, None, guidance_encoders=champ.guidance_encoders)
    with pytest.raises(InputError, match="maps=True"):
        module(stage2_batch())
    three = {t: e for t, e in champ.guidance_encoders.items() if t != "dwpose"}
    with pytest.raises(InputError, match="missing \\['dwpose'\\]"):
        Stage2Module(champ, m2penc, guidance_encoders=three)
