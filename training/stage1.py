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

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Union

import torch
from einops import rearrange

from ..m2penc.encoder.config import M2PEncConfig
from ..m2penc.encoder.losses import guidance_loss, heatmap_loss
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.encoder.weights import save_m2penc
from ..m2penc.errors import InputError
from ..m2penc.progress import NO_CONTROL, RunControl
from .config import Stage1Config
from .datasets import Stage1Windows, steps_per_epoch
from .guidance_targets import GuidanceTargets
from .previews import Stage1Previews
from .run import run_on_engine, step_batches

if TYPE_CHECKING:
    from .sdgpip.windows import SDGPipWindows
from .trainer import Batch, Callback, LossFn, read_checkpoint_state

LOG = logging.getLogger("m2pdance.training")
#: Stage-1 windows: safetensors pairs or an SDGPip build (same indexing interface).
Stage1Data = Union[Stage1Windows, "SDGPipWindows"]
WEIGHTS_FILE = "m2penc.safetensors"
#: Windows (evenly spaced over the data) whose features measure an ``input_standardize`` model's statistics.
STATISTICS_WINDOWS = 512


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


def build_model(config: Stage1Config) -> M2PEnc:
    """A freshly initialised M2PEnc, seeded by ``config.seed`` (the same weights in every process)."""
    torch.manual_seed(config.seed)
    model = M2PEnc(config.model_config())
    model.gradient_checkpointing = config.gradient_checkpointing
    return model


def feature_statistics(dataset: "Stage1Data", windows: int = STATISTICS_WINDOWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and standard deviation ``(D,)`` float32 of the music features of up to ``windows``
    evenly spaced windows of ``dataset`` (read with its ``features(index) -> (L, D)``, nothing else; sums
    kept in float64); the same in every process."""
    count = len(dataset)
    if count < 1:
        raise InputError("the stage-1 data has no windows to measure the feature statistics on")
    picks = torch.linspace(0, count - 1, min(windows, count), dtype=torch.float64).round().long().unique()
    total = squares = torch.zeros((), dtype=torch.float64)
    rows = 0
    for index in picks.tolist():
        block = dataset.features(index).double().flatten(0, -2)            # (L, D)
        total, squares, rows = total + block.sum(0), squares + (block * block).sum(0), rows + block.shape[0]
    mean = total / rows
    variance = ((squares - rows * mean * mean) / max(rows - 1, 1)).clamp(min=0.0)
    return mean.float(), variance.sqrt().float()


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
    model_config = config.model_config()
    dataset = open_stage1_data(config, model_config)
    targets = guidance_targets(config, dataset, model_config)
    total = config.total_steps(steps_per_epoch(dataset, config.batch_size))
    model = build_model(config)
    if model_config.input_standardize:          # measured here, saved with the weights (a resume reloads them)
        model.set_input_statistics(*feature_statistics(dataset))
    every_process = {event: list(functions) for event, functions in (callbacks or {}).items()}
    if config.tensorboard and config.preview_every > 0:
        every_process.setdefault("on_step_end", []).append(Stage1Previews(dataset[0], targets, config.preview_every))

    def export(state: dict[str, torch.Tensor], out: Path, provenance: dict[str, str]) -> list[Path]:
        return [save_m2penc(model, out / WEIGHTS_FILE, provenance=provenance, state_dict=state)]

    result = run_on_engine(
        config, "stage1", model, stage1_loss_fn(config.guidance_weight, config.heatmap_weight, targets),
        lambda rank, world: step_batches(dataset, config, total, rank, world, config.window_sampling), export,
        num_items=len(dataset), total_steps=total, extra_state={"model_config": model_config.to_dict()},
        targets=targets, control=control, callbacks=every_process,
        check_resume=lambda checkpoint: _check_resume_model(checkpoint, model_config))
    return Stage1Result(weights_path=result.output_dir / WEIGHTS_FILE, steps=result.steps,
                        first_loss=result.first_loss, final_loss=result.final_loss, output_dir=result.output_dir)
