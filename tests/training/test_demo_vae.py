"""The demo's small VAE run: crops, loss terms, the measured scaling factor, the file the loaders read."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.champ.config import VAEConfig
from m2pdance.m2penc.champ.models import _load_saved
from m2pdance.m2penc.errors import InputError
from m2pdance.training.demo.vae import VAEStageModule, build_demo_vae, latent_scale, save_demo_vae
from m2pdance.training.diffusion_loss import Draws

TINY = VAEConfig.preset("demo", block_out_channels=(8, 8, 8, 8), norm_num_groups=4)


def test_crops_are_on_the_8_pixel_grid_and_come_from_their_own_image():
    module = VAEStageModule(build_demo_vae(TINY, 0), crop=16)
    images = torch.arange(2 * 3 * 40 * 48, dtype=torch.float32).view(2, 3, 40, 48)
    crops = module._crops(images, Draws(torch.tensor([3, 9]), torch.device("cpu")))
    assert crops.shape == (2, 3, 16, 16)
    for i in range(2):
        top = int((crops[i, 0, 0, 0] - images[i, 0, 0, 0]) // 48)
        left = int(crops[i, 0, 0, 0] - images[i, 0, 0, 0]) % 48
        assert top % 8 == 0 and left % 8 == 0
        assert torch.equal(crops[i], images[i, :, top:top + 16, left:left + 16])
    with pytest.raises(InputError, match="multiple of 8"):
        VAEStageModule(build_demo_vae(TINY, 0), crop=12)


def test_loss_is_l1_plus_weighted_kl_and_per_sample_seeds_make_it_repeatable():
    vae = build_demo_vae(TINY, 0)
    batch = {"target": torch.rand(2, 3, 32, 32), "reference": torch.rand(2, 3, 32, 32), "seed": torch.tensor([1, 2])}
    module = VAEStageModule(vae, kl_weight=0.5, crop=None)
    out = module(batch)
    assert torch.allclose(out["loss"], out["l1"] + 0.5 * out["kl"])
    assert torch.equal(module(batch)["loss"], out["loss"])            # same seeds, same draws
    x = torch.cat([batch["target"], batch["reference"]]) * 2 - 1
    posterior = vae.encode(x).latent_dist
    kl = 0.5 * (posterior.mean ** 2 + posterior.var - 1 - posterior.logvar).mean()
    assert torch.allclose(out["kl"], kl.detach(), rtol=1e-5)


def test_latent_scale_is_one_over_the_std_of_the_latent_means(tmp_path):
    vae = build_demo_vae(TINY, 0)
    images = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        means = vae.encode(images * 2 - 1).latent_dist.mean
    assert latent_scale(vae, images, batch=4) == pytest.approx(float(1 / means.std()), rel=1e-5)
    path = save_demo_vae(vae, TINY.replace(scaling_factor=0.5), tmp_path / "vae.safetensors")
    loaded = _load_saved(path, torch.device("cpu"), torch.float32)
    assert loaded.config.scaling_factor == 0.5 and not loaded.config.mid_block_add_attention
    for key, value in vae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
