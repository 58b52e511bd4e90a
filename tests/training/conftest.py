"""Fixtures for the training tests: a tiny model config and toy shards."""
from __future__ import annotations

from pathlib import Path

import pytest

from m2pdance.m2penc.encoder import M2PEncConfig
from m2pdance.training.config import Stage1Config
from m2pdance.training.toy_data import make_toy_data

#: Frames per toy shard and per training window: small enough for ~20 ms steps on one core.
TOY_FRAMES = 40
WINDOW = 8


@pytest.fixture(scope="session")
def tiny_model() -> M2PEncConfig:
    return M2PEncConfig.preset("tiny")


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory, tiny_model) -> Path:
    """Two toy shards for the tiny preset (shared, read-only)."""
    folder = tmp_path_factory.mktemp("toy")
    make_toy_data(folder, tiny_model, num_shards=2, frames_per_shard=TOY_FRAMES, seed=0)
    return folder


@pytest.fixture
def smoke_config(toy_dir, tmp_path) -> Stage1Config:
    """A short CPU stage-1 run on the toy data into ``tmp_path / "run"``."""
    return Stage1Config.preset("smoke", data_dir=str(toy_dir), output_dir=str(tmp_path / "run"),
                               sequence_length=WINDOW, steps=10, checkpoint_every=0, lr=1e-2, log_every=100)
