"""Building, saving, loading: our safetensors round trip, Champ-format loading and clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from m2pdance.m2penc.champ import (ChampModels, DenoisingUNetConfig, GuidanceEncoderConfig, build_champ,
                                   encode_pose_guidance, load_champ_files, predict_noise,
                                   save_champ_models)
from m2pdance.m2penc.champ.keymap import _RENAMES
from m2pdance.m2penc.errors import WeightsMismatchError, WeightsNotFoundError


def _prediction(models: ChampModels, reference, maps) -> torch.Tensor:
    latents = torch.randn((1, 4, 8, 8, 8), generator=torch.Generator().manual_seed(3))
    return predict_noise(models, reference, latents, 999, encode_pose_guidance(models, maps), guidance_scale=3.5)


def _to_champ_motion_key(key: str) -> str:
    """Inverse of the key map, for writing a Champ-format file in the test."""
    block, _, rest = key.partition(".motion_modules.")
    index, _, rest = rest.partition(".")
    for old, new in reversed(_RENAMES):
        rest = rest.replace(new.lstrip("."), old.lstrip("."))
    return f"{block}.motion_modules.{index}.temporal_transformer.{rest}"


def _write_champ_dir(models: ChampModels, folder: Path) -> None:
    unet = models.denoising_unet.state_dict()
    motion = {_to_champ_motion_key(k): v for k, v in unet.items() if ".motion_modules." in k}
    for key in [k for k in motion if k.endswith("attention_blocks.0.pos_encoder.pe")]:
        motion[key.replace("attention_blocks.0", "attention_blocks.1")] = motion[key].clone()
    torch.save({k: v for k, v in unet.items() if ".motion_modules." not in k}, folder / "denoising_unet.pth")
    torch.save(motion, folder / "motion_module.pth")
    torch.save(models.reference_unet.state_dict(), folder / "reference_unet.pth")
    for name, encoder in models.guidance_encoders.items():
        torch.save(encoder.state_dict(), folder / f"guidance_encoder_{name}.pth")
    models.vae.save_pretrained(folder / "vae")
    models.image_encoder.save_pretrained(folder / "image_encoder")


def test_save_load_round_trip_gives_identical_outputs(tmp_path, tiny_models, tiny_reference, tiny_maps):
    save_champ_models(tiny_models, tmp_path)
    loaded = load_champ_files(tmp_path / "denoising_unet.safetensors", tmp_path / "vae.safetensors",
                              tmp_path / "image_encoder.safetensors", device="cpu", dtype="fp32")
    assert sorted(loaded.guidance_encoders) == ["dwpose", "normal"]
    for name, module in tiny_models.modules().items():
        theirs = loaded.modules()[name].state_dict()
        assert all(torch.equal(v, theirs[k]) for k, v in module.state_dict().items()), name
    assert torch.equal(_prediction(tiny_models, tiny_reference, tiny_maps),
                       _prediction(loaded, tiny_reference, tiny_maps))


def test_champ_format_folder_loads_strictly(tmp_path, tiny_models, tiny_reference, tiny_maps):
    _write_champ_dir(tiny_models, tmp_path)
    loaded = load_champ_files(tmp_path / "denoising_unet.pth", tmp_path / "vae", tmp_path / "image_encoder",
                              device="cpu", dtype="fp32", unet_config=DenoisingUNetConfig.preset("tiny"),
                              guidance_config=GuidanceEncoderConfig.preset("tiny"))
    assert sorted(loaded.guidance_encoders) == ["dwpose", "normal"]
    assert torch.equal(_prediction(tiny_models, tiny_reference, tiny_maps),
                       _prediction(loaded, tiny_reference, tiny_maps))
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(tiny_models.image_encoder(pixel_values=image).image_embeds,
                       loaded.image_encoder(pixel_values=image).image_embeds)


def test_mismatched_champ_file_names_the_file(tmp_path, tiny_models):
    _write_champ_dir(tiny_models, tmp_path)
    weights = torch.load(tmp_path / "reference_unet.pth", weights_only=True)
    weights.pop("conv_in.weight")
    weights["conv_in.bias"] = torch.zeros(7)
    torch.save(weights, tmp_path / "reference_unet.pth")
    with pytest.raises(WeightsMismatchError, match=r"reference_unet\.pth(.|\n)*conv_in\.weight(.|\n)*conv_in\.bias"):
        load_champ_files(tmp_path / "denoising_unet.pth", tmp_path / "vae", tmp_path / "image_encoder",
                         device="cpu", dtype="fp32", unet_config=DenoisingUNetConfig.preset("tiny"),
                         guidance_config=GuidanceEncoderConfig.preset("tiny"))


def test_missing_champ_file_is_reported(tmp_path, tiny_models):
    _write_champ_dir(tiny_models, tmp_path)
    (tmp_path / "motion_module.pth").unlink()
    with pytest.raises(WeightsNotFoundError, match="motion_module"):
        load_champ_files(tmp_path / "denoising_unet.pth", tmp_path / "vae", tmp_path / "image_encoder", device="cpu",
                         unet_config=DenoisingUNetConfig.preset("tiny"),
                         guidance_config=GuidanceEncoderConfig.preset("tiny"))


def test_same_seed_same_weights_different_seed_different():
    a = build_champ("tiny", seed=5, guidance_types=("dwpose",)).denoising_unet.state_dict()
    b = build_champ("tiny", seed=5, guidance_types=("dwpose",)).denoising_unet.state_dict()
    c = build_champ("tiny", seed=6, guidance_types=("dwpose",)).denoising_unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
