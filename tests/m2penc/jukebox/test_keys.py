"""Full-size modules, built on the meta device, have exactly the checkpoints' keys, shapes, dtypes."""
from __future__ import annotations

import json

import pytest
import torch

from m2pdance.m2penc.checkpoint import compare_state_dict
from m2pdance.m2penc.jukebox import VQVAE, JukeboxConfig, TopLevelPrior
from m2pdance.m2penc.jukebox.checkpoint_io import keys_up_to_layer
from m2pdance.m2penc.jukebox.flops import prior_flops_per_token
from m2pdance.m2penc.jukebox.memory import prior_parameter_bytes


def _manifest(spec_dir, name: str) -> dict:
    return json.loads((spec_dir / f"{name}.keys.json").read_text())


def _described(module: torch.nn.Module) -> dict:
    return {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def full_5b():
    config = JukeboxConfig.preset("5b")
    with torch.device("meta"):
        return VQVAE(config), TopLevelPrior(config)


@pytest.mark.parametrize("index, manifest", [(0, "vqvae"), (1, "prior_level_2_5b")])
def test_full_size_keys_shapes_dtypes_equal_manifest(full_5b, spec_dir, index, manifest):
    expected = _manifest(spec_dir, manifest)
    ours = _described(full_5b[index])
    missing, unexpected, mismatched = compare_state_dict(
        {k: tuple(v[0]) for k, v in expected.items()}, {k: tuple(v[0]) for k, v in ours.items()})
    assert (missing, unexpected, mismatched) == ([], [], [])
    assert {k: v[1] for k, v in ours.items()} == {k: v[1] for k, v in expected.items()}


@pytest.mark.parametrize("layer", [1, 36, 66, 72])
def test_truncated_prior_holds_exactly_the_filtered_manifest_keys(spec_dir, layer):
    expected = {k for k in _manifest(spec_dir, "prior_level_2_5b") if keys_up_to_layer(layer)(k)}
    with torch.device("meta"):
        prior = TopLevelPrior(JukeboxConfig.preset("5b"), n_layers=layer, with_head=False)
    assert set(prior.state_dict()) == expected
    assert sum(k.startswith(f"prior.transformer._attn_mods.{layer - 1}.") for k in expected) == 12


def test_parameter_count_and_flops_agree_with_the_real_sizes():
    config = JukeboxConfig.preset("5b")
    params_72, bytes_72 = prior_parameter_bytes(config, 72)
    params_36, _ = prior_parameter_bytes(config, 36)
    per_layer = (params_72 - params_36) / 36
    assert 5.0e9 < params_72 + 2048 * 4800 < 5.1e9  # + the logits head the extractor drops
    assert per_layer == 4800 * 3600 + 3600 + 1200 * 4800 + 4800 + 2 * (4800 * 4800 + 4800) + 4 * 4800
    assert 9.5e9 < bytes_72 < 11e9  # fp16 matrices as stored
    matrix_flops = 2 * (4800 * 3600 + 1200 * 4800 + 2 * 4800 * 4800)
    assert matrix_flops * 66 < prior_flops_per_token(config, 66) < matrix_flops * 66 * 1.01
