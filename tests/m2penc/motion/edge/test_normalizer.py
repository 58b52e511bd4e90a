"""EDGE's min-max normalizer against the spec's vectors (``norm.*`` in tiny_edge.safetensors) and its own formulas.

The vectors folder is ``$M2P_EDGE_VECTORS`` (default ``<repo>/../shared/spec/edge``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.motion.edge.normalizer import TENSOR_NAMES, MinMaxNormalizer

REPO = Path(__file__).resolve().parents[4]
VECTORS = Path(os.environ.get("M2P_EDGE_VECTORS", REPO.parent / "shared" / "spec" / "edge"))
VECTOR_FILE = VECTORS / "tiny_edge.safetensors"


@pytest.fixture(scope="module")
def norm() -> dict[str, torch.Tensor]:
    if not VECTOR_FILE.is_file():
        pytest.skip(f"EDGE test vectors not found at {VECTOR_FILE} (set M2P_EDGE_VECTORS)")
    return {k[len("norm."):]: v for k, v in load_file(str(VECTOR_FILE)).items() if k.startswith("norm.")}


def test_unnormalize_matches_edge_vectors(norm):
    scaler = MinMaxNormalizer.from_tensors(norm)
    out = scaler.unnormalize(norm["unnorm_in"])
    assert out.shape == (1, 8, 151)
    torch.testing.assert_close(out, norm["unnorm_out"], atol=1e-4, rtol=0)


def test_fit_formulas_reproduce_edge_scale_and_min(norm):
    fitted = MinMaxNormalizer.from_data_range(norm["data_min_"], norm["data_max_"])
    torch.testing.assert_close(fitted.scale_, norm["scale_"], atol=0, rtol=1e-6)
    torch.testing.assert_close(fitted.min_, norm["min_"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fitted.data_range_, norm["data_range_"])
    assert norm["data_range_"][7] == 0 and fitted.scale_[7] == 2        # constant channel: range kept 0, scale 2


def test_round_trip_and_clipping(norm):
    scaler = MinMaxNormalizer.from_tensors(norm)
    inside = norm["data_min_"] + torch.rand(5, 151) * norm["data_range_"]
    torch.testing.assert_close(scaler.unnormalize(scaler.normalize(inside)), inside, atol=1e-5, rtol=1e-5)
    far = norm["data_max_"] + 10 * (norm["data_range_"] + 1)
    assert torch.equal(scaler.normalize(far), torch.ones(151))               # clip=True, as EDGE's scaler
    torch.testing.assert_close(scaler.unnormalize(torch.full((151,), 7.0)), scaler.unnormalize(torch.ones(151)))


def test_fit_maps_training_range_to_minus_one_one():
    data = torch.randn(4, 150, 151) * 3 + 1
    scaler = MinMaxNormalizer.fit(data)
    y = scaler.normalize(data).reshape(-1, 151)
    torch.testing.assert_close(y.min(0).values, -torch.ones(151), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.max(0).values, torch.ones(151), atol=1e-5, rtol=0)
    assert scaler.n_samples_seen == 600


def test_tensors_round_trip_and_device_dtype(norm):
    scaler = MinMaxNormalizer.from_tensors(norm)
    again = MinMaxNormalizer.from_tensors(scaler.tensors("normalizer."), "normalizer.")
    assert all(torch.equal(getattr(again, n), getattr(scaler, n)) for n in TENSOR_NAMES)
    assert scaler.to(dtype=torch.float64).scale_.dtype == torch.float64
    assert scaler.unnormalize(norm["unnorm_in"].half()).dtype == torch.float32


def test_bad_normalizers_are_refused():
    ok = {n: torch.ones(151) for n in TENSOR_NAMES}
    with pytest.raises(InputError, match="shape"):
        MinMaxNormalizer(**{**ok, "min_": torch.ones(150)})
    with pytest.raises(InputError, match="zeros"):
        MinMaxNormalizer(**{**ok, "scale_": torch.zeros(151)})
    with pytest.raises(InputError, match="NaN"):
        MinMaxNormalizer(**{**ok, "data_min_": torch.full((151,), float("nan"))})
    with pytest.raises(InputError, match="missing"):
        MinMaxNormalizer.from_tensors({"scale_": torch.ones(151)})
    with pytest.raises(InputError, match="151 channels"):
        MinMaxNormalizer(**ok).unnormalize(torch.zeros(2, 147))
