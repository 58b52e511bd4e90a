"""The generic trainer: exact resume, atomic checkpoints, callbacks, cancel, clipping, bad losses."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from m2pdance.m2penc.errors import GenerationCancelled
from m2pdance.m2penc.progress import RunControl
from m2pdance.training.trainer import (Trainer, TrainerConfig, TrainingError, read_checkpoint_state,
                                       resolve_checkpoint)


class Noisy(nn.Module):
    """A model whose forward uses torch's RNG (dropout), so resume must restore the RNG too."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


def _loss(model, batch):
    return {"loss": ((model(batch["x"]) - batch["y"]) ** 2).mean()}


def _batches(start_step):
    for step in range(start_step, 10_000):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(8, 4, generator=g)
        yield {"x": x, "y": x.sum(dim=1, keepdim=True)}


def _trainer(tmp_path, steps, control=RunControl(), **kwargs):
    torch.manual_seed(0)
    config = TrainerConfig(max_steps=steps, lr=1e-2, grad_clip=1.0, seed=0, **kwargs)
    return Trainer(Noisy(), _loss, _batches, config, checkpoint_dir=tmp_path, control=control)


def test_resume_after_cancel_matches_an_uninterrupted_run(tmp_path):
    straight = _trainer(tmp_path / "a", 12)
    straight.run()

    cancel_at_5 = RunControl(should_cancel=lambda: first.step >= 5)
    first = _trainer(tmp_path / "b", 12, control=cancel_at_5)
    with pytest.raises(GenerationCancelled, match="cancelled at step 5; checkpoint saved"):
        first.run()
    torch.manual_seed(123)                           # a new process would have another RNG state
    second = _trainer(tmp_path / "b", 12)
    assert second.resume(tmp_path / "b").name == "step_00000005" and second.step == 5
    second.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    for a, b in zip(straight.optimizer.state.values(), second.optimizer.state.values()):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_checkpoints_are_complete_pruned_and_announced(tmp_path):
    trainer = _trainer(tmp_path, 7, checkpoint_every=2, keep_checkpoints=2)
    seen_steps, written = [], []
    trainer.add_callback("on_step_end", lambda t: seen_steps.append(t.step))
    trainer.add_callback("on_checkpoint", lambda t, path: written.append(path.name))
    trainer.run()
    assert seen_steps == list(range(1, 8))
    assert written == ["step_00000002", "step_00000004", "step_00000006", "step_00000007"]  # + final
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "step_00000006", "step_00000007"]
    assert resolve_checkpoint(tmp_path).name == "step_00000007"
    assert sorted(p.name for p in (tmp_path / "step_00000007").iterdir()) == [
        "model.safetensors", "optimizer.safetensors", "rng_rank0.safetensors", "trainer_state.json"]
    state = read_checkpoint_state(tmp_path)
    assert state["step"] == 7 and "grad_norm" in state["metrics"]
    json.dumps(state)                                # plain JSON, nothing pickled


def test_failed_checkpoint_write_leaves_no_partial_folder(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, 1)
    trainer.step = 3
    monkeypatch.setattr(trainer, "_write_state", lambda *args: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("clip", [1.0, 0.0])
def test_grad_clip_rescales_the_gradients(tmp_path, clip):
    torch.manual_seed(0)
    trainer = Trainer(Noisy(), _loss, _batches, TrainerConfig(max_steps=1, grad_clip=clip))
    metrics = trainer.train_step({"x": torch.full((8, 4), 1e3), "y": torch.zeros(8, 1)})
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.model.parameters()]))
    if clip:
        assert metrics["grad_norm"] > 1e3 and norm <= clip * 1.001
    else:
        assert "grad_norm" not in metrics and norm > 1e3


def test_non_finite_loss_stops_with_the_step(tmp_path):
    config = TrainerConfig(max_steps=3)
    trainer = Trainer(nn.Linear(1, 1), lambda m, b: {"loss": m(b["x"]).sum() * float("nan")},
                      lambda s: iter([{"x": torch.ones(1, 1)}] * 3), config)
    with pytest.raises(TrainingError, match=r"loss became nan \(in this or another process\) at step 1"):
        trainer.run()


