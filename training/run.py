"""One training run of any stage on the engine: folders, resume, data per step, logs, export.

Every stage (:mod:`.stage1`, :mod:`.champ_stages`) differs only in its module, loss, data and
exported files; this module does the rest once. A run folder holds:

* ``<stage>_config.json``: the resolved settings;
* ``checkpoints/step_XXXXXXXX/`` + ``checkpoints/latest.json``: resumable state (:mod:`.trainer`);
* ``metrics.jsonl``: one JSON line per step; ``tensorboard/``: scalars and previews;
* the exported weights the ComfyUI loaders read, written by the stage's ``export``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..m2penc.checkpoint import atomic_write
from ..m2penc.errors import InputError
from ..m2penc.progress import NO_CONTROL, RunControl
from .config import RunConfig
from .datasets import SeededItems, StepBatchSampler
from .trainer import LATEST_FILE, Batch, BatchesFn, Callback, LossFn, Trainer, TrainerConfig

LOG = logging.getLogger("m2pdance.training")
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
#: ``export(state_dict, output_dir, provenance) -> files``: the stage's weights from the model's whole
#: (EMA when on) state dict; called on the main process only.
ExportFn = Callable[[dict[str, torch.Tensor], Path, dict[str, str]], list[Path]]


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced.

    Attributes:
        outputs: the exported weight files.
        steps: optimizer steps done in total (including before a resume).
        first_loss, final_loss: total loss of the first and last step this process ran (``None`` if
            none ran, e.g. a resume of a finished run, and on processes other than the main one).
        output_dir: the run folder.
    """

    outputs: tuple[Path, ...]
    steps: int
    first_loss: Optional[float]
    final_loss: Optional[float]
    output_dir: Path


def engine_config(config: RunConfig, total_steps: int, output_dir: Path) -> TrainerConfig:
    """The engine settings of a run (TensorBoard under ``output_dir/tensorboard`` when on)."""
    return TrainerConfig(
        max_steps=total_steps, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas,
        grad_clip=config.grad_clip, checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
        seed=config.seed, device=config.device, mixed_precision=config.mixed_precision,
        grad_accumulation=config.grad_accumulation, lr_schedule=config.lr_schedule,
        lr_warmup_steps=config.lr_warmup_steps, optimizer=config.optimizer, ema_decay=config.ema_decay,
        log_dir=str(output_dir / TENSORBOARD) if config.tensorboard else None,
        sharding=config.sharding)


def step_batches(dataset: Dataset, config: RunConfig, total_steps: int, rank: int = 0, world_size: int = 1,
                 sampling: str = "random", with_seeds: bool = False) -> BatchesFn:
    """``start_step ->`` per step, this process's ``grad_accumulation`` micro-batches (lists of batches).

    Every step's global batch (``batch_size`` items) is a pure function of ``(seed, step)``; process
    ``rank`` of ``world_size`` takes its slices (:class:`.datasets.StepBatchSampler`). With
    ``with_seeds`` each sample also carries its own draw seed (``"seed"``, :class:`.datasets.SeededItems`)
    for its noise, timestep and dropout, so the draws do not depend on the process split.
    """
    accumulation = config.grad_accumulation
    items = SeededItems(dataset) if with_seeds else dataset

    def batches(start_step: int) -> Iterator[list[Batch]]:
        sampler = StepBatchSampler(dataset, config.batch_size, config.seed, sampling, start_step, total_steps,
                                   rank, world_size, accumulation, with_seeds=with_seeds)
        # its own generator: building a DataLoader draws a seed, which must not come from (and shift) torch's
        # global RNG that a resumed run has just restored
        loader = iter(DataLoader(items, batch_sampler=sampler, num_workers=config.num_workers,
                                 generator=torch.Generator().manual_seed(config.seed)))
        while group := list(islice(loader, accumulation)):
            yield group
    return batches


def checkpoint_to_resume(config: RunConfig, out: Path) -> Optional[Path]:
    """The checkpoint ``config.resume`` names (``latest``: the newest under ``out``, none yet: a fresh run).

    Without ``resume``, a folder that already holds a run is refused rather than overwritten.
    """
    if config.resume is None:
        if (out / CHECKPOINTS / LATEST_FILE).is_file():
            raise InputError(f"{out} already holds the checkpoints of a run; continue it with resume "
                             "'latest' (--resume latest) or write the new run to another output folder")
        return None
    if config.resume == "latest":
        if not (out / CHECKPOINTS / LATEST_FILE).is_file():
            LOG.info("resume latest: %s has no checkpoint yet, starting a fresh run", out)
            return None
        return out / CHECKPOINTS
    return Path(config.resume)


