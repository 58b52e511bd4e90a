"""Stage 3 (motion modules + M2PEnc, 0.5 L_pix + 0.5 L_guid) on tiny CPU models.

As in test_stage2, torch's global RNG is re-seeded before every forward so that the noise,
timesteps and dropout draws repeat and a fixed batch can be overfitted.
"""
from __future__ import annotations

import pytest
import torch
from einops import rearrange

from m2pdance.m2penc.encoder.losses import guidance_loss
from m2pdance.m2penc.errors import InputError
from m2pdance.training.guidance_targets import GuidanceTargets
from m2pdance.training.stage3 import Stage3Module

from .test_stage2 import seeded_loss, tiny_parts

FRAMES = 4


def stage3_batch(m2penc: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """One clip; the guidance target is half of M2PEnc's initial guidance (reachable, far from the start)."""
    g = torch.Generator().manual_seed(seed)
    batch = {"reference": torch.rand(1, 3, 64, 64, generator=g),
             "frames": torch.rand(1, FRAMES, 3, 64, 64, generator=g),
             "features": torch.randn(1, FRAMES, 35, generator=g)}
    with torch.no_grad():
        batch["guidance"] = 0.5 * rearrange(m2penc(batch["features"]).guidance, "b c f h w -> b f c h w")
    return batch


def test_trainable_set_training_and_frozen_parts() -> None:
    """Overfits a fixed clip; exactly motion modules + M2PEnc (no heatmap head) change; the rest is bit-identical."""
    champ, m2penc = tiny_parts()
    module = Stage3Module(champ, m2penc, cond_drop=0.0)
    names = [n for n, _ in module.named_parameters()]
    intended = {n for n in names if n.startswith("denoising_unet.") and ".motion_modules." in n}
    intended |= {n for n in names if n.startswith("m2penc.") and not n.startswith("m2penc.heatmap_head.")}
    assert set(module.trainable_parameter_names()) == intended
    assert {n for n, p in module.named_parameters() if p.requires_grad} == intended

    module.train()
    unet = module.denoising_unet
    for frozen in (module.reference_unet, module.vae, module.image_encoder, module.m2penc.heatmap_head, unet.conv_in,
                   unet.time_embedding, unet.down_blocks[0].attentions[0], unet.down_blocks[0].resnets[0]):
        assert not frozen.training
    assert all(m.training for m in unet.motion_module_list()) and module.m2penc.guidance_head.training
    before = {k: v.clone() for k, v in module.state_dict().items()}
    batch = stage3_batch(m2penc)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(80):
        out = seeded_loss(module, batch)
        optimizer.zero_grad()
        out["loss"].backward()
        if not losses:
            assert all(p.grad is not None for p in module.parameters() if p.requires_grad)
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert set(out) == {"loss", "l_pix", "l_guid", "timestep", "kept"} and out["loss"].dtype == torch.float32
    torch.testing.assert_close(out["loss"].detach(), 0.5 * out["l_pix"] + 0.5 * out["l_guid"])
    assert losses[-1] <= 0.1 * losses[0], losses

    after = module.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == intended
    assert not any(p.grad is not None for p in module.parameters() if not p.requires_grad)


def test_pixel_loss_trains_m2penc_through_the_guidance() -> None:
    """guid_weight = 0: M2PEnc still gets gradient (from L_pix via guidance_fea) and changes."""
    champ, m2penc = tiny_parts()
    module = Stage3Module(champ, m2penc, pix_weight=1.0, guid_weight=0.0, cond_drop=0.0)
    batch = stage3_batch(m2penc)
    before = {k: v.clone() for k, v in module.m2penc.state_dict().items()}
    out = seeded_loss(module, batch)
    torch.testing.assert_close(out["loss"].detach(), out["l_pix"])
    out["loss"].backward()
    trained = [(n, p) for n, p in module.m2penc.named_parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in trained)
    torch.optim.AdamW([p for _, p in trained], lr=1e-3, weight_decay=0.0).step()
    after = module.m2penc.state_dict()
    assert {n for n, _ in trained} == {k for k in after if not torch.equal(after[k], before[k])}


def test_condition_dropout_and_guidance_targets_from_maps() -> None:
    champ, m2penc = tiny_parts()
    targets = GuidanceTargets(champ.guidance_encoders)
    g = torch.Generator().manual_seed(4)
    batch = stage3_batch(m2penc)
    maps = torch.randint(0, 256, (1, FRAMES, 4, 128, 128, 3), generator=g, dtype=torch.uint8)  # 128 px -> 16 grid
    batch = {k: v for k, v in batch.items() if k != "guidance"} | {"maps": maps}
    other = dict(batch, reference=torch.rand(1, 3, 64, 64, generator=g))
    with torch.no_grad():
        dropped = Stage3Module(champ, m2penc, targets, cond_drop=1.0)
        a, b = seeded_loss(dropped, batch), seeded_loss(dropped, other)
        assert float(a["kept"]) == 0 and torch.equal(a["loss"], b["loss"])
        kept = Stage3Module(champ, m2penc, targets, cond_drop=0.0)
        c, d = seeded_loss(kept, batch), seeded_loss(kept, other)
        assert abs(float(c["l_pix"]) - float(d["l_pix"])) > 1e-6
        want = guidance_loss(m2penc(batch["features"]).guidance, rearrange(targets(maps), "b f c h w -> b c f h w"))
        torch.testing.assert_close(c["l_guid"], want)
    # maps of another size (the paper's 640 px: an 80-grid target for a 64-grid M2PEnc): L_guid on M2PEnc's grid
    big = torch.randint(0, 256, (1, FRAMES, 4, 256, 256, 3), generator=g, dtype=torch.uint8)  # 256 px -> 32 grid
    with torch.no_grad():
        e = seeded_loss(kept, dict(batch, maps=big))
        target = rearrange(targets(big), "b f c h w -> b c f h w")
        assert target.shape[-1] == 32
        resized = torch.nn.functional.interpolate(rearrange(target, "b c f h w -> (b f) c h w"), size=(16, 16),
                                                  mode="bilinear", align_corners=False, antialias=True)
        want = guidance_loss(m2penc(batch["features"]).guidance,
                             rearrange(resized, "(b f) c h w -> b c f h w", b=1))
        torch.testing.assert_close(e["l_guid"], want)
    with pytest.raises(InputError, match="pass guidance_targets"):
        Stage3Module(champ, m2penc)(batch)
    with pytest.raises(InputError, match=r"\(B, 3, C, G, G\)"):
        kept(dict(batch, features=batch["features"][:, :3], frames=batch["frames"][:, :3]))
