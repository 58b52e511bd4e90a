"""Stages 2 and 3 of the paper (sec. 3.4, 4.1) on the engine: configs, runs, exported weights.

* Stage 2 (:func:`run_stage2`): :class:`.stage2.Stage2Module` on :class:`.video_data.Stage2Pairs` -- the
  spatial denoising U-Net and the ReferenceNet from Champ's weights, per frame, M2PEnc frozen
  (paper: 640 x 640, batch 32, 60k steps). With ``guidance = "maps"`` it is Champ's own image stage
  instead: guided by the rendered maps through Champ's guidance encoders, trained with the U-Nets
  (where no trained Champ exists, e.g. the demo recipe's sizes); ``champ/`` then also holds the encoders.
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

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional

import torch
from torch.utils.data import Dataset

from ..m2penc.champ.config import GUIDANCE_TYPES
from ..m2penc.champ.models import ChampModels, load_champ_files, load_guidance_encoders, save_champ_models
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.encoder.weights import load_m2penc, save_m2penc
from ..m2penc.errors import InputError
from ..m2penc.progress import NO_CONTROL, RunControl
from .config import RunConfig
from .guidance_targets import GuidanceTargets
from .run import ExportFn, RunResult, run_on_engine, step_batches, sub_state_dict
from .previews import ChampPreviews
from .champ_module import CHAMP_COND_DROP, ChampStageModule
from .stage2 import Stage2Module
from .stage3 import Stage3Module
from .trainer import Callback
from .video_data import Stage2Pairs, Stage3Clips

LOG = logging.getLogger("m2pdance.training")
CHAMP_DIR = "champ"
#: The U-Nets stages 2 and 3 export (attribute names of the stage module = Champ's file stems).
UNETS = ("reference_unet", "denoising_unet")
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


#: What guides stage 2's U-Net (:attr:`Stage2Config.guidance`).
STAGE2_GUIDANCE = ("m2penc", "maps")
_TINY_RUN = {"batch_size": 2, "lr": 1e-4, "steps": 4, "epochs": None, "checkpoint_every": 2, "log_every": 1,
             "device": "cpu", "keep_checkpoints": 0}


@dataclass(frozen=True)
class Stage2Config(ChampStageConfig):
    """Stage 2: :class:`ChampStageConfig` plus the music window around each target frame.

    Attributes:
        window_frames: frames of the feature window M2PEnc reads for a target frame (its own window, 75).
        min_gap: least distance in frames between a pair's reference and target.
        guidance: what guides the U-Net: ``m2penc`` (the paper's stage 2: frozen M2PEnc on the music) or ``maps``
            (Champ's image stage: the target's rendered maps through Champ's guidance encoders, trained too; no
            M2PEnc; the build must store maps).
        guidance_encoders: ``maps`` only: the folder of the starting ``guidance_encoder_*`` files (default: the
            ones beside ``champ``'s denoising U-Net).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.guidance not in STAGE2_GUIDANCE:
            raise InputError(f"guidance must be one of {STAGE2_GUIDANCE}, got {self.guidance!r}")
        if self.guidance == "maps" and self.tensorboard and self.preview_every > 0:
            raise InputError("previews of Champ's image stage (guidance = \"maps\") are not implemented; "
                             "set preview_every = 0")

    def required_files(self) -> dict[str, Optional[str]]:
        """The files the stage loads: no M2PEnc in Champ's image stage."""
        files = super().required_files()
        if self.guidance == "maps":
            files.pop("m2penc")
            if self.guidance_encoders:
                files["guidance_encoders"] = self.guidance_encoders
        return files

    output_dir: str = "runs/stage2"
    window_frames: int = 75
    min_gap: int = 1
    guidance: str = "m2penc"
    guidance_encoders: Optional[str] = None

    STAGE: ClassVar[str] = "stage-2"
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ChampStageConfig.PATH_FIELDS + ("guidance_encoders",)
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


def _run(config: ChampStageConfig, stage: str, module: ChampStageModule, dataset: Dataset, export: ExportFn,
         exported: tuple[str, ...], control: RunControl, callbacks: Optional[Mapping[str, list[Callback]]],
         targets: Optional[GuidanceTargets] = None) -> RunResult:
    if len(dataset) < 1:
        raise InputError(f"{config.data_dir} gives no {stage} training items")
    total = config.total_steps(max(1, math.ceil(len(dataset) / config.batch_size)))
    every_process = {event: list(functions) for event, functions in (callbacks or {}).items()}
    if config.tensorboard and config.preview_every > 0:
        previews = ChampPreviews(dataset[0], config.preview_every, Path(config.output_dir),
                                 module.m2penc.config.fps, motion_modules=stage == "stage3")
        every_process.setdefault("on_step_end", []).append(previews)
    return run_on_engine(
        config, stage, module, lambda model, batch: model(batch),
        lambda rank, world: step_batches(dataset, config, total, rank, world, with_seeds=True), export,
        num_items=len(dataset), total_steps=total, export_prefixes=tuple(f"{name}." for name in exported),
        targets=targets,
        control=control, callbacks=every_process)


def _load(config: ChampStageConfig, stage: str, with_m2penc: bool = True):
    _check_files(config, stage)
    champ = load_champ_files(config.champ, config.vae, config.image_encoder, device="cpu", dtype=torch.float32)
    m2penc = load_m2penc(config.m2penc, device="cpu", dtype="fp32") if with_m2penc else None
    if config.gradient_checkpointing:
        enable_checkpointing(champ, m2penc)
    return champ, m2penc


def enable_checkpointing(champ: ChampModels, m2penc: Optional[M2PEnc]) -> None:
    """Recompute activations in the backward pass: both U-Nets' blocks (diffusers' switch), the motion
    modules (:meth:`~..m2penc.champ.denoising_unet.DenoisingUNet3D.enable_motion_checkpointing`) and M2PEnc's blocks.

    The ReferenceNet's attention writes the reference bank as a side effect; the writer is closed
    after the pass, so a recomputation in the backward pass leaves the bank the denoiser read alone.
    """
    champ.denoising_unet.enable_gradient_checkpointing()
    champ.denoising_unet.enable_motion_checkpointing()
    champ.reference_unet.enable_gradient_checkpointing()
    if m2penc is not None:
        m2penc.gradient_checkpointing = True


def run_stage2(config: Stage2Config, control: RunControl = NO_CONTROL,
               callbacks: Optional[Mapping[str, list[Callback]]] = None) -> RunResult:
    """Train stage 2 as ``config`` says; writes ``champ/{reference_unet,denoising_unet}.safetensors`` (Champ's image
    stage: also ``champ/guidance_encoder_<type>.safetensors``)."""
    image_stage = config.guidance == "maps"
    champ, m2penc = _load(config, "stage2", with_m2penc=not image_stage)
    encoders = None
    if image_stage:
        encoders = (load_guidance_encoders(config.guidance_encoders) if config.guidance_encoders
                    else champ.guidance_encoders)
        missing = [t for t in GUIDANCE_TYPES if t not in encoders]
        if missing:
            where = config.guidance_encoders or config.champ
            raise InputError(f"Champ's image stage trains the four guidance encoders; {where} lacks "
                             f"guidance_encoder_{missing[0]} (pass guidance_encoders / --set guidance_encoders=FOLDER)")
        champ.guidance_encoders = dict(encoders)
    dataset = Stage2Pairs(config.data_dir, config.window_frames, config.seed, min_gap=config.min_gap,
                          model=None if m2penc is None else m2penc.config, splits=config.data_splits,
                          sources=config.data_sources, maps=image_stage)
    torch.manual_seed(config.seed)
    module = Stage2Module(champ, m2penc, cond_drop=config.cond_drop, noise_offset=config.noise_offset,
                          snr_gamma=config.snr_gamma, guidance_encoders=encoders)
    stems = {stem: stem for stem in UNETS}
    if image_stage:
        stems.update({f"guidance_encoder_{t}": f"guidance_encoders.{t}" for t in GUIDANCE_TYPES})

    def export(state: dict[str, torch.Tensor], out: Path, provenance: dict[str, str]) -> list[Path]:
        return save_champ_models(champ, out / CHAMP_DIR, list(stems), provenance,
                                 {stem: sub_state_dict(state, prefix) for stem, prefix in stems.items()})

    return _run(config, "stage2", module, dataset, export, tuple(stems.values()), control, callbacks)


def run_stage3(config: Stage3Config, control: RunControl = NO_CONTROL,
               callbacks: Optional[Mapping[str, list[Callback]]] = None) -> RunResult:
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

    def export(state: dict[str, torch.Tensor], out: Path, provenance: dict[str, str]) -> list[Path]:
        files = save_champ_models(champ, out / CHAMP_DIR, UNETS, provenance,
                                  {stem: sub_state_dict(state, stem) for stem in UNETS})
        return files + [save_m2penc(m2penc, out / M2PENC_FILE, provenance, sub_state_dict(state, "m2penc"))]

    return _run(config, "stage3", module, dataset, export, (*UNETS, "m2penc"), control, callbacks, targets)
