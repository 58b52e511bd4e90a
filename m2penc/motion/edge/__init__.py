"""EDGE (Tseng et al., CVPR 2023), the music-to-dance motion teacher, re-implemented from its code.

EDGE denoises 5-s windows (150 frames at 30 fps) of 151-d SMPL motion conditioned on music,
with a FiLM transformer that predicts clean motion and a 50-step stochastic DDIM sampler; long
dances are sampled as half-overlapping windows joined by in-painting. The facts this package
follows are in ``../shared/spec/edge/REPORT.md``; the released checkpoint loads under its own
key names.

* :mod:`.config` - :class:`EDGEConfig` (presets ``jukebox``, ``baseline``, ``tiny``).
* :mod:`.model` - :class:`DanceDecoder`, the denoiser (and :mod:`.layers`, :mod:`.rotary`).
* :mod:`.diffusion` - the cosine schedule, :func:`ddim_sample` and :func:`long_ddim_sample`.
* :mod:`.checkpoint` - EDGE's ``checkpoint.pt`` read without running code, our safetensors, :func:`load_edge`.
* :mod:`.normalizer`, :mod:`.representation` - the 151-d motion frame <-> :class:`..SMPLMotion`, stitching.
* :mod:`.generate` - per-window music features -> a stitched SMPL dance.
"""
from __future__ import annotations

from .config import FEATURE_DIMS, MOTION_FEATURES, EDGEConfig
from .diffusion import (DEFAULT_GUIDANCE, DEFAULT_STEPS, NUM_TIMESTEPS, cosine_alphas_cumprod, ddim_sample,
                        ddim_timesteps, guidance_ramp, long_ddim_sample)
from .checkpoint import EDGEModelBundle, convert_edge_checkpoint, load_edge, read_edge_checkpoint, save_edge
from .generate import edge_motion, edge_motion_from_windows
from .model import DanceDecoder
from .rotary import RotaryEmbedding

__all__ = [
    "DEFAULT_GUIDANCE", "DEFAULT_STEPS", "FEATURE_DIMS", "MOTION_FEATURES", "NUM_TIMESTEPS", "DanceDecoder",
    "EDGEConfig", "RotaryEmbedding", "cosine_alphas_cumprod", "ddim_sample", "ddim_timesteps", "guidance_ramp",
    "long_ddim_sample", "EDGEModelBundle", "convert_edge_checkpoint", "load_edge", "read_edge_checkpoint",
    "save_edge", "edge_motion", "edge_motion_from_windows",
]
