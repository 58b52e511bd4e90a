"""Stage 1 of the paper (sec. 3.4): pre-train M2PEnc on synthetic (music -> pose) pairs.

Objective: ``guidance_weight * L_guid + heatmap_weight * L_heat`` with the encoder's own losses
(L1 on pose guidance, MSE on keypoint heatmaps; see :mod:`..m2penc.encoder.losses`). The run
writes into ``output_dir``:

* ``m2penc.safetensors``: final weights via :func:`save_m2penc`, the file the ComfyUI loader reads;
* ``checkpoints/step_XXXXXXXX/`` + ``checkpoints/latest.json``: resumable training state;
* ``metrics.jsonl``: one JSON line per step (loss, L_guid, L_heat, lr, grad norm, seconds);
* ``stage1_config.json``: the resolved settings of the run.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from itertools import islice
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional, Union

import torch
from einops import rearrange
from torch.utils.data import DataLoader

from ..m2penc.checkpoint import atomic_write
from ..m2penc.encoder.config import M2PEncConfig
from ..m2penc.encoder.losses import guidance_loss, heatmap_loss
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.encoder.weights import save_m2penc
from ..m2penc.errors import InputError
from ..m2penc.progress import NO_CONTROL, RunControl
from .config import Stage1Config
from .datasets import Stage1Windows, StepBatchSampler, steps_per_epoch
from .guidance_targets import GuidanceTargets

if TYPE_CHECKING:
    from .sdgpip.windows import SDGPipWindows
from .trainer import (LATEST_FILE, Batch, BatchesFn, Callback, LossFn, Trainer, TrainerConfig,
                      read_checkpoint_state)

LOG = logging.getLogger("m2pdance.training")
#: Stage-1 windows: safetensors pairs or an SDGPip build (same indexing interface).
Stage1Data = Union[Stage1Windows, "SDGPipWindows"]
WEIGHTS_FILE = "m2penc.safetensors"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "stage1_config.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"


@dataclass(frozen=True)
class Stage1Result:
    """What a finished stage-1 run produced.

    Attributes:
        weights_path: the ``save_m2penc`` file.
        steps: optimizer steps done in total (including before a resume).
        first_loss, final_loss: total loss of this process's first and last step (None if no
            step ran, e.g. a resume of a finished run).
        output_dir: the run folder.
    """

    weights_path: Path
    steps: int
    first_loss: Optional[float]
    final_loss: Optional[float]
    output_dir: Path


def stage1_loss_fn(guidance_weight: float = 1.0, heatmap_weight: float = 1.0,
                   targets: Optional[GuidanceTargets] = None) -> LossFn:
    """Loss over a batch of frames-first windows.

    The batch holds ``features (B, L, D)``, ``heatmaps (B, L, C_heat, G, G)`` and the guidance
    target: ``guidance (B, L, C_guid, G, G)``, or ``maps (B, L, 4, S, S, 3)`` uint8 that ``targets``
    (Champ's frozen guidance encoders, on the batch's device) turns into it. M2PEnc predicts
    ``(B, C, L, G, G)``, so targets are moved to that layout.
    """
    def loss_fn(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        output = model(batch["features"])
        guidance = batch.get("guidance")
        if guidance is None:
            if targets is None:
                raise InputError("this data stores maps, so stage 1 needs Champ's guidance encoders "
                                 "(guidance_encoders / --guidance-encoders FOLDER)")
            guidance = targets(batch["maps"])
        # losses in float32 whatever the autocast precision of the forward
        l_guid = guidance_loss(output.guidance.float(), rearrange(guidance.float(), "b n c h w -> b c n h w"))
        l_heat = heatmap_loss(output.heatmaps.float(), rearrange(batch["heatmaps"].float(), "b n c h w -> b c n h w"))
        return {"loss": guidance_weight * l_guid + heatmap_weight * l_heat, "l_guid": l_guid, "l_heat": l_heat}
    return loss_fn


def open_stage1_data(config: Stage1Config, model: M2PEncConfig) -> "Stage1Data":
    """The windows of ``config.data_dir``: an SDGPip build or a folder of stage-1 safetensors shards."""
    from .sdgpip.windows import SDGPipWindows, is_sdgpip_folder

    if is_sdgpip_folder(config.data_dir):
        return SDGPipWindows(config.data_dir, config.sequence_length, model, splits=config.data_splits,
                             sources=config.data_sources)
    return Stage1Windows(config.data_dir, config.sequence_length, model)


def guidance_targets(config: Stage1Config, dataset: "Stage1Data", model: M2PEncConfig) -> Optional[GuidanceTargets]:
    """Champ's frozen encoders when ``dataset`` stores maps (checked against the model), else ``None``."""
    if not getattr(dataset, "needs_encoders", False):
        return None
    if config.guidance_encoders is None:
        raise InputError(f"{config.data_dir} stores guidance maps, which Champ's guidance encoders turn into the "
                         "targets while training: pass guidance_encoders / --guidance-encoders FOLDER (the folder "
                         "holding guidance_encoder_depth/normal/semantic_map/dwpose, e.g. Champ's release)")
    from ..m2penc.champ.models import load_guidance_encoders

    targets = GuidanceTargets(load_guidance_encoders(config.guidance_encoders, device="cpu", dtype=torch.float32))
    if targets.channels != model.guidance_channels:
        raise InputError(f"the guidance encoders in {config.guidance_encoders} output {targets.channels} channels but "
                         f"the model predicts {model.guidance_channels}; use the Champ encoders the model is for")
    return targets


