"""Analytic compute cost of Jukebox feature extraction, per second of music.

Counts multiply-adds as 2 FLOPs. The prior's cost is dominated by its four projection matrices
(2 x 69 M FLOPs per token per layer for ``5b``); attention scores add the factored-attention
terms (row: block_ctx keys, column: n_rows keys, previous row: block_ctx keys). The VQ-VAE cost
is that of the top-level encoder's convolutions at their sample rates.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import AttnFunc, attn_func_for_layer
from .config import SAMPLE_RATE, JukeboxConfig
from .vqvae import VQVAE


def prior_flops_per_token(config: JukeboxConfig, layer: int) -> float:
    """FLOPs for one token through layers ``1..layer`` (full context, no padding waste)."""
    w, a, h = config.prior_width, config.attn_width, config.mlp_width
    matrices = 2 * (w * 3 * a + a * w + w * h + h * w)
    keys = {AttnFunc.DENSE: config.n_ctx / 2, AttnFunc.ROW: config.block_ctx,
            AttnFunc.COLUMN: config.blocks, AttnFunc.PREV_ROW: config.block_ctx}
    total = 0.0
    for index in range(config.check_layer(layer)):
        total += matrices + 2 * 2 * a * keys[attn_func_for_layer(config.attn_order, index)]
    return total


def vqvae_encoder_flops_per_second(config: JukeboxConfig) -> float:
    """FLOPs of the top-level encoder for one second of 44.1 kHz audio."""
    with torch.device("meta"):
        encoder = VQVAE(config).encoders[-1]
    rate, total = float(SAMPLE_RATE), 0.0
    for module in encoder.modules():  # registration order = execution order
        if isinstance(module, nn.Conv1d):
            rate /= module.stride[0]
            total += 2 * module.in_channels * module.out_channels * module.kernel_size[0] * rate
    return total


def flops_per_second(config: JukeboxConfig, layer: int, overlap_factor: float = 1.0) -> dict[str, float]:
    """{"prior", "vqvae", "total"} FLOPs per second of music; ``overlap_factor`` = tokens
    processed / tokens of music (window overlap)."""
    prior = prior_flops_per_token(config, layer) * config.token_rate * overlap_factor
    vqvae = vqvae_encoder_flops_per_second(config)
    return {"prior": prior, "vqvae": vqvae, "total": prior + vqvae}
