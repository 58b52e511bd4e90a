"""Stage 1 end to end in the library: the loss falls, weights load, resume is exact."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from m2pdance.m2penc.encoder import load_m2penc
from m2pdance.m2penc.errors import GenerationCancelled, InputError
from m2pdance.m2penc.progress import RunControl
from m2pdance.training.stage1 import run_stage1


def test_tiny_run_reduces_the_loss_substantially(smoke_config, tiny_model):
    config = smoke_config.with_overrides({"steps": 100, "window_sampling": "random"})
    result = run_stage1(config)
    lines = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, 101))
    first, last = lines[0]["loss"], sum(m["loss"] for m in lines[-10:]) / 10
    assert last < 0.5 * first, f"loss {first:.3f} -> {last:.3f}"
    assert lines[-1]["l_heat"] < lines[0]["l_heat"] and lines[-1]["l_guid"] < lines[0]["l_guid"]

    model = load_m2penc(result.weights_path, feature_kind="baseline")
    assert model.config == tiny_model
    out = model(torch.randn(1, 5, tiny_model.in_dim))
    assert out.guidance.shape == (1, 8, 5, 16, 16) and out.heatmaps.shape == (1, 18, 5, 16, 16)


def test_resume_gives_the_weights_of_an_uninterrupted_run(smoke_config, tmp_path):
    straight = run_stage1(smoke_config.with_overrides({"steps": 8, "output_dir": str(tmp_path / "a")}))

    split = smoke_config.with_overrides({"output_dir": str(tmp_path / "b"), "steps": 8})
    steps: list[int] = []
    with pytest.raises(GenerationCancelled, match="step 3"):
        run_stage1(split, control=RunControl(should_cancel=lambda: len(steps) >= 3),
                   callbacks={"on_step_end": [lambda t: steps.append(t.step)]})
    assert not (tmp_path / "b" / "m2penc.safetensors").exists()
    torch.manual_seed(99)
    resumed = run_stage1(split.with_overrides({"resume": "latest"}))
    assert resumed.steps == 8 and resumed.first_loss is not None

    a, b = load_file(str(straight.weights_path)), load_file(str(resumed.weights_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["step"] for m in metrics] == list(range(1, 9))   # no duplicated steps


def test_resume_with_another_model_is_refused(smoke_config):
    run_stage1(smoke_config.with_overrides({"steps": 2}))
    with pytest.raises(InputError, match="already holds the checkpoints of a run"):
        run_stage1(smoke_config)                       # a fresh run would mix with the old one
    other = smoke_config.with_overrides({"steps": 4, "resume": "latest", "model_overrides": {"num_layers": 2}})
    with pytest.raises(InputError, match="different M2PEnc config"):
        run_stage1(other)


def test_data_for_another_model_is_refused_before_training(smoke_config):
    with pytest.raises(InputError, match="'baseline' features"):
        run_stage1(smoke_config.with_overrides({"model_preset": "paper"}))
    with pytest.raises(InputError, match="needs a data folder"):
        run_stage1(smoke_config.with_overrides({"data_dir": None}))


def test_stage1_overfits_a_fixed_batch_and_trains_every_parameter(smoke_config, tiny_model, tmp_path):
    """A dataset of one window: every step sees the same batch, and the loss falls >= 90%."""
    from m2pdance.m2penc.encoder import M2PEnc
    from m2pdance.training.toy_data import make_toy_data

    make_toy_data(tmp_path / "one", tiny_model, num_shards=1, frames_per_shard=smoke_config.sequence_length, seed=3)
    config = smoke_config.with_overrides({"steps": 400, "batch_size": 2, "lr": 1e-2, "grad_clip": 0.0,
                                          "tensorboard": False, "checkpoint_every": 0,
                                          "data_dir": str(tmp_path / "one"),
                                          "output_dir": str(tmp_path / "overfit")})
    torch.manual_seed(config.seed)
    start = M2PEnc(config.model_config()).state_dict()
    result = run_stage1(config)
    losses = [json.loads(x)["loss"] for x in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] <= 0.1 * losses[0], f"loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    after = load_file(str(result.weights_path))
    assert set(after) == set(start)
    assert all(not torch.equal(after[k], start[k]) for k in start)          # stage 1 trains all of M2PEnc


def test_a_standardising_model_is_trained_on_its_data_statistics(smoke_config):
    """input_standardize: stage 1 measures the features' per-column mean/std on the data and saves them."""
    from m2pdance.training.stage1 import feature_statistics, open_stage1_data

    config = smoke_config.with_overrides({"steps": 3, "model_overrides": {"input_standardize": True}})
    data = open_stage1_data(config, config.model_config())
    rows = torch.cat([data[i]["features"] for i in range(len(data))]).double()
    mean, std = feature_statistics(data, windows=len(data))
    torch.testing.assert_close(mean, rows.mean(0).float())
    torch.testing.assert_close(std, rows.std(0).float())
    few_mean, _ = feature_statistics(data, windows=2)              # the first and the last window
    both = torch.cat([data[0]["features"], data[len(data) - 1]["features"]]).double()
    torch.testing.assert_close(few_mean, both.mean(0).float())

    result = run_stage1(config)
    saved = load_file(str(result.weights_path))
    torch.testing.assert_close(saved["input_mean"], mean)
    torch.testing.assert_close(saved["input_std"], std.clamp(min=1e-2))
    model = load_m2penc(result.weights_path, feature_kind="baseline")
    assert model.config.input_standardize and torch.equal(model.input_mean, saved["input_mean"])
