"""Shared tiny fixtures for the Champ tests (CPU, float32, seeded)."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.champ import ChampModels, ReferenceState, build_champ, encode_reference


@pytest.fixture(scope="session")
def tiny_models() -> ChampModels:
    return build_champ("tiny", seed=0, device="cpu", dtype="fp32", guidance_types=("normal", "dwpose"))


@pytest.fixture(scope="session")
def tiny_reference(tiny_models: ChampModels) -> ReferenceState:
    image = torch.rand((1, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    return encode_reference(tiny_models, image)


@pytest.fixture(scope="session")
def tiny_maps() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return {t: torch.randint(0, 256, (8, 3, 64, 64), generator=g, dtype=torch.uint8) for t in ("normal", "dwpose")}
