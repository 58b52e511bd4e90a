"""Shared pytest fixtures: ComfyUI modules (real or stand-in), the shared spec folder, seeds.

The workflow harness is ``m2pdance.devtools.comfy_harness`` (scripts use it too); ``tests/`` stays
on ``sys.path`` for the fixture packs under ``tests/fixtures``. The pack itself is imported as ``m2pdance`` (installed with
``pip install -e .``) or, in the loader tests, under a path-derived name as ComfyUI does.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SHARED_DIR = Path(os.environ.get("M2P_SHARED_DIR", REPO_ROOT.parent / "shared"))

if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


def pytest_collection_modifyitems(config, items):
    """Deselect GPU tests on machines without CUDA, with a visible reason."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test: the models here are tiny, and on a loaded 2-core machine
    OpenMP spinning makes more threads far slower (and timings erratic)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session", autouse=True)
def private_feature_cache(tmp_path_factory):
    """Music features are cached on disk; tests use their own folder, never the user's."""
    previous = os.environ.get("M2PDANCE_CACHE_DIR")
    os.environ["M2PDANCE_CACHE_DIR"] = str(tmp_path_factory.mktemp("feature_cache"))
    yield
    if previous is None:
        os.environ.pop("M2PDANCE_CACHE_DIR", None)
    else:
        os.environ["M2PDANCE_CACHE_DIR"] = previous


@pytest.fixture
def record_calls(monkeypatch):
    """``record_calls(module, name, arg_index) -> list``: wrap ``module.name`` so every call appends
    its positional argument ``arg_index`` to the returned list, then runs the real function."""

    def install(module, name: str, arg_index: int) -> list:
        calls: list = []
        real = getattr(module, name)

        def wrapped(*args, **kwargs):
            calls.append(args[arg_index])
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)
        return calls

    return install


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repo (override with M2P_SHARED_DIR)."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared spec folder not found at {SHARED_DIR}")
    return SHARED_DIR


@pytest.fixture
def comfy_home(tmp_path):
    """A fresh ComfyUI base directory (models/, input/, output/, temp/) for one test."""
    from m2pdance.devtools import comfy_harness as harness

    harness.install(tmp_path / "comfy_home")
    return tmp_path / "comfy_home"


@pytest.fixture(scope="session")
def smoke_models(tmp_path_factory) -> Path:
    """A ComfyUI models folder holding the tiny smoke weights (``m2pdance weights smoke``), written once."""
    from m2pdance.weights_manifest.smoke import write_smoke_weights

    models = tmp_path_factory.mktemp("smoke") / "models"
    write_smoke_weights(models)
    return models


@pytest.fixture
def prepared_home(tmp_path, smoke_models) -> Path:
    """A ComfyUI home with the example music and photo in input/ and the smoke weights as models/."""
    from m2pdance.devtools import comfy_harness as harness
    from m2pdance.m2penc.examples import write_example_inputs
    from m2pdance.m2penc.motion.example import write_example_motion

    home = tmp_path / "comfy_home"
    harness.install(home, models_dir=smoke_models)
    write_example_inputs(home / "input")
    write_example_motion(home / "input")
    return home
