"""Full-size EDGE, built on the meta device, has exactly the released checkpoint's keys and shapes.

The manifests (``edge_model_{jukebox,baseline}.keys.json``, REPORT.md §1) list the 249 keys of
EDGE's ``ema_state_dict`` in state-dict order, the shared rotary buffer under its 11 names included.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from m2pdance.m2penc.motion.edge import DanceDecoder, EDGEConfig

REPO = Path(__file__).resolve().parents[4]
SPEC = Path(os.environ.get("M2P_EDGE_VECTORS", REPO.parent / "shared" / "spec" / "edge"))
#: REPORT.md §1: parameter counts of the released models (the rotary buffer is not a parameter).
PARAMETERS = {"jukebox": 49_464_471, "baseline": 47_024_791}


@pytest.mark.parametrize("preset", ["jukebox", "baseline"])
def test_meta_model_matches_manifest(preset: str) -> None:
    path = SPEC / f"edge_model_{preset}.keys.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    manifest = json.loads(path.read_text())
    with torch.device("meta"):
        model = DanceDecoder(EDGEConfig.preset(preset))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    missing, unexpected = sorted(set(manifest) - set(shapes)), sorted(set(shapes) - set(manifest))
    assert not missing and not unexpected, f"missing {missing}, unexpected {unexpected}"
    wrong = {k: (shapes[k], manifest[k]) for k in manifest if shapes[k] != manifest[k]}
    assert not wrong, f"shape mismatches (ours, EDGE's): {wrong}"
    assert list(shapes) == list(manifest), "same keys but not in EDGE's state-dict order"
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[preset]


def test_rotary_is_shared_and_stays_float32() -> None:
    model = DanceDecoder(EDGEConfig.preset("tiny"))
    rotary_keys = [k for k in model.state_dict() if k.endswith("rotary.freqs")]
    assert len(rotary_keys) == 1 + 2 + model.config.num_layers
    assert all(layer.rotary is model.rotary for layer in model.seqTransDecoder.stack)
    model = model.to(torch.bfloat16)
    assert model.rotary.freqs.dtype == torch.float32
    assert model.input_projection.weight.dtype == torch.bfloat16
