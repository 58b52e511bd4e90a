"""VAE and CLIP image-encoder loaders: legacy key formats of the released files."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from m2pdance.m2penc.champ import ImageEncoderConfig, VAEConfig
from m2pdance.m2penc.champ.autoencoder import build_vae, load_vae
from m2pdance.m2penc.champ.image_encoder import build_image_encoder, load_image_encoder
from m2pdance.m2penc.errors import WeightsMismatchError

_LEGACY = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}


def _legacy_name(key: str) -> str:
    if ".attentions." not in key:
        return key
    for new, old in _LEGACY.items():
        key = key.replace(new, old)
    return key


def test_vae_file_with_legacy_attention_names_loads(tmp_path):
    torch.manual_seed(0)
    vae = build_vae(VAEConfig.preset("tiny")).eval()
    legacy = {_legacy_name(k): v for k, v in vae.state_dict().items()}
    assert any(".query." in k for k in legacy)
    save_file(legacy, str(tmp_path / "vae.safetensors"))
    loaded = load_vae(tmp_path / "vae.safetensors", VAEConfig.preset("tiny"), device="cpu")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(vae.encode(x).latent_dist.mean, loaded.encode(x).latent_dist.mean)


def test_clip_file_with_persistent_position_ids_loads(tmp_path):
    torch.manual_seed(0)
    model = build_image_encoder(ImageEncoderConfig.preset("tiny")).eval()
    weights = dict(model.state_dict())
    weights["vision_model.embeddings.position_ids"] = torch.arange(17).unsqueeze(0)
    torch.save(weights, tmp_path / "clip.bin")
    loaded = load_image_encoder(tmp_path / "clip.bin", ImageEncoderConfig.preset("tiny"), device="cpu")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(model(pixel_values=x).image_embeds, loaded(pixel_values=x).image_embeds)

    weights["vision_model.embeddings.position_ids"] = torch.zeros(1, 17, dtype=torch.long)
    torch.save(weights, tmp_path / "clip.bin")
    with pytest.raises(WeightsMismatchError, match="position_ids"):
        load_image_encoder(tmp_path / "clip.bin", ImageEncoderConfig.preset("tiny"), device="cpu")
