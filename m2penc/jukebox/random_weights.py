"""Seeded random weights and a ready tiny extractor, for tests and benchmarks.

Real Jukebox weights are 10 GB and never available in CI; a tiny random model with the same
topology exercises every code path. Initialisation uses a private generator (no global RNG
side effects) and draws each codebook from the encoder's outputs so tokens vary.
:func:`write_tiny_jukebox` writes such a model as self-describing files (:mod:`.self_describing`),
which then load through the same ``vqvae_path``/``prior_path`` as the real checkpoints.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .config import SAMPLE_RATE, JukeboxConfig
from .extractor import JukeboxFeatureExtractor
from .files import PRIOR_FILENAME, VQVAE_FILENAME, PathLike, safetensors_name
from .prior import TopLevelPrior
from .self_describing import save_jukebox_weights
from .vqvae import VQVAE


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0, std: float = 0.02) -> nn.Module:
    """Fill every float parameter/buffer in place: matrices ~ N(0, 1/fan_in), vectors ~ N(0, std),
    LayerNorm gains ~ 1 + N(0, std). Returns ``module``."""
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        noise = torch.randn(tensor.shape, generator=gen)
        if name.endswith("k"):  # VQ codebook: spread like unit-variance latents
            value = noise
        elif tensor.dim() >= 2:
            fan_in = tensor.shape[0] if name.endswith(".w") else math.prod(tensor.shape[1:])
            value = noise / math.sqrt(max(fan_in, 1))
        elif "ln_" in name and name.endswith("weight"):
            value = 1.0 + std * noise
        else:
            value = std * noise
        tensor.copy_(value.to(tensor.dtype))
    return module


@torch.no_grad()
def init_codebooks_from_data_(vqvae: VQVAE, seed: int = 0, seconds: float = 2.0) -> VQVAE:
    """Set each level's codebook to random encoder outputs of seeded noise (Jukebox's ``init_k``),
    so random-weight models still use many codes."""
    gen = torch.Generator().manual_seed(seed)
    audio = torch.rand(1, 1, int(SAMPLE_RATE * seconds), generator=gen) * 2 - 1
    for encoder, block in zip(vqvae.encoders, vqvae.bottleneck.level_blocks):
        latents = encoder(audio)[0].t()  # (T, emb)
        picks = torch.randint(0, len(latents), (block.k.shape[0],), generator=gen)
        block.k.copy_(latents[picks] + 1e-3 * torch.randn(block.k.shape, generator=gen))
    return vqvae


def tiny_models(layer: int, seed: int = 0, config: Optional[JukeboxConfig] = None) -> tuple[VQVAE, TopLevelPrior]:
    """Random tiny VQ-VAE and a prior with layers ``1..layer``."""
    config = config or JukeboxConfig.preset("tiny")
    vqvae = init_codebooks_from_data_(randomize_(VQVAE(config), seed), seed)
    prior = randomize_(TopLevelPrior(config, n_layers=layer, with_head=False), seed + 1)
    return vqvae, prior


def tiny_extractor(layer: int, seed: int = 0, device: Union[str, torch.device] = "cpu",
                   dtype: torch.dtype = torch.float32, config: Optional[JukeboxConfig] = None,
                   **extractor_options) -> JukeboxFeatureExtractor:
    """A :class:`JukeboxFeatureExtractor` over :func:`tiny_models`."""
    vqvae, prior = tiny_models(layer, seed, config)
    return JukeboxFeatureExtractor(vqvae, prior, device, dtype, **extractor_options)


def write_tiny_jukebox(folder: PathLike, seed: int = 0, config: Optional[JukeboxConfig] = None,
                       vqvae_name: Optional[str] = None, prior_name: Optional[str] = None) -> tuple[Path, Path]:
    """Write a random tiny VQ-VAE and full-depth prior into ``folder`` (config embedded); returns
    ``(vqvae_path, prior_path)``, which load like the real checkpoints with no ``config`` argument.

    Default names are ``vqvae.safetensors`` and ``prior_level_2.safetensors``, so the folder
    itself also works as both paths; those are also the names of converted real checkpoints, so
    give the files a folder of their own or distinct names (``vqvae_name``/``prior_name``).
    """
    config = config or JukeboxConfig.preset("tiny")
    vqvae, prior = tiny_models(config.prior_depth, seed, config)
    folder = Path(folder)
    return save_jukebox_weights(vqvae, prior, folder / (vqvae_name or safetensors_name(VQVAE_FILENAME)),
                                folder / (prior_name or safetensors_name(PRIOR_FILENAME)), config)
