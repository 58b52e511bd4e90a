"""What training stages 2-3 need from the Champ core: the U-Net without motion modules, one
reference bank entry per batch element, and a ReferenceNet bank that keeps its gradient."""
from __future__ import annotations

import copy

import torch
from diffusers import UNet2DConditionModel

from m2pdance.m2penc.champ import ChampModels
from m2pdance.m2penc.champ.denoising_unet import is_motion_parameter
from m2pdance.m2penc.champ.reference_attention import ReferenceRead


def _inputs(b: int, f: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 4, f, 8, 8, generator=g), torch.tensor([10, 700][:b]),
            torch.randn(b, 1, 32, generator=g))


@torch.no_grad()
def test_without_motion_modules_is_the_spatial_unet(tiny_models: ChampModels) -> None:
    """motion_modules=False == diffusers' 2-D U-Net with the spatial weights, frame by frame."""
    unet = tiny_models.denoising_unet.eval()
    spatial = UNet2DConditionModel(**unet.m2p_config.spatial().diffusers_kwargs()).eval()
    weights = {k: v for k, v in unet.state_dict().items() if not is_motion_parameter(k)}
    spatial.load_state_dict(weights, strict=True)
    latents, t, embeds = _inputs(2, 3)
    out = unet(latents, t, embeds, motion_modules=False)
    for f in range(3):
        want = spatial(latents[:, :, f], t, encoder_hidden_states=embeds, return_dict=False)[0]
        torch.testing.assert_close(out[:, :, f], want, atol=1e-5, rtol=1e-5)
    with_motion = unet(latents, t, embeds)
    assert (with_motion - out).abs().max() > 1e-3          # the default runs the motion modules again


@torch.no_grad()
def test_bank_with_one_entry_per_batch_element(tiny_models: ChampModels) -> None:
    unet, ref = tiny_models.denoising_unet.eval(), tiny_models.reference_unet.eval()
    latents, t, embeds = _inputs(2, 2, seed=1)
    latents, embeds = torch.cat([latents, latents[:1]]), torch.cat([embeds, embeds[:1]])
    t = torch.tensor([10, 700, 300])
    refs = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    bank = ref.write_bank(refs, embeds)
    flags = (True, False, True)
    batched = unet(latents, t, embeds, reference=ReferenceRead(bank, flags))
    for i, flag in enumerate(flags):
        own = ReferenceRead({k: v[i:i + 1] for k, v in bank.items()}, (True,)) if flag else None
        single = unet(latents[i:i + 1], t[i:i + 1], embeds[i:i + 1], reference=own)
        torch.testing.assert_close(batched[i:i + 1], single, atol=1e-5, rtol=1e-5)


def test_write_bank_keeps_the_graph_only_when_asked(tiny_models: ChampModels) -> None:
    ref = copy.deepcopy(tiny_models.reference_unet).requires_grad_(True)     # loaders freeze; training unfreezes
    latents, _, embeds = _inputs(1, 1, seed=2)
    detached = ref.write_bank(latents[:, :, 0], embeds)
    assert all(not v.requires_grad for v in detached.values())
    bank = ref.write_bank(latents[:, :, 0], embeds, torch.float32, track_grad=True)
    torch.testing.assert_close(bank, {k: v.float() for k, v in detached.items()}, atol=1e-2, rtol=1e-2)
    sum(v.square().sum() for v in bank.values()).backward()
    grad = ref.conv_in.weight.grad
    assert grad is not None and grad.abs().sum() > 0
