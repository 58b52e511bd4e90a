"""TensorBoard previews of what a stage is learning, on one fixed training item, every ``preview_every`` steps.

* :class:`Stage1Previews`: M2PEnc's heatmaps and guidance next to their targets.
* :class:`ChampPreviews` (stages 2 and 3): a short video sampled with the current weights (Champ's
  DDIM sampler, few steps) from the item's reference frame and M2PEnc's guidance for its music,
  shown as a film strip (``preview/video``: generated frames on top, the real frames below) and
  written as ``previews/step_XXXXXXXX.mp4`` in the run folder. Stage 2 samples every frame on its
  own (the per-frame U-Net it trains), stage 3 the clip with the motion modules.

Previews run on the main process with unsharded weights; under ``sharding = "fsdp"`` the
weights are shards, so previews are skipped (with one log line) rather than gathered mid-run.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

import torch

from ..m2penc.champ.decode import decode_latents
from ..m2penc.champ.reference import encode_clip_image, encode_image_latents, reference_state_from_latents
from ..m2penc.champ.sampler import CHAMP_GUIDANCE_SCALE, sample_video
from ..m2penc.video.writer import open_video_writer
from .guidance_targets import GuidanceTargets
from .trainer import Batch, Trainer, step_dir_name

if TYPE_CHECKING:
    from .champ_module import ChampStageModule

LOG = logging.getLogger("m2pdance.training")
PREVIEW_DIR = "previews"


class Stage1Previews:
    """TensorBoard images every ``every`` steps: M2PEnc's prediction next to its target on one fixed window.

    ``preview/heatmaps``: max over keypoints; ``preview/guidance``: mean |guidance| over channels,
    each frame normalised to [0, 1]; top row predicted, bottom row target, frames left to right
    (at most 8).
    """

    FRAMES = 8

    def __init__(self, item: Mapping[str, torch.Tensor], targets: Optional[GuidanceTargets], every: int) -> None:
        self.item, self.targets, self.every = dict(item), targets, every

    @torch.no_grad()
    def __call__(self, trainer: Trainer) -> None:
        """At a due step: M2PEnc's output on the item (every process when sharded), images on the main one."""
        if not preview_due(trainer, self.every):
            return
        if not (trainer.sharded or trainer.accelerator.is_main_process):
            return                                   # a sharded forward needs every process; else the main one
        model = trainer.unwrapped
        was_training = model.training
        model.eval()
        try:
            batch = {k: v[None].to(trainer.device) for k, v in self.item.items()}
            output = model(batch["features"])
        finally:
            model.train(was_training)
        if trainer.writer is None:
            return
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


class ChampPreviews:
    """Stage 2/3 previews: a short video sampled with the current weights on one fixed item.

    Args:
        item: a stage-3 item (``reference``, ``frames``, ``features``: its clip is sampled) or a stage-2
            item (``reference``, ``target``, ``features``, ``frame``: the consecutive frames of its music
            window around the target are sampled; the real row shows the target in its column).
        every: steps between previews (0 = none).
        output_dir: the run folder (videos go to ``previews/``).
        fps: frame rate of the written video (the data's).
        motion_modules: sample with the motion modules (stage 3) or frame by frame (stage 2).
        num_steps: DDIM steps (few: a preview, not a result); guidance_scale: CFG (Champ's).
        max_frames: frames in a preview.

    A preview that fails (out of memory at full size, a full disk) is logged and skipped: it never
    stops the training run (under DDP the other processes would wait for this one forever).
    """

    def __init__(self, item: Mapping[str, torch.Tensor], every: int, output_dir: Path, fps: float,
                 motion_modules: bool, num_steps: int = 10, guidance_scale: float = CHAMP_GUIDANCE_SCALE,
                 max_frames: int = 8) -> None:
        self.item, self.every, self.output_dir, self.fps = dict(item), every, Path(output_dir), fps
        self.motion_modules, self.num_steps, self.guidance_scale = motion_modules, num_steps, guidance_scale
        self.max_frames = max_frames
        self._warned = False

    def _due(self, trainer: Trainer) -> bool:
        if not preview_due(trainer, self.every):
            return False
        if trainer.sharded:
            if not self._warned and trainer.accelerator.is_main_process:
                LOG.info("video previews are off under sharding 'fsdp' (they would gather the U-Nets mid-run)")
            self._warned = True
            return False
        return trainer.accelerator.is_main_process

    @torch.no_grad()
    def __call__(self, trainer: Trainer) -> None:
        """At a due step, on the main process: sample, log the film strip, write the mp4; never raises."""
        if not self._due(trainer):
            return
        try:
            self._preview(trainer)
        except Exception as e:                     # noqa: BLE001 - a preview must not end the run
            LOG.warning("preview at step %d skipped: %s: %s", trainer.step, type(e).__name__, e)

    def _preview(self, trainer: Trainer) -> None:
        module: "ChampStageModule" = trainer.unwrapped
        was_training = module.training
        module.eval()
        try:
            generated, real = self.sample(module, trainer.device)
        finally:
            module.train(was_training)
        strip = torch.cat([torch.cat(list(generated), dim=1), torch.cat(list(real), dim=1)], dim=0)  # (2H, nW, 3)
        if trainer.writer is not None:
            trainer.writer.add_image("preview/video", strip, trainer.step, dataformats="HWC")
            trainer.writer.add_image("preview/reference", self.item["reference"].float(), trainer.step)
        folder = self.output_dir / PREVIEW_DIR
        folder.mkdir(parents=True, exist_ok=True)
        writer = open_video_writer(folder / f"{step_dir_name(trainer.step)}.mp4", self.fps)
        try:
            writer.write(generated)
        except BaseException:
            writer.abort()
            raise
        writer.close()

    def sample(self, module: "ChampStageModule", device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(generated, real)`` frames ``(n, H, W, 3)`` in [0, 1] on the CPU, column for column (real: the clip's
        frames; for a stage-2 item, which holds one real frame, the target in its column and black elsewhere)."""
        item: Batch = {k: v[None].to(device) for k, v in self.item.items()}
        reference = item["reference"].float()                                      # (1, 3, H, W)
        height, width = reference.shape[-2:]
        guidance = module.m2penc(module.m2penc_features(item)).guidance              # (1, C, L, G, G)
        length = guidance.shape[2]
        n = min(self.max_frames, length)
        first = 0
        if "target" in item:                      # consecutive frames around the target, inside the window
            first = min(max(0, int(item["frame"]) - n // 2), length - n)
        guidance_fea = module.guidance_fea(guidance[:, :, first:first + n], height, width)  # (1, C0, n, h, w)
        champ = module.champ
        state = reference_state_from_latents(champ, encode_image_latents(champ, reference),
                                             encode_clip_image(champ, reference), torch.float32)
        generator = torch.Generator(device).manual_seed(0)
        latents = sample_video(champ, state, guidance_fea, self.num_steps, self.guidance_scale, generator,
                               context_size=n, context_overlap=0, motion_modules=self.motion_modules)
        generated = decode_latents(champ.vae, latents).clamp(0, 1)                 # (n, H, W, 3)
        if "frames" in item:
            real = item["frames"][0, :n].permute(0, 2, 3, 1).float().cpu()
        else:
            real = torch.zeros_like(generated)
            real[int(item["frame"]) - first] = item["target"][0].permute(1, 2, 0).float().cpu()
        return generated, real


def preview_due(trainer: Trainer, every: int) -> bool:
    """Whether a preview is due at the trainer's step (TensorBoard on, every ``every`` > 0 steps)."""
    return every > 0 and trainer.step % every == 0 and trainer.config.log_dir is not None
