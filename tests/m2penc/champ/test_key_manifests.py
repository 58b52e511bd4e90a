"""Full-size key manifests: every ``*.keys.json`` of the real Champ / SD checkpoints must fit.

Each module is instantiated at full size on the meta device (no memory, no init); Champ's key
names go through ``champ_to_m2p_keys`` (VAE/CLIP through their loaders' rules), and the result
must have 0 missing, 0 unexpected and 0 mis-shaped keys.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest
import torch
from torch import nn

from m2pdance.m2penc.checkpoint import compare_state_dict
from m2pdance.m2penc.errors import WeightsMismatchError
from m2pdance.m2penc.champ import (DenoisingUNet3D, DenoisingUNetConfig, GuidanceEncoder, GuidanceEncoderConfig,
                                   ImageEncoderConfig, ReferenceUNet, UNetConfig, VAEConfig, champ_to_m2p_keys)
from m2pdance.m2penc.champ.autoencoder import build_vae
from m2pdance.m2penc.champ.image_encoder import _drop_position_ids, build_image_encoder
from m2pdance.m2penc.champ.loading import build_on_meta

REPO = Path(__file__).resolve().parents[3]
SPEC = Path(os.environ.get("M2P_CHAMP_SPEC", REPO.parent / "shared" / "spec" / "champ"))
Shapes = dict[str, tuple[int, ...]]


def _manifest(name: str) -> dict[str, list[int]]:
    return json.loads((SPEC / f"{name}.keys.json").read_text())


def _sinusoid_table(shape: list[int]) -> torch.Tensor:
    """AnimateDiff's sinusoidal position table ``(1, L, C)``: what Champ stores, twice per motion module."""
    _, length, channels = shape
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / channels))
    table = torch.zeros(length, channels)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * freq), torch.cos(position * freq)
    return table[None]


def _fake_tensors(manifest: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Meta tensors of the listed shapes; position tables are real (the key map compares the twins)."""
    def make(key: str, shape: list[int]) -> torch.Tensor:
        if key.endswith("pos_encoder.pe"):
            return _sinusoid_table(shape)
        if key.endswith("position_ids"):
            return torch.arange(shape[-1]).expand(shape)
        return torch.empty(shape, device="meta")
    return {k: make(k, v) for k, v in manifest.items()}


def _shapes(state_dict: dict[str, torch.Tensor]) -> Shapes:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _denoiser_part(motion: bool) -> Shapes:
    unet = build_on_meta(lambda: DenoisingUNet3D(DenoisingUNetConfig.preset("sd15")))
    return {k: v for k, v in _shapes(unet.state_dict()).items() if (".motion_modules." in k) == motion}


def _module_keys(factory: Callable[[], nn.Module]) -> Shapes:
    return _shapes(build_on_meta(factory).state_dict())


EXPECTED: dict[str, Callable[[], Shapes]] = {
    "denoising_unet": lambda: _denoiser_part(motion=False),
    "motion_module": lambda: _denoiser_part(motion=True),
    "reference_unet": lambda: _module_keys(lambda: ReferenceUNet(UNetConfig.preset("sd15"))),
    "guidance_encoder_depth": lambda: _module_keys(lambda: GuidanceEncoder(GuidanceEncoderConfig.preset("sd15"))),
    "guidance_encoder_normal": lambda: _module_keys(lambda: GuidanceEncoder(GuidanceEncoderConfig.preset("sd15"))),
    "guidance_encoder_semantic_map": lambda: _module_keys(
        lambda: GuidanceEncoder(GuidanceEncoderConfig.preset("sd15"))),
    "guidance_encoder_dwpose": lambda: _module_keys(lambda: GuidanceEncoder(GuidanceEncoderConfig.preset("sd15"))),
    "vae_sd-vae-ft-mse": lambda: _module_keys(lambda: build_vae(VAEConfig.preset("sd15"))),
    "image_encoder": lambda: _module_keys(lambda: build_image_encoder(ImageEncoderConfig.preset("sd15"))),
}


def _file_keys(name: str) -> Shapes:
    tensors = _fake_tensors(_manifest(name))
    if name == "image_encoder":
        tensors = _drop_position_ids(tensors, name)
    return _shapes(champ_to_m2p_keys(tensors, name))


def test_every_manifest_is_covered():
    names = sorted(p.name.removesuffix(".keys.json") for p in SPEC.glob("*.keys.json"))
    assert names == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_full_size_keys_match_manifest(name: str):
    missing, unexpected, mismatched = compare_state_dict(EXPECTED[name](), _file_keys(name))
    assert (missing, unexpected, mismatched) == ([], [], [])
    assert len(_file_keys(name)) > 100


def test_position_table_twins_are_compared_by_value():
    """Champ's second copy of each position table is dropped only if it equals the first."""
    tensors = _fake_tensors(_manifest("motion_module"))
    second = next(k for k in tensors if k.endswith("attention_blocks.1.pos_encoder.pe"))
    assert float(tensors[second].abs().sum()) > 0                       # a real table, not zeros
    mapped = champ_to_m2p_keys(dict(tensors), "motion_module")
    first = second.replace("attention_blocks.1", "attention_blocks.0")
    assert sum(1 for k in mapped if k.endswith("pos_embed.pe")) == sum(1 for k in tensors if k.endswith(".0.pos_encoder.pe"))
    assert torch.equal(next(v for k, v in mapped.items() if k.endswith("pos_embed.pe")), tensors[first])
    tensors[second] = tensors[second].clone()
    tensors[second][0, 3, 5] += 1e-3                                    # one value off: a corrupt file
    with pytest.raises(WeightsMismatchError, match="does not match its attention_blocks.0 twin"):
        champ_to_m2p_keys(tensors, "motion_module")
