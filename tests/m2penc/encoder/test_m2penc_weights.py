"""M2PEnc weights files: exact round trip, embedded config and feature kind, strict loading."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from m2pdance.m2penc.encoder import M2PEnc, M2PEncConfig, load_m2penc, read_m2penc_config, save_m2penc
from m2pdance.m2penc.errors import InputError, WeightsError, WeightsMismatchError


def test_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    model = M2PEnc(M2PEncConfig.preset("tiny")).eval()
    path = save_m2penc(model, tmp_path / "m2penc.safetensors")
    loaded = load_m2penc(path, device="cpu", dtype="fp32", feature_kind="baseline")
    assert loaded.config == model.config and not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(1, 5, 35)
    with torch.no_grad():
        assert torch.equal(model(x).guidance, loaded(x).guidance)


def test_config_and_kind_are_embedded(tmp_path):
    config = M2PEncConfig.preset("tiny", heatmap_channels=134)
    path = save_m2penc(M2PEnc(config), tmp_path / "w.safetensors")
    assert read_m2penc_config(path) == config


def test_feature_kind_mismatch(tmp_path):
    path = save_m2penc(M2PEnc(M2PEncConfig.preset("tiny")), tmp_path / "w.safetensors")
    with pytest.raises(InputError, match="trained on 'baseline'"):
        load_m2penc(path, feature_kind="jukebox")


def test_dtype_parameter(tmp_path):
    path = save_m2penc(M2PEnc(M2PEncConfig.preset("tiny")), tmp_path / "w.safetensors")
    assert next(load_m2penc(path, dtype="bf16").parameters()).dtype == torch.bfloat16


def test_wrong_kind_and_tampered_files(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(1)}, str(foreign))
    with pytest.raises(WeightsError, match="'m2penc' model was expected"):
        load_m2penc(foreign)
    path = save_m2penc(M2PEnc(M2PEncConfig.preset("tiny")), tmp_path / "w.safetensors")
    tensors = load_file(str(path))
    tensors.pop("fc.weight")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(WeightsMismatchError, match="fc.weight"):
        load_m2penc(path)
