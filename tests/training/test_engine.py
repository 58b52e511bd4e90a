"""The Accelerate engine through stage 1: processes, accumulation, mixed precision, EMA, kill -9 resume, configs."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from m2pdance.m2penc.encoder import M2PEnc
from m2pdance.training.config import Stage1Config
from m2pdance.training.stage1 import run_stage1

from .conftest import WINDOW

ENV = {"OMP_NUM_THREADS": "1", "M2PDANCE_NO_PROGRESS": "1"}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "m2penc.safetensors"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stage1_command(toy_dir: Path, out: Path, *extra: str, processes: int = 0) -> list[str]:
    launcher = [sys.executable]
    if processes:
        launcher += ["-m", "torch.distributed.run", "--nproc-per-node", str(processes), "--master-addr", "127.0.0.1",
                     "--master-port", str(_free_port())]
    return [*launcher, "-m", "m2pdance.training", "-q", "stage1", "--preset", "tiny", "--data", str(toy_dir),
            "--out", str(out), "--sequence-length", str(WINDOW), "--lr", "1e-2", *extra]


def _assert_same_training(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Equal up to float summation order.

    Split batches sum gradients in another order, so values agree to rounding, except where the
    true gradient is 0: attention key biases (softmax ignores them), whose rounding noise Adam
    normalises into lr-sized steps. Those get a looser bound.
    """
    assert got.keys() == expected.keys()
    for key in expected:
        tolerance = 1e-4 if key.endswith("qkv.bias") else 1e-5
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=tolerance, msg=key)