def stage1_batches(dataset: "Stage1Data", config: Stage1Config, total_steps: int, rank: int = 0,
                   world_size: int = 1) -> BatchesFn:
    """``start_step ->`` per step, this process's ``grad_accumulation`` micro-batches (lists of batches).

    Every step's global batch (``batch_size`` windows) is a pure function of ``(seed, step)``; process
    ``rank`` of ``world_size`` takes its slices (:func:`.datasets.micro_batch`).
    """
    accumulation = config.grad_accumulation

    def batches(start_step: int) -> Iterator[list[Batch]]:
        sampler = StepBatchSampler(dataset, config.batch_size, config.seed, config.window_sampling,
                                   start_step, total_steps, rank, world_size, accumulation)
        # its own generator: building a DataLoader draws a seed, which must not come from (and shift) torch's
        # global RNG that a resumed run has just restored
        loader = iter(DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                                 generator=torch.Generator().manual_seed(config.seed)))
        while group := list(islice(loader, accumulation)):
            yield group
    return batches


def build_model(config: Stage1Config) -> M2PEnc:
    """A freshly initialised M2PEnc, seeded by ``config.seed`` (the same weights in every process)."""
    torch.manual_seed(config.seed)
    model = M2PEnc(config.model_config())
    model.gradient_checkpointing = config.gradient_checkpointing
    return model


def trainer_config(config: Stage1Config, total_steps: int, log_dir: Optional[Path]) -> TrainerConfig:
    """The engine settings of a stage-1 run."""
    return TrainerConfig(
        max_steps=total_steps, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas,
        grad_clip=config.grad_clip, checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
        seed=config.seed, device=config.device, mixed_precision=config.mixed_precision,
        grad_accumulation=config.grad_accumulation, lr_schedule=config.lr_schedule,
        lr_warmup_steps=config.lr_warmup_steps, optimizer=config.optimizer, ema_decay=config.ema_decay,
        log_dir=None if log_dir is None else str(log_dir))


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


class Stage1Previews:
    """TensorBoard images every ``every`` steps: M2PEnc's prediction next to its target on one fixed window.

    ``preview/heatmaps``: max over keypoints; ``preview/guidance``: mean |guidance| over channels,
    each frame normalised to [0, 1]; top row predicted, bottom row target, frames left to right
    (at most 8).
    """

    FRAMES = 8

    def __init__(self, dataset: "Stage1Data", targets: Optional[GuidanceTargets], every: int):
        self.item, self.targets, self.every = dataset[0], targets, every

    @torch.no_grad()
    def __call__(self, trainer: Trainer) -> None:
        if trainer.writer is None or self.every <= 0 or trainer.step % self.every:
            return
        model = trainer.unwrapped
        was_training = model.training
        model.eval()
        batch = {k: v[None].to(trainer.device) for k, v in self.item.items()}
        output = model(batch["features"])
        model.train(was_training)
        guidance = batch["guidance"] if "guidance" in batch else self.targets(batch["maps"])
        n = min(self.FRAMES, output.heatmaps.shape[2])
        pairs = {"heatmaps": (output.heatmaps[0, :, :n].amax(0), batch["heatmaps"][0, :n].amax(1)),
                 "guidance": (output.guidance[0, :, :n].abs().mean(0), guidance[0, :n].abs().mean(1))}
        for name, (pred, target) in pairs.items():
            rows = [torch.cat(list(_unit(x.float())), dim=1) for x in (pred, target)]      # (G, n*G) each
            trainer.writer.add_image(f"preview/{name}", torch.cat(rows, dim=0).cpu(), trainer.step,
                                     dataformats="HW")


