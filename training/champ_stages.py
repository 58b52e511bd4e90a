"""Stages 2 and 3 of the paper (sec. 3.4, 4.1) on the engine: configs, runs, exported weights.

* Stage 2 (:func:`run_stage2`): :class:`.stage2.Stage2Module` on :class:`.video_data.Stage2Pairs` -- the
  spatial denoising U-Net and the ReferenceNet from Champ's weights, per frame, M2PEnc frozen
  (paper: 640 x 640, batch 32, 60k steps).
* Stage 3 (:func:`run_stage3`): :class:`.stage3.Stage3Module` on :class:`.video_data.Stage3Clips` -- the
  motion modules and M2PEnc jointly on 24-frame clips, ``0.5 L_pix + 0.5 L_guid`` (batch 8, 20k steps).

Both read an SDGPip build with video (``m2pdance-train sdgpip --source aist --video``) and Champ's
files through the one Champ loader (:func:`~..m2penc.champ.models.load_champ_files`). The run folder
holds ``champ/`` (the trained U-Nets as self-describing safetensors: point the Champ loader's
``denoising_unet`` at ``champ/denoising_unet.safetensors``), for stage 3 also ``m2penc.safetensors``,
plus checkpoints, ``metrics.jsonl``, ``tensorboard/`` and the resolved config. Every sample's noise,
timestep and dropout come from its own seed (:func:`.datasets.sample_seed`), so N processes train
what one process trains on the same global batch.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..m2penc.champ.models import ChampModels, load_champ_files, load_guidance_encoders, save_champ_models
from ..m2penc.checkpoint import atomic_write
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.encoder.weights import load_m2penc, save_m2penc
from ..m2penc.errors import InputError
from ..m2penc.progress import NO_CONTROL, RunControl
from .config import RunConfig
from .datasets import SeededItems, StepBatchSampler
from .guidance_targets import GuidanceTargets
from .stage1 import CHECKPOINTS, METRICS_FILE, TENSORBOARD, MetricsLog, checkpoint_to_resume
from .stage2 import CHAMP_COND_DROP, Stage2Module
from .stage3 import Stage3Module
from .trainer import Batch, Callback, Trainer, TrainerConfig
from .video_data import Stage2Pairs, Stage3Clips

LOG = logging.getLogger("m2pdance.training")
CHAMP_DIR = "champ"
M2PENC_FILE = "m2penc.safetensors"


@dataclass(frozen=True)
class ChampStageConfig(RunConfig):
    """What stages 2 and 3 share on top of :class:`.config.RunConfig`.

    Attributes:
        champ: Champ's ``denoising_unet`` file (or its folder, with ``reference_unet`` and for
            Champ's release ``motion_module``), as the Champ loader takes it.
        vae, image_encoder: the SD VAE and the CLIP image encoder (files or folders).
        m2penc: the stage-1 M2PEnc weights (stage 3: the starting point).
        cond_drop: share of samples trained without reference / CLIP condition (Champ: 0.1).
        noise_offset, snr_gamma: Champ's offset noise (0.05) and min-SNR weighting (5.0); off by
            default (the paper's plain MSE).
    """

    champ: Optional[str] = None
    vae: Optional[str] = None
    image_encoder: Optional[str] = None
    m2penc: Optional[str] = None
    cond_drop: float = CHAMP_COND_DROP
    noise_offset: float = 0.0
    snr_gamma: Optional[float] = None

    PATH_FIELDS: ClassVar[tuple[str, ...]] = RunConfig.PATH_FIELDS + ("champ", "vae", "image_encoder", "m2penc")
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = RunConfig.NON_NEGATIVE + ("cond_drop", "noise_offset")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cond_drop > 1:
            raise InputError(f"cond_drop is a probability in [0, 1], got {self.cond_drop}")

    def required_files(self) -> dict[str, Optional[str]]:
        """The files the stage loads, by setting name."""
        return {"champ": self.champ, "vae": self.vae, "image_encoder": self.image_encoder, "m2penc": self.m2penc,
                "data_dir": self.data_dir}


_TINY_RUN = {"batch_size": 2, "lr": 1e-4, "steps": 4, "epochs": None, "checkpoint_every": 2, "log_every": 1,
             "device": "cpu", "keep_checkpoints": 0}


@dataclass(frozen=True)
class Stage2Config(ChampStageConfig):
    """Stage 2: :class:`ChampStageConfig` plus the music window around each target frame.

    Attributes:
        window_frames: frames of the feature window M2PEnc reads for a target frame (its own window, 75).
        min_gap: least distance in frames between a pair's reference and target.
    """

    output_dir: str = "runs/stage2"
    window_frames: int = 75
    min_gap: int = 1

    STAGE: ClassVar[str] = "stage-2"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 32, "steps": 60000, "lr": 1e-5, "mixed_precision": "bf16",
                  "gradient_checkpointing": True},
        "tiny": {**_TINY_RUN, "window_frames": 8},
    }


@dataclass(frozen=True)
class Stage3Config(ChampStageConfig):
    """Stage 3: :class:`ChampStageConfig` plus the clip length, the loss weights and the target encoders.

    Attributes:
        num_frames: frames per training clip (paper: 24).
        pix_weight, guid_weight: ``pix_weight * L_pix + guid_weight * L_guid`` (paper: 0.5, 0.5).
        guidance_encoders: Champ's ``guidance_encoder_*`` folder, for builds that store maps.
    """

    output_dir: str = "runs/stage3"
    num_frames: int = 24
    pix_weight: float = 0.5
    guid_weight: float = 0.5
    guidance_encoders: Optional[str] = None

    STAGE: ClassVar[str] = "stage-3"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 8, "steps": 20000, "lr": 1e-5, "mixed_precision": "bf16",
                  "gradient_checkpointing": True},
        "tiny": {**_TINY_RUN, "num_frames": 4},
    }
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ChampStageConfig.PATH_FIELDS + ("guidance_encoders",)
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ChampStageConfig.NON_NEGATIVE + ("pix_weight", "guid_weight")


@dataclass(frozen=True)
class StageResult:
    """What a finished stage-2/3 run produced: its exported files, steps and first/last loss."""

    outputs: tuple[Path, ...]
    steps: int
    first_loss: Optional[float]
    final_loss: Optional[float]
    output_dir: Path


def _check_files(config: ChampStageConfig, stage: str) -> None:
    missing = [name for name, value in config.required_files().items() if not value]
    if missing:
        flags = {"data_dir": "data", "image_encoder": "image-encoder"}
        raise InputError(f"{stage} needs {', '.join('--' + flags.get(m, m) for m in missing)}: Champ's "
                         "denoising_unet (its folder holds reference_unet), the VAE and CLIP image encoder, the "
                         "stage-1 M2PEnc weights and an SDGPip build with --video")
    for name, value in config.required_files().items():
        if not Path(value).exists():
            raise InputError(f"{stage}: {name} {value} does not exist")


def _batches(dataset: Dataset, config: RunConfig, total: int, rank: int, world: int) -> Callable[[int], Iterator]:
    """Per step, this process's micro-batches, each sample with its own draw seed."""
    items = SeededItems(dataset)

    def batches(start_step: int) -> Iterator[list[Batch]]:
        sampler = StepBatchSampler(dataset, config.batch_size, config.seed, "random", start_step, total, rank,
                                   world, config.grad_accumulation, with_seeds=True)
        loader = iter(DataLoader(items, batch_sampler=sampler, num_workers=config.num_workers,
                                 generator=torch.Generator().manual_seed(config.seed)))
        while group := list(islice(loader, config.grad_accumulation)):
            yield group
    return batches


def _engine(config: RunConfig, total: int, out: Path, find_unused: bool) -> TrainerConfig:
    return TrainerConfig(
        max_steps=total, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas,
        grad_clip=config.grad_clip, checkpoint_every=config.checkpoint_every, keep_checkpoints=config.keep_checkpoints,
        seed=config.seed, device=config.device, mixed_precision=config.mixed_precision,
        grad_accumulation=config.grad_accumulation, lr_schedule=config.lr_schedule,
        lr_warmup_steps=config.lr_warmup_steps, optimizer=config.optimizer, ema_decay=config.ema_decay,
        log_dir=str(out / TENSORBOARD) if config.tensorboard else None, find_unused_parameters=find_unused)


def _run(config: ChampStageConfig, stage: str, module: nn.Module, dataset: Dataset,
         export: Callable[[nn.Module, Path, dict[str, str]], list[Path]], control: RunControl,
         callbacks: Optional[Mapping[str, list[Callback]]], targets: Optional[GuidanceTargets] = None) -> StageResult:
    from accelerate import PartialState

    if len(dataset) < 1:
        raise InputError(f"{config.data_dir} gives no {stage} training items")
    total = config.total_steps(max(1, math.ceil(len(dataset) / config.batch_size)))
    out = Path(config.output_dir)
    resume = checkpoint_to_resume(config, out)
    state = PartialState(cpu=config.device == "cpu" or not torch.cuda.is_available())
    main = state.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
        text = config.to_json().encode()
        atomic_write(out / f"{stage}_config.json", lambda p: Path(p).write_bytes(text))
    extra = {"stage": stage, "config": config.to_dict()}
    batches = _batches(dataset, config, total, state.process_index, state.num_processes)
    engine = _engine(config, total, out, find_unused=stage == "stage2")
    trainer = Trainer(module, lambda model, batch: model(batch), batches, engine, checkpoint_dir=out / CHECKPOINTS,
                      control=control, extra_state=extra)
    if targets is not None:
        targets.to(trainer.device)
    if resume is not None:
        LOG.info("resumed from %s at step %d", trainer.resume(resume), trainer.step)
    log = MetricsLog(out / METRICS_FILE, config.log_every, total, trainer.step) if main else None
    if log is not None:
        trainer.add_callback("on_step_end", log)
    for event, functions in (callbacks or {}).items():
        for function in functions:
            trainer.add_callback(event, function)
    LOG.info("%s: %d items, %d steps of global batch %d on %d process(es), %s, mixed precision %s", stage,
             len(dataset), total, config.batch_size, state.num_processes, trainer.device, config.mixed_precision)
    trainer.run()
    outputs: list[Path] = []
    if main:
        if config.ema_decay > 0:
            trainer.unwrapped.load_state_dict(trainer.ema_state_dict())
        provenance = {"m2pdance.training": json.dumps({"stage": stage, "steps": trainer.step,
                                                       "ema_decay": config.ema_decay, "config": config.to_dict()},
                                                      sort_keys=True)}
        outputs = export(trainer.unwrapped, out, provenance)
        LOG.info("wrote %s", ", ".join(str(p) for p in outputs))
    trainer.accelerator.wait_for_everyone()
    return StageResult(outputs=tuple(outputs), steps=trainer.step, first_loss=log.first_loss if log else None,
                       final_loss=log.final_loss if log else None, output_dir=out)


def _load(config: ChampStageConfig, stage: str):
    _check_files(config, stage)
    champ = load_champ_files(config.champ, config.vae, config.image_encoder, device="cpu", dtype=torch.float32)
    m2penc = load_m2penc(config.m2penc, device="cpu", dtype="fp32")
    if config.gradient_checkpointing:
        enable_checkpointing(champ, m2penc)
    return champ, m2penc


def enable_checkpointing(champ: ChampModels, m2penc: M2PEnc) -> None:
    """Recompute the denoising U-Net's blocks (diffusers' switch) and M2PEnc's in the backward pass.

    The ReferenceNet is left alone: it runs once per batch at timestep 0 and writes the reference
    bank as a side effect, which a recomputation would write again.
    """
    champ.denoising_unet.enable_gradient_checkpointing()
    m2penc.gradient_checkpointing = True


def run_stage2(config: Stage2Config, control: RunControl = NO_CONTROL,
               callbacks: Optional[Mapping[str, list[Callback]]] = None) -> StageResult:
    """Train stage 2 as ``config`` says; writes ``champ/{reference_unet,denoising_unet}.safetensors``."""
    champ, m2penc = _load(config, "stage2")
    dataset = Stage2Pairs(config.data_dir, config.window_frames, config.seed, min_gap=config.min_gap,
                          model=m2penc.config, splits=config.data_splits, sources=config.data_sources)
    torch.manual_seed(config.seed)
    module = Stage2Module(champ, m2penc, cond_drop=config.cond_drop, noise_offset=config.noise_offset,
                          snr_gamma=config.snr_gamma)

    def export(trained: nn.Module, out: Path, provenance: dict[str, str]) -> list[Path]:
        return save_champ_models(champ, out / CHAMP_DIR, ("reference_unet", "denoising_unet"), provenance)

    return _run(config, "stage2", module, dataset, export, control, callbacks)


def run_stage3(config: Stage3Config, control: RunControl = NO_CONTROL,
               callbacks: Optional[Mapping[str, list[Callback]]] = None) -> StageResult:
    """Train stage 3 as ``config`` says; writes ``m2penc.safetensors`` and ``champ/`` (U-Nets with the new motion)."""
    champ, m2penc = _load(config, "stage3")
    dataset = Stage3Clips(config.data_dir, config.num_frames, config.seed, model=m2penc.config,
                          splits=config.data_splits, sources=config.data_sources)
    targets = None
    if dataset.needs_encoders:
        if not config.guidance_encoders:
            raise InputError(f"{config.data_dir} stores guidance maps: pass --guidance-encoders FOLDER (Champ's "
                             "guidance_encoder_* files) to make the L_guid targets")
        targets = GuidanceTargets(load_guidance_encoders(config.guidance_encoders))
    torch.manual_seed(config.seed)
    module = Stage3Module(champ, m2penc, targets, pix_weight=config.pix_weight, guid_weight=config.guid_weight,
                          cond_drop=config.cond_drop, noise_offset=config.noise_offset, snr_gamma=config.snr_gamma)

    def export(trained: nn.Module, out: Path, provenance: dict[str, str]) -> list[Path]:
        files = save_champ_models(champ, out / CHAMP_DIR, ("reference_unet", "denoising_unet"), provenance)
        return files + [save_m2penc(m2penc, out / M2PENC_FILE, provenance=provenance)]

    return _run(config, "stage3", module, dataset, export, control, callbacks, targets)