def _run(command: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a training command (maybe a torchrun launcher with workers); on a timeout kill its whole group."""
    process = _start(command)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise
    assert process.returncode == 0, stderr[-3000:]
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _start(command: list[str]) -> subprocess.Popen:
    """A training command in its own process group (so a launcher's workers can be killed with it)."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV}, start_new_session=True)


def _kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def test_two_processes_reach_the_parameters_of_one_with_the_same_global_batch(toy_dir, tmp_path):
    common = ("--steps", "6", "--batch-size", "4", "--checkpoint-every", "0", "--set", "tensorboard=false")
    _run(_stage1_command(toy_dir, tmp_path / "one", *common, processes=1))
    _run(_stage1_command(toy_dir, tmp_path / "two", *common, processes=2))
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert one.keys() == two.keys()
    start = M2PEnc(Stage1Config.preset("tiny").model_config()).state_dict()
    _assert_same_training(two, one)
    assert any(not torch.equal(one[k], start[k]) for k in one)          # training did move the weights
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6                                               # one writer: the main process


def test_gradient_accumulation_matches_the_full_batch(smoke_config, tmp_path):
    base = smoke_config.with_overrides({"steps": 4, "batch_size": 4, "tensorboard": False})
    full = run_stage1(base.with_overrides({"output_dir": str(tmp_path / "full")}))
    accumulated = run_stage1(base.with_overrides({"output_dir": str(tmp_path / "acc"), "grad_accumulation": 2}))
    _assert_same_training(load_file(str(accumulated.weights_path)), load_file(str(full.weights_path)))


def test_bf16_autocast_keeps_fp32_weights_and_follows_the_fp32_loss(smoke_config, tmp_path):
    base = smoke_config.with_overrides({"steps": 20, "lr": 3e-3, "tensorboard": False, "checkpoint_every": 0})
    fp32 = run_stage1(base.with_overrides({"output_dir": str(tmp_path / "fp32")}))
    bf16 = run_stage1(base.with_overrides({"output_dir": str(tmp_path / "bf16"), "mixed_precision": "bf16"}))
    curve = {name: [json.loads(x)["loss"] for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
             for name in ("fp32", "bf16")}
    # bf16 has an 8-bit mantissa: per-step losses stay within 3% of fp32's over 20 steps
    for a, b in zip(curve["fp32"], curve["bf16"]):
        assert abs(a - b) <= 0.03 * a, (a, b)
    assert curve["bf16"][-1] < 0.85 * curve["bf16"][0]
    weights = load_file(str(bf16.weights_path))
    assert all(v.dtype == torch.float32 for v in weights.values())
    assert fp32.final_loss is not None


def test_every_parameter_moves_on_the_first_bf16_step_at_the_paper_lr(smoke_config, tmp_path):
    """At lr 1e-5 a bf16 *parameter* would round most AdamW updates away; fp32 master weights keep them."""
    config = smoke_config.with_overrides({"steps": 1, "lr": 1e-5, "mixed_precision": "bf16", "tensorboard": False,
                                          "output_dir": str(tmp_path / "one"), "grad_clip": 0.0})
    torch.manual_seed(config.seed)                                       # what build_model starts from
    start = M2PEnc(config.model_config()).state_dict()
    after = load_file(str(run_stage1(config).weights_path))
    for key, value in start.items():
        if value.is_floating_point():
            changed = (after[key] != value).float().mean().item()
            assert changed > 0.95, f"{key}: only {changed:.0%} of the values moved"


def test_ema_weights_are_exported(smoke_config, tmp_path):
    config = smoke_config.with_overrides({"steps": 3, "ema_decay": 0.5, "tensorboard": False,
                                          "output_dir": str(tmp_path / "ema")})
    result = run_stage1(config)
    checkpoint = result.output_dir / "checkpoints" / "step_00000003"
    ema = load_file(str(checkpoint / "ema.safetensors"))
    model = load_file(str(checkpoint / "model.safetensors"))
    exported = load_file(str(result.weights_path))
    assert all(torch.equal(exported[k], ema[k]) for k in ema)
    assert any(not torch.equal(ema[k], model[k]) for k in ema)           # the average lags the weights


def test_kill_9_then_resume_latest_is_bit_identical(toy_dir, tmp_path):
    common = ("--steps", "40", "--batch-size", "2", "--checkpoint-every", "4", "--set", "tensorboard=false")
    _run(_stage1_command(toy_dir, tmp_path / "straight", *common))
    out = tmp_path / "killed"
    process = _start(_stage1_command(toy_dir, out, *common))
    latest = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if latest.is_file() and json.loads(latest.read_text())["step"] >= 12:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed: " + process.communicate()[1][-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = json.loads(latest.read_text())["step"]
    assert 12 <= killed_at < 40 and not (out / "m2penc.safetensors").exists()
    _run(_stage1_command(toy_dir, out, *common, "--resume", "latest"))
    a, b = _weights(tmp_path / "straight"), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))


def test_toml_config_and_tensorboard_scalars(toy_dir, tmp_path):
    config_file = tmp_path / "run.toml"
    config_file.write_text('# stage 1, tiny\nmodel_preset = "tiny"\ndata_dir = "%s"\noutput_dir = "out"\n'
                           'steps = 3\nbatch_size = 2\nsequence_length = %d\nlr = 1e-2\npreview_every = 3\n'
                           'device = "cpu"\n[model_overrides]\nnum_layers = 1\n' % (toy_dir, WINDOW))
    config = Stage1Config.from_json_file(config_file)
    assert config.output_dir == str(tmp_path / "out") and config.steps == 3
    assert config.model_overrides == {"num_layers": 1}
    run_stage1(config)
    events = list((tmp_path / "out" / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    scalars = EventAccumulator(str(events[0].parent))
    scalars.Reload()
    losses = [e.value for e in scalars.Scalars("train/loss")]
    logged = [json.loads(x)["loss"] for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert losses == pytest.approx(logged, rel=1e-6)
    # previews: prediction over target, one 16x16 tile per frame (8 of the window's frames)
    previews = scalars.Images("preview/heatmaps")
    assert [p.step for p in previews] == [3] and (previews[0].height, previews[0].width) == (32, 128)