def run_on_engine(config: RunConfig, stage: str, module: nn.Module, loss_fn: LossFn,
                  batches: Callable[[int, int], BatchesFn], export: ExportFn, *, num_items: int, total_steps: int,
                  export_prefixes: Optional[tuple[str, ...]] = None, extra_state: Optional[Mapping[str, Any]] = None,
                  targets: Optional[nn.Module] = None, control: RunControl = NO_CONTROL,
                  callbacks: Optional[Mapping[str, list[Callback]]] = None,
                  main_callbacks: Optional[Mapping[str, list[Callback]]] = None,
                  check_resume: Optional[Callable[[Path], None]] = None) -> RunResult:
    """Train ``module`` on the engine as ``config`` says, then export its weights.

    Args:
        stage: the stage's name (``stage1``...), in file names, logs and provenance.
        batches: ``(rank, world_size) -> batches(start_step)`` for this process.
        export: writes the weights files from the final whole state dict (the EMA when ``ema_decay > 0``).
        export_prefixes: the module prefixes ``export`` reads (``None``: the whole state dict); only those are
            gathered.
        num_items, total_steps: the data size (for the log) and optimizer steps of the run.
        targets: a frozen helper module to move to the training device (Champ's guidance encoders).
        callbacks: trainer callbacks on every process (they may run collectives, e.g. a sharded forward);
            ``main_callbacks`` on the main process only.
        check_resume: called with the checkpoint before resuming (to refuse a mismatching one).
    """
    from accelerate import PartialState

    out = Path(config.output_dir)
    resume = checkpoint_to_resume(config, out)
    state = PartialState(cpu=config.device == "cpu" or not torch.cuda.is_available())
    main = state.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
        text = config.to_json().encode()
        atomic_write(out / f"{stage}_config.json", lambda p: Path(p).write_bytes(text))
    extra = {"stage": stage, "config": config.to_dict(), **(extra_state or {})}
    trainer = Trainer(module, loss_fn, batches(state.process_index, state.num_processes),
                      engine_config(config, total_steps, out),
                      checkpoint_dir=out / CHECKPOINTS, control=control, extra_state=extra)
    if targets is not None:
        targets.to(trainer.device)
    if resume is not None:
        if check_resume is not None:
            check_resume(resume)
        LOG.info("resumed from %s at step %d", trainer.resume(resume), trainer.step)
    log = MetricsLog(out / METRICS_FILE, config.log_every, total_steps, trainer.step) if main else None
    if log is not None:
        trainer.add_callback("on_step_end", log)
    for group in (callbacks, main_callbacks if main else None):
        for event, functions in (group or {}).items():
            for function in functions:
                trainer.add_callback(event, function)
    LOG.info("%s: %d items, %d steps of global batch %d on %d process(es) (%s), %s, mixed precision %s", stage,
             num_items, total_steps, config.batch_size, state.num_processes, config.sharding, trainer.device,
             config.mixed_precision)
    trainer.run()
    # every process takes part (gathering is collective); the main process gets the tensors
    weights = trainer.full_state_dict(ema=config.ema_decay > 0, prefixes=export_prefixes)
    outputs: list[Path] = []
    if main:
        provenance = {"m2pdance.training": json.dumps({"stage": stage, "steps": trainer.step,
                                                       "ema_decay": config.ema_decay, "config": config.to_dict()},
                                                      sort_keys=True)}
        outputs = export(weights, out, provenance)
        LOG.info("wrote %s", ", ".join(str(p) for p in outputs))
    trainer.accelerator.wait_for_everyone()
    return RunResult(outputs=tuple(outputs), steps=trainer.step, first_loss=log.first_loss if log else None,
                     final_loss=log.final_loss if log else None, output_dir=out)


def sub_state_dict(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.`` with the prefix removed (one sub-module's state dict)."""
    head = prefix + "."
    return {k[len(head):]: v for k, v in state.items() if k.startswith(head)}


class MetricsLog:
    """Appends one JSON line per step to ``metrics.jsonl`` and logs every ``log_every`` steps."""

    def __init__(self, path: Path, log_every: int, total_steps: int, resumed_step: int):
        self.path, self.log_every, self.total_steps = path, log_every, total_steps
        self.first_loss: Optional[float] = None
        self.final_loss: Optional[float] = None
        self._truncate(resumed_step)

    def _truncate(self, step: int) -> None:
        """Keep the lines of steps <= ``step`` (all lines from before the checkpoint resumed from)."""
        kept = []
        if step > 0 and self.path.is_file():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if _step_of(line) is not None and _step_of(line) <= step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def __call__(self, trainer: Trainer) -> None:
        metrics = {"step": trainer.step, **trainer.metrics}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(metrics, sort_keys=True) + "\n")
        loss = trainer.metrics["loss"]
        self.first_loss = loss if self.first_loss is None else self.first_loss
        self.final_loss = loss
        if trainer.step % self.log_every == 0 or trainer.step == self.total_steps:
            parts = "  ".join(f"{k} {v:.5g}" for k, v in sorted(trainer.metrics.items())
                              if k not in ("loss", "seconds", "lr"))
            LOG.info("step %d/%d  loss %.5f  (%s)  %.3f s/step", trainer.step, self.total_steps, loss, parts,
                     trainer.metrics["seconds"])


def _step_of(line: str) -> Optional[int]:
    """The step of a ``metrics.jsonl`` line, ``None`` for a blank or half-written one (a killed run)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
