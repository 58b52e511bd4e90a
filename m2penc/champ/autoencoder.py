"""The SD VAE (``AutoencoderKL``; sd-vae-ft-mse at full size): construction and loading.

Accepted weights: a diffusers folder (``config.json`` + ``diffusion_pytorch_model.*``), a single
diffusers-format file (legacy ``query/key/value/proj_attn`` attention names are converted by
diffusers' own fixer), or an original LDM/A1111 single file (``encoder.down.*``, optionally
under ``first_stage_model.``), converted with diffusers' ``convert_ldm_vae_checkpoint``.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

from ..checkpoint import PathLike
from .config import VAEConfig
from .loading import build_on_meta, find_weights, finish_loading, folder_config, read_weights


def build_vae(config: VAEConfig) -> AutoencoderKL:
    """A randomly initialised VAE on the current default device."""
    vae = AutoencoderKL(**config.diffusers_kwargs())
    vae.m2p_config = config
    return vae


def vae_config_from_folder(path: PathLike) -> Optional[VAEConfig]:
    """Read a diffusers ``config.json`` into a :class:`VAEConfig`, if present."""
    raw = folder_config(path)
    if not raw:
        return None
    fields = ("block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups", "scaling_factor",
              "mid_block_add_attention")
    return VAEConfig.from_dict({k: raw[k] for k in fields if k in raw})


def _is_ldm(state_dict: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(("first_stage_model.", "vae.", "encoder.down.")) for k in state_dict)


def load_vae(path: PathLike, config: Optional[VAEConfig] = None,
             device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32) -> AutoencoderKL:
    """Load a VAE from a folder or single file (see module docstring); strict, meta-built."""
    config = config or vae_config_from_folder(path) or VAEConfig.preset("sd15")
    file = find_weights(path)
    vae = build_on_meta(lambda: build_vae(config))
    state_dict = read_weights(file)
    if _is_ldm(state_dict):
        state_dict = convert_ldm_vae_checkpoint(state_dict, dict(vae.config))
    state_dict = vae._fix_state_dict_keys_on_load(dict(state_dict))
    return finish_loading(vae, state_dict, str(file), device, dtype)
