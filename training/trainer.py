"""The training engine: one model-agnostic loop on Hugging Face Accelerate, used by every stage.

The trainer knows nothing about M2PEnc or Champ: it gets a module, a ``loss_fn(model, batch) ->
{"loss": scalar, ...parts}``, and ``batches(start_step)``, an iterable yielding, per optimizer step,
this process's micro-batches (a list of ``grad_accumulation`` dicts of tensors, or one dict).
Everything model-specific lives in the stage modules (:mod:`.stage1`).

Why each piece is here:

* **Scale out on Accelerate.** ``accelerate launch`` / ``torchrun`` start one process per GPU
  (or CPU worker); :class:`accelerate.Accelerator` sets up the process group and wraps the model
  in DDP. Each step's *global* batch is a pure function of the step, cut into micro-batches per
  process and per accumulation step by the data side (:func:`.datasets.batch_indices_for_step`),
  so N processes reach the parameters 1 process would with the same global batch.
* **Replicated or sharded.** ``sharding="ddp"`` keeps a full replica per process (Accelerate's DDP);
  ``"fsdp"`` shards parameters, gradients and AdamW moments over the processes (ZeRO-3, PyTorch's
  FSDP2: :mod:`.sharding`), for stage 2's two full U-Nets. Checkpoints hold the whole model either
  way (gathered), plus each process's optimizer shard.
* **Mixed precision keeps fp32 master weights.** ``mixed_precision="bf16"|"fp16"`` runs the
  forward under ``torch.autocast``; parameters, gradients and AdamW moments stay float32 (a bf16
  parameter would lose most AdamW updates at lr 1e-5: bf16 has 8 bits of mantissa), and fp16
  adds dynamic loss scaling (``torch.amp.GradScaler``). Accelerate's own mixed-precision switch is
  process-global; autocast here is per trainer.
* **Resume must be exact.** A checkpoint is a folder ``step_0000100/`` holding
  ``model.safetensors`` (the trained parameters and the model's buffers, whole), ``optimizer.safetensors``
  (AdamW moments; sharded runs: each process's shard in ``optimizer_rank<r>.safetensors``), ``ema.safetensors`` (when EMA is on), ``rng_rank<r>.safetensors`` (each
  process's torch CPU/CUDA generator states) and ``trainer_state.json`` (step, optimizer
  hyper-parameters, LR schedule and loss-scaler state, caller's extra JSON). No pickles, so a
  checkpoint can never run code when loaded. Data order is the caller's pure function of the
  step, so resuming at step k and training to n gives bit-identical weights to an uninterrupted
  run on the same device and process count.
* **Writes are atomic.** A checkpoint folder is written under a temporary name and renamed;
  ``latest.json`` is replaced atomically afterwards, so a crash mid-write never leaves a
  half-checkpoint that resume would pick up.
* **Long runs are controllable.** Every step reports progress through
  :class:`~..m2penc.progress.RunControl`; a cancel (agreed by every process) saves a checkpoint
  first, then raises.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..m2penc.checkpoint import atomic_write
from ..m2penc.errors import GenerationCancelled, InputError, M2PDanceError
from ..m2penc.progress import NO_CONTROL, RunControl
from .sharding import SHARDING, fsdp_units, full, is_sharded, local, local_like, shard_like, shard_model

Batch = dict[str, torch.Tensor]
#: ``loss_fn(model, batch)`` -> dict with a scalar ``"loss"`` to minimise plus any logged parts.
LossFn = Callable[[nn.Module, Batch], Mapping[str, torch.Tensor]]
#: ``batches(start_step)`` -> per step from ``start_step`` on: this process's micro-batches (or one batch).
BatchesFn = Callable[[int], Iterable[Union[Batch, list[Batch]]]]
#: ``callback(trainer)`` (``on_step_end``) or ``callback(trainer, checkpoint_path)`` (``on_checkpoint``).
Callback = Callable[..., None]
EVENTS = ("on_step_end", "on_checkpoint")
CHECKPOINT_FORMAT = 2
STATE_FILE = "trainer_state.json"
LATEST_FILE = "latest.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")
MIXED_PRECISION = ("no", "bf16", "fp16")
LR_SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("adamw", "adamw8bit")

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
        seed: seeds torch's RNGs at the start of a fresh run (every process alike).
        device: ``auto`` (this process's GPU, else the CPU), ``cpu`` or ``cuda``.
        mixed_precision: ``no``, ``bf16`` or ``fp16`` autocast around the forward (fp32 weights).
        grad_accumulation: micro-batches per optimizer step (per process).
        lr_schedule, lr_warmup_steps: diffusers' schedules (``constant``, ``cosine``, ``linear``) after a
            linear warm-up.
        optimizer: ``adamw`` (torch) or ``adamw8bit`` (bitsandbytes, CUDA only).
        ema_decay: exponential moving average of the trained parameters (0 = off).
        log_dir: TensorBoard folder for the scalars (``None`` = no TensorBoard).
        find_unused_parameters: DDP's flag, for models whose trained parameters may get no gradient
            in a step (the stages avoid that: a dropped ReferenceNet still runs, tied to the loss by 0).
        sharding: ``ddp`` (a replica per process) or ``fsdp`` (parameters, gradients and optimizer
            state sharded over the processes; one process trains unsharded either way).
    """

    max_steps: int
    lr: float = 1e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0
    checkpoint_every: int = 0
    keep_checkpoints: int = 0
    seed: int = 0
    device: str = "cpu"
    mixed_precision: str = "no"
    grad_accumulation: int = 1
    lr_schedule: str = "constant"
    lr_warmup_steps: int = 0
    optimizer: str = "adamw"
    ema_decay: float = 0.0
    log_dir: Optional[str] = None
    find_unused_parameters: bool = False
    sharding: str = "ddp"

    def __post_init__(self) -> None:
        if self.sharding not in SHARDING:
            raise InputError(f"sharding must be one of {SHARDING}, got {self.sharding!r}")
        if self.sharding == "fsdp" and self.optimizer == "adamw8bit":
            raise InputError("adamw8bit does not take sharded (FSDP) parameters; use optimizer 'adamw' with "
                             "sharding 'fsdp' (sharding already divides the AdamW state by the process count)")
        if self.mixed_precision not in MIXED_PRECISION:
            raise InputError(f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.grad_accumulation < 1 or self.lr_warmup_steps < 0 or not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"grad_accumulation must be >= 1, lr_warmup_steps >= 0 and ema_decay in [0, 1); got "
                             f"{self.grad_accumulation}, {self.lr_warmup_steps}, {self.ema_decay}")


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every parameter with ``requires_grad``, in registration order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def make_optimizer(model: nn.Module, config: TrainerConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; decay on matrices/kernels only (biases and norm gains are not)."""
    params = [p for _, p in trainable_parameters(model)]
    if not params:
        raise InputError("the model has no trainable parameters (every requires_grad is False)")
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    if config.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise InputError("optimizer 'adamw8bit' needs bitsandbytes (pip install bitsandbytes) and a CUDA GPU; "
                             "or use 'adamw'") from None
        return bnb.optim.AdamW8bit(groups, lr=config.lr, betas=config.betas)
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def make_lr_schedule(optimizer: torch.optim.Optimizer, config: TrainerConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """diffusers' ``get_scheduler`` (constant / cosine / linear after linear warm-up) over ``max_steps``."""
    from diffusers.optimization import get_scheduler

    name = "constant_with_warmup" if config.lr_schedule == "constant" else config.lr_schedule
    return get_scheduler(name, optimizer, num_warmup_steps=config.lr_warmup_steps,
                         num_training_steps=config.max_steps)


def batch_to(batch: Batch, device: torch.device) -> Batch:
    """Move every tensor to ``device`` (dtypes unchanged: autocast chooses compute precision)."""
    return {k: v.to(device=device, non_blocking=True) for k, v in batch.items()}


# ----- checkpoint files -------------------------------------------------------------------

def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into safetensors tensors and JSON scalars."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):             # a sharded moment: this process's shard
                tensors[f"state.{index}.{name}"] = local(value.detach()).cpu().contiguous()
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
            aside = root / f".{name}.replaced"      # a crash while a step folder was being replaced
            if (aside / STATE_FILE).is_file():
                return aside
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
    """Runs AdamW on ``loss_fn`` over ``batches`` with Accelerate, checkpoints, callbacks and resume.

    Attributes (read them from callbacks):
        step: optimizer steps done so far.
        metrics: floats of the last step, averaged over processes (``loss``, the loss parts, ``lr``,
            ``grad_norm``, ``seconds``).
        last_checkpoint: folder of the newest checkpoint written or resumed from.
        accelerator: the :class:`accelerate.Accelerator` (``is_main_process``, ``num_processes`` ...).
        model: the model as trained (DDP-wrapped, or FSDP-sharded in place, when distributed); :attr:`unwrapped`
            is the module itself.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batches: BatchesFn, config: TrainerConfig,
                 checkpoint_dir: Optional[PathLike] = None, control: RunControl = NO_CONTROL,
                 extra_state: Optional[Mapping[str, Any]] = None):
        from accelerate import Accelerator, DistributedDataParallelKwargs

        if config.max_steps < 1:
            raise InputError(f"max_steps must be >= 1, got {config.max_steps}")
        self.config = config
        cpu = config.device == "cpu" or not torch.cuda.is_available()
        if config.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"device must be auto, cpu or cuda (each process takes its own GPU), "
                             f"got {config.device!r}")
        ddp = DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)
        self.accelerator = Accelerator(cpu=cpu, mixed_precision="no", kwargs_handlers=[ddp])
        self.device = self.accelerator.device
        self._autocast_dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config.mixed_precision]
        self.scaler = torch.amp.GradScaler(self.device.type) if config.mixed_precision == "fp16" else None
        self.trained_names = [n for n, _ in trainable_parameters(model)]
        model = model.to(self.device)
        #: whether parameters are FSDP shards (``DTensor``); with one process there is nothing to shard
        self.sharded = config.sharding == "fsdp" and self.accelerator.num_processes > 1
        if self.sharded:
            self.model = self.unwrapped = shard_model(model, self.device, self.accelerator.num_processes,
                                                      fsdp_units(model))
        else:
            self.model = self.accelerator.prepare_model(model)
            self.unwrapped = self.accelerator.unwrap_model(self.model)
        self.optimizer = make_optimizer(self.unwrapped, config)
        self.lr_schedule = make_lr_schedule(self.optimizer, config)
        self.ema: Optional[dict[str, torch.Tensor]] = None
        if config.ema_decay > 0:
            self.ema = {n: p.detach().float().clone() for n, p in trainable_parameters(self.unwrapped)}
        self.loss_fn, self.batches, self.control = loss_fn, batches, control
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.extra_state = dict(extra_state or {})
        self.step = 0
        self.metrics: dict[str, float] = {}
        self.last_checkpoint: Optional[Path] = None
        self._resumed = False
        self._callbacks: dict[str, list[Callback]] = {event: [] for event in EVENTS}
        #: TensorBoard ``SummaryWriter`` of the main process, opened at the first step (after a resume, with
        #: ``purge_step`` so the steps after the checkpoint are not shown twice); callbacks add images.
        self.writer = None

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype (always float32: mixed precision is autocast)."""
        return next(self.unwrapped.parameters()).dtype

    def add_callback(self, event: str, callback: Callback) -> None:
        """Register ``callback`` for ``on_step_end`` or ``on_checkpoint``."""
        if event not in self._callbacks:
            raise InputError(f"unknown trainer event {event!r}; events: {EVENTS}")
        self._callbacks[event].append(callback)

    def _trigger(self, event: str, *args: Any) -> None:
        for callback in self._callbacks[event]:
            callback(self, *args)

    # ----- training -------------------------------------------------------------------

    def _autocast(self):
        if self._autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def train_step(self, micro_batches: Union[Batch, list[Batch]]) -> dict[str, float]:
        """One optimizer step over this process's micro-batches; returns the step's metrics (process mean)."""
        start = time.perf_counter()
        micro = [micro_batches] if isinstance(micro_batches, dict) else list(micro_batches)
        if len(micro) != self.config.grad_accumulation:
            raise TrainingError(f"step {self.step + 1} got {len(micro)} micro-batches, expected "
                                f"grad_accumulation={self.config.grad_accumulation}")
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        for k, batch in enumerate(micro):
            # DDP syncs only the last micro-batch; FSDP reduce-scatters every one, so the accumulated gradients
            # stay sharded (skipping the sync would keep whole fp32 gradients on every process between micro-batches)
            sync = k == len(micro) - 1
            with (nullcontext() if sync or self.sharded else self.accelerator.no_sync(self.model)):
                with self._autocast():
                    losses = self.loss_fn(self.model, batch_to(batch, self.device))
                loss = losses["loss"].float() / len(micro)
                self._check_finite(loss, losses["loss"])
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float() / len(micro)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.unwrapped.parameters() if p.requires_grad]
        grad_norm = None
        if self.config.grad_clip > 0:
            grad_norm = full(torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip))
        lr = self.optimizer.param_groups[0]["lr"]          # the rate this step uses
        skipped = False
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)                # skips the update when a gradient overflowed ...
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale       # ... and then lowers the scale
        else:
            self.optimizer.step()
        self.lr_schedule.step()
        if not skipped:                                     # the weights did not change: nor does their average
            self._update_ema()
        names = sorted(sums)
        values = torch.stack([sums[n] for n in names] + ([grad_norm.float()] if grad_norm is not None else []))
        values = self.accelerator.reduce(values, reduction="mean")
        metrics = {name: float(v) for name, v in zip(names, values)}
        if grad_norm is not None:
            metrics["grad_norm"] = float(values[-1])
        metrics["lr"] = lr
        if self.scaler is not None:
            metrics["loss_scale"] = float(self.scaler.get_scale())
        metrics["seconds"] = time.perf_counter() - start
        return metrics

    def _check_finite(self, loss: torch.Tensor, raw: torch.Tensor) -> None:
        """Raise on a NaN/inf loss in any process, in every process (before a backward others would wait in)."""
        bad = (~torch.isfinite(loss.detach())).any().float().reshape(1)
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        if bad.item() > 0:
            raise TrainingError(f"loss became {raw.item()} (in this or another process) at step {self.step + 1}; "
                                "lower the learning rate, enable grad_clip, or check the data for NaN/inf values")

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        decay = self.config.ema_decay
        for name, p in trainable_parameters(self.unwrapped):
            self.ema[name].mul_(decay).add_(p.detach().float(), alpha=1.0 - decay)

    def full_state_dict(self, ema: bool = False, prefixes: Optional[Sequence[str]] = None) -> dict[str, torch.Tensor]:
        """The model's whole state dict on the CPU of the main process (``{}`` elsewhere).

        Args:
            ema: the trained parameters are their EMA.
            prefixes: only the entries under these module prefixes (``("m2penc.",)``); ``None``: all.

        Every process must call it (sharded tensors are gathered one at a time, so no process ever
        holds more than one whole tensor beyond its shards; only the main process keeps them).
        """
        state = self.unwrapped.state_dict()
        names = [k for k in state if prefixes is None or k.startswith(tuple(prefixes))]
        averaged = self.ema if ema and self.ema is not None else {}
        return self._gather({k: averaged.get(k, state[k]).detach() for k in names},
                            {k: state[k].dtype for k in names})

    def _gather(self, tensors: Mapping[str, torch.Tensor],
                dtypes: Optional[Mapping[str, torch.dtype]] = None) -> dict[str, torch.Tensor]:
        """Whole CPU copies of ``tensors`` on the main process, ``{}`` on the others (collective when sharded)."""
        main = self.accelerator.is_main_process
        if not (main or self.sharded):
            return {}
        out: dict[str, torch.Tensor] = {}
        for name, value in tensors.items():
            whole = full(value)                                 # every process, same order, when sharded
            if main:
                out[name] = whole.to("cpu", (dtypes or {}).get(name, whole.dtype), copy=True).contiguous()
            del whole
        return out

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
        bar = self._progress_bar(total)
        try:
            for micro_batches in self.batches(self.step):
                self.metrics = self.train_step(micro_batches)
                self.step += 1
                self._log()
                self._trigger("on_step_end")
                if self._checkpoint_due():
                    self.save_checkpoint()
                if bar is not None:
                    bar.set_postfix(loss=f"{self.metrics['loss']:.4g}", refresh=False)
                    bar.update(1)
                self._tick(total)
                if self.step >= total:
                    break
        finally:
            if bar is not None:
                bar.close()
        if self.step < total:
            raise TrainingError(f"the batch source ran out after {self.step} of {total} steps")
        if self.checkpoint_dir is not None and self.last_checkpoint != self._folder_for(self.step):
            self.save_checkpoint()
        if self.writer is not None:
            self.writer.flush()
        return self.step

    def _progress_bar(self, total: int) -> Any:
        if not self.accelerator.is_main_process or os.environ.get("M2PDANCE_NO_PROGRESS"):
            return None
        from tqdm.auto import tqdm
        return tqdm(total=total, initial=self.step, desc="train", unit="step", dynamic_ncols=True)

    def _log(self) -> None:
        if self.config.log_dir is None or not self.accelerator.is_main_process:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(self.config.log_dir, purge_step=self.step if self._resumed else None)
        for name, value in self.metrics.items():
            if math.isfinite(value):
                self.writer.add_scalar(f"train/{name}", value, self.step)

    def _checkpoint_due(self) -> bool:
        every = self.config.checkpoint_every
        return self.checkpoint_dir is not None and every > 0 and self.step % every == 0

    def _cancel_requested(self) -> bool:
        """Whether any process was asked to stop (all processes agree, so all save the same checkpoint)."""
        try:
            self.control.check_cancel()
            local = 0.0
        except GenerationCancelled:
            local = 1.0
        if self.accelerator.num_processes == 1:
            return local > 0
        flag = torch.tensor([local], device=self.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _tick(self, total: int) -> None:
        if self.control.progress is not None:
            self.control.progress("train", self.step, total)
        if not self._cancel_requested():
            return
        if self.checkpoint_dir is None:
            raise GenerationCancelled(f"training cancelled at step {self.step}; no checkpoint "
                                      "folder was given, so nothing was saved")
        folder = (self.last_checkpoint if self.last_checkpoint == self._folder_for(self.step)
                  else self.save_checkpoint())
        raise GenerationCancelled(f"training cancelled at step {self.step}; checkpoint saved to "
                                  f"{folder}, resume from it to continue")

    # ----- checkpoints ----------------------------------------------------------------

    def _folder_for(self, step: int) -> Optional[Path]:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / step_dir_name(step)

    def save_checkpoint(self) -> Path:
        """Write the full training state of the current step atomically (every process takes part)."""
        if self.checkpoint_dir is None:
            raise InputError("this trainer has no checkpoint_dir")
        acc, root = self.accelerator, self.checkpoint_dir
        final = root / step_dir_name(self.step)
        tmp = root / f".{final.name}.partial"
        if acc.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        acc.wait_for_everyone()
        try:
            save_file(_rng_tensors(), str(tmp / f"rng_rank{acc.process_index}.safetensors"))
            optimizer_tensors, optimizer_meta = _optimizer_to_files(self.optimizer)
            if self.sharded:                        # each process's optimizer shard; gathering it would cost a replica
                save_file(optimizer_tensors, str(tmp / f"optimizer_rank{acc.process_index}.safetensors"))
            state = self.unwrapped.state_dict()
            weights = self._gather({k: state[k].detach() for k in self._saved_names()})
            ema = None if self.ema is None else self._gather(self.ema)
            if acc.is_main_process:
                self._write_state(tmp, weights, ema, None if self.sharded else optimizer_tensors, optimizer_meta)
            del state, optimizer_tensors
            acc.wait_for_everyone()
            if acc.is_main_process:
                _fsync_folder(tmp)
                replaced = root / f".{final.name}.replaced"
                if final.exists():                          # a re-run over an older run's step: set it aside first
                    shutil.rmtree(replaced, ignore_errors=True)
                    os.replace(final, replaced)
                os.replace(tmp, final)
                payload = json.dumps({"checkpoint": final.name, "step": self.step}).encode()
                atomic_write(root / LATEST_FILE, lambda p: Path(p).write_bytes(payload))
                for aside in root.glob(".step_*.replaced"):         # this one, and any a crash left behind
                    shutil.rmtree(aside, ignore_errors=True)
                self._prune(final)
        except BaseException:
            if acc.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        acc.wait_for_everyone()
        self.last_checkpoint = final
        self._trigger("on_checkpoint", final)
        return final

    def _write_state(self, folder: Path, weights: dict[str, torch.Tensor], ema: Optional[dict[str, torch.Tensor]],
                     optimizer_tensors: Optional[dict[str, torch.Tensor]], optimizer_meta: dict[str, Any]) -> None:
        """The main process's files: model, EMA, the unsharded optimizer state (``None`` when sharded), the JSON."""
        save_file(weights, str(folder / "model.safetensors"), metadata={"step": str(self.step)})
        if optimizer_tensors is not None:
            save_file(optimizer_tensors, str(folder / "optimizer.safetensors"))
        if ema is not None:
            save_file(ema, str(folder / "ema.safetensors"))
        state = {"format": CHECKPOINT_FORMAT, "step": self.step, "seed": self.config.seed,
                 "processes": self.accelerator.num_processes, "sharding": self.sharding,
                 "trained": self.trained_names,
                 "optimizer": optimizer_meta, "lr_schedule": _plain(self.lr_schedule.state_dict()),
                 "scaler": None if self.scaler is None else _plain(self.scaler.state_dict()),
                 "metrics": self.metrics, "extra": self.extra_state}
        (folder / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")

    def _saved_names(self) -> list[str]:
        """What ``model.safetensors`` holds: the trained parameters and every buffer (frozen parameters come
        from their own weights files)."""
        trained = set(self.trained_names)
        params = {n for n, _ in self.unwrapped.named_parameters()}
        return [k for k in self.unwrapped.state_dict() if k in trained or k not in params]

    @property
    def sharding(self) -> str:
        """``fsdp`` when the parameters are shards, else ``ddp`` (also for one process)."""
        return "fsdp" if self.sharded else "ddp"

    @torch.no_grad()
    def _load_model_tensors(self, weights: Mapping[str, torch.Tensor], source: Path) -> None:
        """Copy whole tensors into the (possibly sharded) parameters and buffers of the same names."""
        if not self.sharded:
            _, unexpected = self.unwrapped.load_state_dict(weights, strict=False)
            if unexpected:
                raise TrainingError(f"unexpected tensors in {source}: {unexpected[:5]}")
            return
        tensors = dict(self.unwrapped.named_parameters())
        tensors.update(self.unwrapped.named_buffers())
        for name, value in weights.items():
            tensors[name].copy_(shard_like(value, tensors[name]))

    def _prune(self, newest: Path) -> None:
        keep = self.config.keep_checkpoints
        if keep <= 0 or self.checkpoint_dir is None:
            return
        folders = sorted(p for p in self.checkpoint_dir.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))
        for old in folders[:-keep]:
            if old != newest:
                shutil.rmtree(old, ignore_errors=True)

    def _apply_hyperparameters(self) -> None:
        """After loading the optimizer and schedule, use this run's lr/betas/decay (they may change on resume)."""
        decay, no_decay = self.optimizer.param_groups
        schedule = self.lr_schedule
        schedule.base_lrs = [self.config.lr] * len(self.optimizer.param_groups)
        for group, factor in zip((decay, no_decay), schedule.lr_lambdas):
            group["betas"] = tuple(self.config.betas)
            group["lr"] = self.config.lr * factor(schedule.last_epoch)
        schedule._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        decay["weight_decay"] = self.config.weight_decay

    def resume(self, path: PathLike) -> Path:
        """Restore model, optimizer, schedule, scaler, EMA, step and RNG state; returns the checkpoint folder."""
        folder = resolve_checkpoint(path)
        state = read_checkpoint_state(folder)
        if state.get("sharding", "ddp") != self.sharding:
            raise TrainingError(f"{folder} was written with sharding {state.get('sharding', 'ddp')!r}; resume it "
                                f"with the same sharding (now {self.sharding!r})")
        if int(state.get("processes", 1)) != self.accelerator.num_processes:
            raise TrainingError(f"{folder} was written by {state.get('processes')} process(es); resume it with the "
                                f"same number (now {self.accelerator.num_processes}) to continue exactly")
        if state.get("trained") != self.trained_names:
            raise TrainingError(f"{folder} trained other parameters than this model trains; resume with the same "
                                "stage and model settings")
        weights = load_file(str(folder / "model.safetensors"), device="cpu")
        expected = set(self._saved_names())
        if set(weights) != expected:
            raise TrainingError(f"{folder / 'model.safetensors'} holds other tensors than this model "
                                f"({sorted(set(weights) ^ expected)[:5]} ...)")
        self._load_model_tensors(weights, folder / "model.safetensors")
        shard = f"optimizer_rank{self.accelerator.process_index}" if self.sharded else "optimizer"
        try:
            saved = _optimizer_from_files(load_file(str(folder / f"{shard}.safetensors"), device="cpu"),
                                          state["optimizer"])
            self.optimizer.load_state_dict(self._as_parameter_shards(saved))
        except (ValueError, KeyError) as e:
            raise TrainingError(f"optimizer state in {folder} does not fit this model: {e}") from e
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self._apply_hyperparameters()
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            ema_file = folder / "ema.safetensors"
            if not ema_file.is_file():
                raise TrainingError(f"{folder} has no ema.safetensors but this run keeps an EMA (ema_decay > 0)")
            params = dict(self.unwrapped.named_parameters())
            self.ema = {k: shard_like(v, params[k]).float() for k, v in load_file(str(ema_file)).items()}
        rng = folder / f"rng_rank{self.accelerator.process_index}.safetensors"
        _restore_rng(load_file(str(rng)))
        self.step = int(state["step"])
        self.metrics = dict(state.get("metrics") or {})
        self.last_checkpoint = folder
        self._resumed = True
        return folder

    def _as_parameter_shards(self, state: dict[str, Any]) -> dict[str, Any]:
        """A loaded optimizer state dict with each parameter-shaped tensor made a shard like its parameter."""
        if not self.sharded:
            return state
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for index, entry in state["state"].items():
            param = params[int(index)]
            for name, value in entry.items():              # AdamW's moments (exp_avg, exp_avg_sq), not its step
                if name != "step" and isinstance(value, torch.Tensor) and is_sharded(param):
                    if value.shape != local(param).shape:
                        raise TrainingError(f"optimizer state {name} of parameter {index} is {tuple(value.shape)}, "
                                            f"this process's shard {tuple(local(param).shape)}")
                    entry[name] = local_like(value, param)
        return state


def _plain(value: Any) -> Any:
    """A state dict as JSON values (tensors and tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _fsync_folder(folder: Path) -> None:
    """Flush every file of a checkpoint folder to disk before it is renamed into place."""
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