def test_running_out_of_batches_is_an_error(tmp_path):
    trainer = Trainer(nn.Linear(1, 1), lambda m, b: {"loss": m(b["x"]).pow(2).sum()},
                      lambda s: iter([{"x": torch.ones(1, 1)}] * 2), TrainerConfig(max_steps=5))
    with pytest.raises(TrainingError, match="ran out after 2 of 5 steps"):
        trainer.run()


def test_no_checkpoint_to_resume(tmp_path):
    with pytest.raises(TrainingError, match="no training checkpoint"):
        _trainer(tmp_path, 1).resume(tmp_path)


def test_unknown_callback_event(tmp_path):
    with pytest.raises(ValueError, match="unknown trainer event"):
        _trainer(tmp_path, 1).add_callback("on_epoch_end", print)


def test_logged_lr_is_the_rate_each_step_used_and_resume_takes_the_new_lr(tmp_path):
    config = TrainerConfig(max_steps=4, lr=1.0, lr_schedule="linear", lr_warmup_steps=2)
    trainer = Trainer(Noisy(), _loss, _batches, config, checkpoint_dir=tmp_path / "a")
    rates = []
    trainer.add_callback("on_step_end", lambda t: rates.append(t.metrics["lr"]))
    trainer.run()
    assert rates == pytest.approx([0.0, 0.5, 1.0, 0.5])          # diffusers' warm-up starts at 0

    first = _trainer(tmp_path / "b", 2)
    first.run()
    second = Trainer(Noisy(), _loss, _batches, TrainerConfig(max_steps=4, lr=1e-3, grad_clip=1.0),
                     checkpoint_dir=tmp_path / "b")
    second.resume(tmp_path / "b")
    assert [g["lr"] for g in second.optimizer.param_groups] == [1e-3, 1e-3]
    second.run()
    assert second.metrics["lr"] == pytest.approx(1e-3)


def test_an_fp16_step_skipped_for_overflow_changes_neither_weights_nor_ema(tmp_path):
    torch.manual_seed(0)
    config = TrainerConfig(max_steps=2, lr=1e-2, mixed_precision="fp16", ema_decay=0.5)
    trainer = Trainer(Noisy(), _loss, _batches, config)
    before = {k: v.clone() for k, v in trainer.unwrapped.state_dict().items()}
    ema = {k: v.clone() for k, v in trainer.ema.items()}
    scale = trainer.scaler.get_scale()
    # finite fp32 loss (~1e6) whose scaled fp16 gradients overflow: GradScaler skips the update
    metrics = trainer.train_step({"x": torch.full((8, 4), 1e3), "y": torch.zeros(8, 1)})
    assert metrics["loss_scale"] < scale
    assert all(torch.equal(before[k], v) for k, v in trainer.unwrapped.state_dict().items())
    assert all(torch.equal(ema[k], v) for k, v in trainer.ema.items())
    trainer.train_step({"x": torch.full((8, 4), 0.1), "y": torch.zeros(8, 1)})    # a normal step moves both
    assert not all(torch.equal(ema[k], v) for k, v in trainer.ema.items())


def test_rewriting_an_existing_step_is_atomic(tmp_path, monkeypatch):
    import os

    trainer = _trainer(tmp_path, 2, checkpoint_every=1)
    trainer.run()
    first = (tmp_path / "step_00000002" / "model.safetensors").read_bytes()
    trainer.train_step(next(iter(_batches(7))))                 # other weights, same step number
    replace, calls = os.replace, []

    def crash_on_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("power cut")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second_rename)
    with pytest.raises(OSError, match="power cut"):
        trainer.save_checkpoint()
    monkeypatch.setattr(os, "replace", replace)
    # the old step was set aside, not deleted: resume still finds it through latest.json
    found = resolve_checkpoint(tmp_path)
    assert found.name == ".step_00000002.replaced" and (found / "model.safetensors").read_bytes() == first
    trainer.save_checkpoint()                                  # a clean rewrite leaves no aside folder
    assert resolve_checkpoint(tmp_path).name == "step_00000002"
    assert not (tmp_path / ".step_00000002.replaced").exists()
    assert (tmp_path / "step_00000002" / "model.safetensors").read_bytes() != first
