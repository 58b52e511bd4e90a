"""A small, model-agnostic training loop (in the spirit of minGPT's ``Trainer``).

The trainer knows nothing about M2PEnc: it gets a module, a ``loss_fn(model, batch) -> {"loss":
scalar, ...parts}``, and ``batches(start_step)``, an iterable yielding one batch (a dict of
tensors) per optimizer step from ``start_step`` on. Everything model-specific lives in the stage
modules (:mod:`.stage1`).

Why each piece is here:

* **Resume must be exact.** A checkpoint is a folder ``step_0000100/`` holding
  ``model.safetensors`` (weights), ``optimizer.safetensors`` (AdamW moments), ``rng.safetensors``
  (torch CPU/CUDA generator states) and ``trainer_state.json`` (step, optimizer hyper-parameters,
  caller's extra JSON). No pickles, so a checkpoint can never run code when loaded. Data order is
  the caller's pure function of the step (see :func:`.datasets.batch_indices_for_step`), so
  model + optimizer + RNG + step is the whole state: resuming at step k and training to n gives
  bit-identical weights to an uninterrupted run on the same device.
* **Writes are atomic.** A checkpoint folder is written under a temporary name and renamed;
  ``latest.json`` is replaced atomically afterwards, so a crash mid-write never leaves a
  half-checkpoint that resume would pick up.
* **Long runs are controllable.** Every step reports progress through
  :class:`~..m2penc.progress.RunControl`; a cancel saves a checkpoint first, then raises.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..m2penc.checkpoint import atomic_write, load_strict
from ..m2penc.device import resolve_device, resolve_dtype
from ..m2penc.errors import GenerationCancelled, InputError, M2PDanceError
from ..m2penc.progress import NO_CONTROL, RunControl

Batch = dict[str, torch.Tensor]
#: ``loss_fn(model, batch)`` -> dict with a scalar ``"loss"`` to minimise plus any logged parts.
LossFn = Callable[[nn.Module, Batch], Mapping[str, torch.Tensor]]
#: ``batches(start_step)`` -> one batch per step, for steps ``start_step, start_step + 1, ...``.
BatchesFn = Callable[[int], Iterable[Batch]]
#: ``callback(trainer)`` (``on_step_end``) or ``callback(trainer, checkpoint_path)`` (``on_checkpoint``).
Callback = Callable[..., None]
EVENTS = ("on_step_end", "on_checkpoint")
CHECKPOINT_FORMAT = 1
STATE_FILE = "trainer_state.json"
LATEST_FILE = "latest.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")

PathLike = Union[str, os.PathLike]


class TrainingError(M2PDanceError):
    """Training cannot go on: a non-finite loss, a bad checkpoint, data that ran out."""


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation settings of one run.

    Attributes:
        max_steps: stop after this many optimizer steps (counted from 0, across resumes).
        lr, weight_decay, betas: AdamW; decay applies to >= 2-d parameters only (minGPT).
        grad_clip: max global gradient norm, 0 = no clipping.
        checkpoint_every: steps between checkpoints (0 = only the final one).
        keep_checkpoints: newest checkpoints kept on disk (0 = keep all).
        seed: seeds torch's RNGs at the start of a fresh run.
        device, dtype: where and in which parameter precision to train.
    """

    max_steps: int
    lr: float = 1e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0
    checkpoint_every: int = 0
    keep_checkpoints: int = 0
    seed: int = 0
    device: Union[str, torch.device] = "cpu"
    dtype: Union[str, torch.dtype] = "fp32"


def make_adamw(model: nn.Module, config: TrainerConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices/kernels only (biases and norm gains are not decayed)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def batch_to(batch: Batch, device: torch.device, dtype: torch.dtype) -> Batch:
    """Move every tensor to ``device``; floating tensors also to ``dtype``."""
    return {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype, non_blocking=True)
            for k, v in batch.items()}


# ----- checkpoint files -------------------------------------------------------------------

def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into safetensors tensors and JSON scalars."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_from_files(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_optimizer_to_files`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    return tensors


