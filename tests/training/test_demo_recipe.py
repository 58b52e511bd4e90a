"""The demo recipe, shortened (``--preset quick``): every step runs, the exported set loads in the real
loaders, and the run reproduces the recorded reference metrics (``training/demo/quick_metrics.json``)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from m2pdance.m2penc.champ.models import load_champ_files
from m2pdance.m2penc.encoder.weights import load_m2penc
from m2pdance.m2penc.errors import InputError
from m2pdance.training.demo.recipe import (QUICK_REFERENCE, RECIPE_KEY, REVISION_KEY, DemoPaths, DemoRecipe,
                                           run_demo_recipe)
from m2pdance.weights_manifest.demo import DEMO_FILES, DEMO_LOADER_FILES

#: Relative tolerance on every recorded loss: CPU kernels differ slightly between machines.
RTOL, ATOL = 0.05, 2e-3


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo_quick")
    return out, run_demo_recipe(DemoRecipe.preset("quick"), out, revision="test")


def test_quick_recipe_reproduces_the_reference_metrics(quick_run):
    _, metrics = quick_run
    reference = json.loads(QUICK_REFERENCE.read_text(encoding="utf-8"))
    assert metrics["recipe"] == reference["recipe"], "the quick preset changed: re-record quick_metrics.json"
    for stage, recorded in reference["stages"].items():
        got = metrics["stages"][stage]
        assert got["steps"] == recorded["steps"], stage
        for when in ("first", "final"):
            for name, value in recorded[when].items():
                if name in ("seconds", "grad_norm", "timestep", "kept"):
                    continue
                assert math.isclose(got[when][name], value, rel_tol=RTOL, abs_tol=ATOL), \
                    f"{stage} {when} {name}: {got[when][name]} vs recorded {value}"
        assert got["final"]["loss"] < got["first"]["loss"] or stage == "stage3", f"{stage} did not learn"


def test_exported_set_loads_in_the_real_loaders(quick_run):
    out, metrics = quick_run
    demo = DemoPaths(out).demo_set
    for relative in DEMO_FILES.values():
        with safe_open(str(demo / relative), "pt") as f:
            meta = f.metadata()
            assert json.loads(meta[RECIPE_KEY]) == DemoRecipe.preset("quick").to_dict()
            assert meta[REVISION_KEY] == "test"
            assert all(f.get_tensor(k).dtype in (torch.float16, torch.int64, torch.long) for k in f.keys())
    models = load_champ_files(demo / "champ" / DEMO_LOADER_FILES["champ"], demo / "vae" / DEMO_LOADER_FILES["vae"],
                              demo / "clip_vision" / DEMO_LOADER_FILES["clip_vision"], device="cpu", dtype="fp32")
    assert sorted(models.guidance_encoders) == ["depth", "dwpose", "normal", "semantic_map"]
    assert models.vae.config.scaling_factor != pytest.approx(0.18215)  # measured on the data, not SD's
    encoder = load_m2penc(demo / "m2penc" / DEMO_LOADER_FILES["m2penc"], device="cpu", dtype="fp32")
    assert encoder.config.guidance_channels == models.denoising_unet.config.block_out_channels[0]
    assert metrics["bytes"] == sum((demo / r).stat().st_size for r in DEMO_FILES.values())


def test_a_rerun_resumes_and_a_different_recipe_is_refused(quick_run):
    out, metrics = quick_run
    again = run_demo_recipe(DemoRecipe.preset("quick"), out, revision="test")
    assert again["stages"] == metrics["stages"]
    with pytest.raises(InputError, match="another recipe"):
        run_demo_recipe(DemoRecipe.preset("quick", seed=1), out)


def test_recipe_values_are_checked_before_any_work(tmp_path):
    with pytest.raises(InputError, match="size"):
        DemoRecipe.preset("quick", size=100)
    with pytest.raises(InputError, match="unknown demo recipe keys"):
        DemoRecipe.preset("quick", stage4_run={})
    with pytest.raises(InputError, match="no demo preset"):
        DemoRecipe.preset("huge")
    with pytest.raises(InputError, match="max_joint_speed"):
        DemoRecipe.preset("quick", max_joint_speed=0)
    written_as_int = DemoRecipe.preset("full", max_joint_speed=8)
    assert written_as_int == DemoRecipe.preset("full") and isinstance(written_as_int.max_joint_speed, float)
    assert not any(tmp_path.iterdir())
