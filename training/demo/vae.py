"""The demo recipe's small VAE: diffusers' ``AutoencoderKL`` trained on the synthetic video frames.

SD-1.5's VAE (84 M parameters, 335 MB) is far too large to ship or run in the CPU demo, so the demo
trains a small one of the same architecture (:class:`~..m2penc.champ.config.VAEConfig`: 8x
downsampling, 4 latent channels) on the frames of its SDGPip build. Everything downstream (Champ's
U-Nets, the sampler, the ComfyUI loaders) takes it as it takes SD's: a self-describing safetensors
file whose config carries the ``scaling_factor``.

Loss per image (``x`` in [-1, 1], posterior ``q(z | x) = N(mu, sigma^2)``, ``z`` one draw):
``|D(z) - x|_1 + w_kl * KL(q || N(0, 1))``, both as means over elements (``w_kl`` 1e-6: the KL only
keeps the latents bounded; a larger weight keeps the posterior noise high and the reconstructions
blurred). SD's VAE adds LPIPS and a patch GAN; on flat-shaded figures an L1 reconstruction is sharp enough, and neither network is
available offline. The ``scaling_factor`` is SD's rule: ``1 / std`` of the latent means over the
data (:func:`latent_scale`), so the diffusion model sees unit-variance latents as SD's does.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional

import torch
from torch import nn
from diffusers import AutoencoderKL

from ...m2penc.champ.autoencoder import build_vae
from ...m2penc.champ.config import VAEConfig
from ...m2penc.checkpoint import save_model
from ...m2penc.errors import InputError
from ...m2penc.progress import NO_CONTROL, RunControl
from ..champ_module import unit_images
from ..config import RunConfig
from ..diffusion_loss import Draws
from ..run import RunResult, run_on_engine, step_batches, sub_state_dict
from ..video_data import Stage2Pairs

#: The exported file in the run folder.
VAE_FILE = "vae.safetensors"
#: Images whose latent means give the ``scaling_factor`` (:func:`latent_scale`).
SCALE_IMAGES = 256

#: ``m2pdance.kind`` of the file, as the Champ loader reads it (:func:`~..m2penc.champ.models._load_saved`).
VAE_KIND = "champ.vae"


class VAEStageModule(nn.Module):
    """Trains ``vae`` on random ``crop x crop`` crops of the batch's ``target`` and ``reference`` images.

    The demo VAE is convolutional (no middle attention), so it learns on crops what it does on whole
    frames, at a fraction of the cost (SD's VAE trains on 256-px crops). Crops start on the
    8-pixel grid, as the latents do. Not exactly the same: GroupNorm's statistics span the image, and a
    whole frame (the figure ~10 % of it) comes back with its background's tint shifted more than 64-px
    tiles of it do. Measured on the demo's data, whole frames at the same cost per step (batch 2) were far
    worse: the figure lost its colours.

    Batch: ``target`` (and optionally ``reference``) float ``(B, 3, H, W)`` in [0, 1]; ``seed``
    ``(B,)`` per-sample draw seeds (optional: else torch's global RNG). ``forward`` returns
    ``{"loss", "l1", "kl"}``.
    """

    def __init__(self, vae: AutoencoderKL, kl_weight: float = 1e-6, crop: Optional[int] = None) -> None:
        super().__init__()
        if crop is not None and (crop < 8 or crop % 8):
            raise InputError(f"crop must be a multiple of 8 pixels >= 8, got {crop}")
        self.vae = vae
        self.kl_weight = float(kl_weight)
        self.crop = crop

    def _crops(self, x: torch.Tensor, draws: Draws) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, 3, crop, crop)``, each at its own random 8-aligned offset."""
        b, _, h, w = x.shape
        if self.crop is None or (self.crop >= h and self.crop >= w):
            return x
        size = min(self.crop, h, w)
        top = draws.randint((h - size) // 8 + 1, b) * 8
        left = draws.randint((w - size) // 8 + 1, b) * 8
        return torch.stack([x[i, :, int(t):int(t) + size, int(l):int(l) + size]
                            for i, (t, l) in enumerate(zip(top.tolist(), left.tolist()))])

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images = [unit_images(batch, "target", 4)]
        if "reference" in batch:
            images.append(unit_images(batch, "reference", 4))
        seeds = batch.get("seed")
        draws = Draws(None if seeds is None else seeds.repeat(len(images)), images[0].device)
        x = self._crops(torch.cat(images), draws).to(self.vae.dtype) * 2.0 - 1.0  # (B', 3, c, c) in [-1, 1]
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * draws.randn(tuple(posterior.mean.shape)).to(x.dtype)
        recon = self.vae.decode(z).sample
        l1 = (recon.float() - x.float()).abs().mean()
        kl = 0.5 * (posterior.mean.float() ** 2 + posterior.var.float() - 1.0 - posterior.logvar.float()).mean()
        return {"loss": l1 + self.kl_weight * kl, "l1": l1.detach(), "kl": kl.detach()}


def build_demo_vae(config: VAEConfig, seed: int) -> AutoencoderKL:
    """A freshly initialised VAE of ``config``, seeded (the same weights in every process)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_vae(config)


@torch.no_grad()
def latent_scale(vae: AutoencoderKL, images: torch.Tensor, batch: int = 16) -> float:
    """SD's ``scaling_factor``: ``1 / std`` of the posterior means of ``images`` ``(N, 3, H, W)`` in [0, 1]."""
    vae = vae.eval()
    means = [vae.encode(images[i:i + batch].to(vae.dtype) * 2.0 - 1.0).latent_dist.mean.float()
             for i in range(0, images.shape[0], batch)]
    return float(1.0 / torch.cat(means).std().clamp(min=1e-6))


def save_demo_vae(vae: AutoencoderKL, config: VAEConfig, path: Path,
                  state_dict: Optional[Mapping[str, torch.Tensor]] = None,
                  provenance: Optional[Mapping[str, str]] = None) -> Path:
    """Write the VAE as a self-describing safetensors file the Champ loader reads (config with its scale)."""
    return save_model(path, dict(state_dict if state_dict is not None else vae.state_dict()), VAE_KIND,
                      config.to_json(), dict(provenance or {}))


@dataclass(frozen=True)
class VAEStageConfig(RunConfig):
    """The demo's VAE run: :class:`..config.RunConfig` plus the architecture and the KL weight.

    Attributes:
        model: :class:`~..m2penc.champ.config.VAEConfig` fields on top of its ``demo`` preset.
        kl_weight: ``w_kl`` of the loss (module docstring).
        crop: side of the random training crops (``None``: whole frames).
    """

    output_dir: str = "runs/vae"
    model: dict[str, Any] = field(default_factory=dict)
    kl_weight: float = 1e-6
    crop: Optional[int] = 64

    STAGE: ClassVar[str] = "vae"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "demo": {"batch_size": 8, "lr": 2e-3, "steps": 800, "epochs": None, "grad_clip": 1.0, "device": "cpu",
                 "checkpoint_every": 200, "keep_checkpoints": 1, "log_every": 50, "preview_every": 0,
                 "lr_schedule": "cosine", "lr_warmup_steps": 20},
    }
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = RunConfig.NON_NEGATIVE + ("kl_weight",)

    def vae_config(self) -> VAEConfig:
        """The architecture: the ``demo`` preset refined by ``model``."""
        return VAEConfig.preset("demo", **{k: tuple(v) if isinstance(v, list) else v for k, v in self.model.items()})


def run_vae_stage(config: VAEStageConfig, control: RunControl = NO_CONTROL) -> RunResult:
    """Train the VAE on the video frames of ``config.data_dir`` (an SDGPip build with video) and write
    ``output_dir/vae.safetensors`` with its ``scaling_factor`` measured on the data."""
    if config.data_dir is None:
        raise InputError("the VAE run needs data_dir: an SDGPip build with video frames")
    frames = Stage2Pairs(config.data_dir, window_frames=2, seed=config.seed, splits=config.data_splits,
                         sources=config.data_sources)
    vae_config = config.vae_config()
    vae = build_demo_vae(vae_config, config.seed)
    module = VAEStageModule(vae, config.kl_weight, config.crop)
    total = config.total_steps(max(1, len(frames) // config.batch_size))

    def export(state: dict[str, torch.Tensor], out: Path, provenance: dict[str, str]) -> list[Path]:
        weights = sub_state_dict(state, "vae")
        trained = build_demo_vae(vae_config, config.seed)
        trained.load_state_dict(weights)
        step = max(1, len(frames) // SCALE_IMAGES)
        images = torch.stack([frames[i]["target"] for i in list(range(0, len(frames), step))[:SCALE_IMAGES]])
        scaled = replace(vae_config, scaling_factor=latent_scale(trained, images))
        return [save_demo_vae(trained, scaled, out / VAE_FILE, weights, provenance)]

    return run_on_engine(config, "vae", module, lambda model, batch: model(batch),
                         lambda rank, world: step_batches(frames, config, total, rank, world, with_seeds=True),
                         export, num_items=len(frames), total_steps=total, export_prefixes=("vae",),
                         extra_state={"vae_config": vae_config.to_dict()}, control=control)