def _restore_rng(tensors: Mapping[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


def step_dir_name(step: int) -> str:
    """Folder name of the checkpoint after ``step`` steps (sorts by step)."""
    return f"step_{step:08d}"


def resolve_checkpoint(path: PathLike) -> Path:
    """A checkpoint folder from itself, a checkpoints root or a run folder (uses ``latest.json``)."""
    path = Path(path)
    for root in (path, path / "checkpoints"):
        if (root / STATE_FILE).is_file():
            return root
        latest = root / LATEST_FILE
        if latest.is_file():
            name = json.loads(latest.read_text(encoding="utf-8"))["checkpoint"]
            if (root / name / STATE_FILE).is_file():
                return root / name
            raise TrainingError(f"{latest} points at {name}, which is missing or incomplete")
    raise TrainingError(f"no training checkpoint at {path} (expected {STATE_FILE} or {LATEST_FILE})")


def read_checkpoint_state(path: PathLike) -> dict[str, Any]:
    """The JSON part of a checkpoint (step, optimizer hyper-parameters, caller's ``extra``)."""
    folder = resolve_checkpoint(path)
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    if state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{folder} has checkpoint format {state.get('format')!r}, "
                            f"this version reads {CHECKPOINT_FORMAT}")
    return state


# ----- the trainer ------------------------------------------------------------------------

class Trainer:
    """Runs AdamW on ``loss_fn`` over ``batches`` with checkpoints, callbacks and resume.

    Attributes (read them from callbacks):
        step: optimizer steps done so far.
        metrics: floats of the last step (``loss``, the loss parts, ``lr``, ``grad_norm``, ``seconds``).
        last_checkpoint: folder of the newest checkpoint written or resumed from.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches: BatchesFn, config: TrainerConfig,
                 checkpoint_dir: Optional[PathLike] = None, control: RunControl = NO_CONTROL,
                 extra_state: Optional[Mapping[str, Any]] = None):
        if config.max_steps < 1:
            raise InputError(f"max_steps must be >= 1, got {config.max_steps}")
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype)
        self.loss_fn, self.batches, self.control = loss_fn, batches, control
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.extra_state = dict(extra_state or {})
        self.optimizer = make_adamw(self.model, config)
        self.step = 0
        self.metrics: dict[str, float] = {}
        self.last_checkpoint: Optional[Path] = None
        self._resumed = False
        self._callbacks: dict[str, list[Callback]] = {event: [] for event in EVENTS}

    def add_callback(self, event: str, callback: Callback) -> None:
        """Register ``callback`` for ``on_step_end`` or ``on_checkpoint``."""
        if event not in self._callbacks:
            raise InputError(f"unknown trainer event {event!r}; events: {EVENTS}")
        self._callbacks[event].append(callback)

    def _trigger(self, event: str, *args: Any) -> None:
        for callback in self._callbacks[event]:
            callback(self, *args)

    # ----- training -------------------------------------------------------------------

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One forward/backward/AdamW update; returns the step's metrics as floats."""
        start = time.perf_counter()
        self.model.train()
        losses = self.loss_fn(self.model, batch_to(batch, self.device, self.dtype))
        loss = losses["loss"]
        if not torch.isfinite(loss.detach()).all():
            raise TrainingError(f"loss became {loss.item()} at step {self.step + 1}; lower the learning "
                                "rate, enable grad_clip, or check the data for NaN/inf values")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics = {name: float(value.detach()) for name, value in losses.items()}
        if self.config.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip))
        self.optimizer.step()
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["seconds"] = time.perf_counter() - start
        return metrics

    def run(self) -> int:
        """Train from the current step to ``max_steps``; returns the final step.

        Raises :class:`GenerationCancelled` (after saving a checkpoint) when the run control
        asks to stop, :class:`TrainingError` on a non-finite loss or when data runs out.
        """
        total = self.config.max_steps
        if not self._resumed and self.step == 0:
            torch.manual_seed(self.config.seed)
        if self.step >= total:
            return self.step
        for batch in self.batches(self.step):
            self.metrics = self.train_step(batch)
            self.step += 1
            self._trigger("on_step_end")
            if self._checkpoint_due():
                self.save_checkpoint()
            self._tick(total)
            if self.step >= total:
                break
        if self.step < total:
            raise TrainingError(f"the batch source ran out after {self.step} of {total} steps")
        if self.checkpoint_dir is not None and self.last_checkpoint != self._folder_for(self.step):
            self.save_checkpoint()
        return self.step

    def _checkpoint_due(self) -> bool:
        every = self.config.checkpoint_every
        return self.checkpoint_dir is not None and every > 0 and self.step % every == 0

    def _tick(self, total: int) -> None:
        try:
            self.control.tick("train", self.step, total)
        except GenerationCancelled:
            if self.checkpoint_dir is None:
                raise GenerationCancelled(f"training cancelled at step {self.step}; no checkpoint "
                                          "folder was given, so nothing was saved") from None
            folder = self.last_checkpoint if self.last_checkpoint == self._folder_for(self.step) else self.save_checkpoint()
            raise GenerationCancelled(f"training cancelled at step {self.step}; checkpoint saved to "
                                      f"{folder}, resume from it to continue") from None

    # ----- checkpoints ----------------------------------------------------------------

    def _folder_for(self, step: int) -> Optional[Path]:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / step_dir_name(step)

    def save_checkpoint(self) -> Path:
        """Write the full training state of the current step atomically; returns its folder."""
        if self.checkpoint_dir is None:
            raise InputError("this trainer has no checkpoint_dir")
        root = self.checkpoint_dir
        root.mkdir(parents=True, exist_ok=True)
        final = root / step_dir_name(self.step)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=root))
        try:
            self._write_state(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        payload = json.dumps({"checkpoint": final.name, "step": self.step}).encode()
        atomic_write(root / LATEST_FILE, lambda p: Path(p).write_bytes(payload))
        self.last_checkpoint = final
        self._prune()
        self._trigger("on_checkpoint", final)
        return final

    def _write_state(self, folder: Path) -> None:
        weights = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(weights, str(folder / "model.safetensors"), metadata={"step": str(self.step)})
        optimizer_tensors, optimizer_meta = _optimizer_to_files(self.optimizer)
        save_file(optimizer_tensors, str(folder / "optimizer.safetensors"))
        save_file(_rng_tensors(), str(folder / "rng.safetensors"))
        state = {"format": CHECKPOINT_FORMAT, "step": self.step, "seed": self.config.seed,
                 "optimizer": optimizer_meta, "metrics": self.metrics, "extra": self.extra_state}
        (folder / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")

    def _prune(self) -> None:
        keep = self.config.keep_checkpoints
        if keep <= 0 or self.checkpoint_dir is None:
            return
        folders = sorted(p for p in self.checkpoint_dir.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))
        for old in folders[:-keep]:
            if old != self.last_checkpoint:
                shutil.rmtree(old, ignore_errors=True)

    def _apply_hyperparameters(self) -> None:
        """After loading optimizer state, use this run's lr/betas/decay (they may be changed on resume)."""
        decay, no_decay = self.optimizer.param_groups
        for group in (decay, no_decay):
            group["lr"], group["betas"] = self.config.lr, tuple(self.config.betas)
        decay["weight_decay"] = self.config.weight_decay

    def resume(self, path: PathLike) -> Path:
        """Restore model, optimizer, step and RNG state from a checkpoint; returns its folder."""
        folder = resolve_checkpoint(path)
        state = read_checkpoint_state(folder)
        weights = load_file(str(folder / "model.safetensors"), device="cpu")
        load_strict(self.model, weights, source=str(folder / "model.safetensors"))
        try:
            self.optimizer.load_state_dict(_optimizer_from_files(
                load_file(str(folder / "optimizer.safetensors"), device="cpu"), state["optimizer"]))
        except (ValueError, KeyError) as e:
            raise TrainingError(f"optimizer state in {folder} does not fit this model: {e}") from e
        self._apply_hyperparameters()
        _restore_rng(load_file(str(folder / "rng.safetensors")))
        self.step = int(state["step"])
        self.metrics = dict(state.get("metrics") or {})
        self.last_checkpoint = folder
        self._resumed = True
        return folder