def _unit(frames: torch.Tensor) -> torch.Tensor:
    """``(n, G, G)`` scaled to [0, 1] per frame."""
    lo = frames.flatten(1).amin(1)[:, None, None]
    hi = frames.flatten(1).amax(1)[:, None, None]
    return (frames - lo) / (hi - lo).clamp_min(1e-8)


def checkpoint_to_resume(config: Stage1Config, out: Path) -> Optional[Path]:
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


def _check_resume_model(checkpoint: Path, model: M2PEncConfig) -> None:
    saved = read_checkpoint_state(checkpoint).get("extra", {}).get("model_config")
    if saved is not None and M2PEncConfig.from_dict(saved) != model:
        raise InputError(f"checkpoint {checkpoint} trained a different M2PEnc config ({saved}); resume "
                         "with the same model preset/config file and overrides")


def run_stage1(config: Stage1Config, control: RunControl = NO_CONTROL,
               callbacks: Optional[Mapping[str, list[Callback]]] = None) -> Stage1Result:
    """Train M2PEnc as ``config`` says and write its weights; see the module docstring for outputs."""
    if config.data_dir is None:
        raise InputError("stage 1 needs a data folder (data_dir / --data): build one with `m2pdance-train sdgpip "
                         "--source beats --data MUSIC_DIR --out DIR` (or a toy one with "
                         "`m2pdance-train make-toy-data`)")
    from accelerate import PartialState

    model_config = config.model_config()
    dataset = open_stage1_data(config, model_config)
    targets = guidance_targets(config, dataset, model_config)
    total = config.total_steps(steps_per_epoch(dataset, config.batch_size))
    out = Path(config.output_dir)
    resume = checkpoint_to_resume(config, out)
    state = PartialState(cpu=config.device == "cpu" or not torch.cuda.is_available())
    main = state.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
        config_text = config.to_json().encode()
        atomic_write(out / CONFIG_FILE, lambda p: Path(p).write_bytes(config_text))

    model = build_model(config)
    extra: dict[str, Any] = {"stage": "stage1", "model_config": model_config.to_dict(),
                             "stage1_config": config.to_dict()}
    trainer = Trainer(model, stage1_loss_fn(config.guidance_weight, config.heatmap_weight, targets),
                      stage1_batches(dataset, config, total, state.process_index, state.num_processes),
                      trainer_config(config, total, out / TENSORBOARD if config.tensorboard else None),
                      checkpoint_dir=out / CHECKPOINTS, control=control, extra_state=extra)
    if targets is not None:
        targets.to(trainer.device)
    if resume is not None:
        _check_resume_model(resume, model_config)
        LOG.info("resumed from %s at step %d", trainer.resume(resume), trainer.step)
    log = MetricsLog(out / METRICS_FILE, config.log_every, total, trainer.step) if main else None
    if log is not None:
        trainer.add_callback("on_step_end", log)
    if main and config.tensorboard and config.preview_every > 0:
        trainer.add_callback("on_step_end", Stage1Previews(dataset, targets, config.preview_every))
    for event, functions in (callbacks or {}).items():
        for function in functions:
            trainer.add_callback(event, function)
    LOG.info("stage 1: %d windows of %d frames in %d shards, %d steps of global batch %d on %d process(es), %s, "
             "mixed precision %s", len(dataset), config.sequence_length, len(dataset.shards), total,
             config.batch_size, state.num_processes, trainer.device, config.mixed_precision)
    trainer.run()
    weights = out / WEIGHTS_FILE
    if main:
        provenance = {"m2pdance.training": json.dumps({"stage": "stage1", "steps": trainer.step,
                                                       "ema_decay": config.ema_decay, "config": config.to_dict()},
                                                      sort_keys=True)}
        save_m2penc(trainer.unwrapped, weights, provenance=provenance,
                    state_dict=trainer.ema_state_dict() if config.ema_decay > 0 else None)
        LOG.info("wrote %s", weights)
    trainer.accelerator.wait_for_everyone()
    return Stage1Result(weights_path=weights, steps=trainer.step, first_loss=log.first_loss if log else None,
                        final_loss=log.final_loss if log else None, output_dir=out)
