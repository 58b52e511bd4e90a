"""Jukebox's 3-level VQ-VAE; we only run the top level's encoder and codebook.

``encoders[l]`` maps raw audio (B, 1, S) to level-``l`` latents; the top level (``l=2``) has
hop 128, i.e. 344.5 tokens/s. Tokens are nearest-codebook indices of the top encoder output,
computed with Jukebox's distance formula so ties resolve the same way.
The full module (all encoders, decoders and codebooks) is built so ``vqvae.pth.tar`` loads
strictly; it is small (1.9 M parameters).
"""
from __future__ import annotations

import torch
from torch import nn

from .config import JukeboxConfig
from .vqvae_blocks import DecoderConvBlock, EncoderConvBlock


def _level_width_depth(config: JukeboxConfig, level: int) -> tuple[int, int]:
    mult = config.hvqvae_multipliers[level]
    return config.vq_width * mult, config.vq_depth * mult


class Encoder(nn.Module):
    """Stack of ``levels`` encoder blocks; returns the last block's output (B, emb, S / hop_l)."""

    def __init__(self, config: JukeboxConfig, n_levels: int, width: int, depth: int) -> None:
        super().__init__()
        self.level_blocks = nn.ModuleList(
            EncoderConvBlock(1 if i == 0 else config.emb_width, config.emb_width, config.downs_t[i],
                             config.strides_t[i], width, depth, config.m_conv, config.dilation_growth_rate)
            for i in range(n_levels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.level_blocks:
            x = block(x)
        return x


class Decoder(nn.Module):
    """Mirror of :class:`Encoder` (not used for features; keeps checkpoint keys complete)."""

    def __init__(self, config: JukeboxConfig, n_levels: int, width: int, depth: int) -> None:
        super().__init__()
        self.level_blocks = nn.ModuleList(
            DecoderConvBlock(config.emb_width, config.downs_t[i], config.strides_t[i], width, depth,
                             config.m_conv, config.dilation_growth_rate)
            for i in range(n_levels)
        )
        self.out = nn.Conv1d(config.emb_width, 1, 3, 1, 1)


class BottleneckBlock(nn.Module):
    """One codebook, buffer ``k`` (l_bins, emb_width)."""

    def __init__(self, l_bins: int, emb_width: int) -> None:
        super().__init__()
        self.register_buffer("k", torch.zeros(l_bins, emb_width))

    def quantise(self, x: torch.Tensor) -> torch.Tensor:
        """Latents (B, C, T) -> nearest code indices (B, T) int64."""
        batch, _, length = x.shape
        flat = x.permute(0, 2, 1).reshape(batch * length, -1).float()  # (B*T, C)
        k_w = self.k.t().float()
        distance = (torch.sum(flat**2, dim=-1, keepdim=True) - 2 * torch.matmul(flat, k_w)
                    + torch.sum(k_w**2, dim=0, keepdim=True))  # (B*T, l_bins)
        return distance.argmin(dim=-1).view(batch, length)


class Bottleneck(nn.Module):
    def __init__(self, config: JukeboxConfig) -> None:
        super().__init__()
        self.level_blocks = nn.ModuleList(BottleneckBlock(config.l_bins, config.emb_width)
                                          for _ in range(config.levels))


class VQVAE(nn.Module):
    """Keys: ``encoders.{l}.*``, ``decoders.{l}.*``, ``bottleneck.level_blocks.{l}.k``."""

    def __init__(self, config: JukeboxConfig) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleList(Encoder(config, lvl + 1, *_level_width_depth(config, lvl))
                                      for lvl in range(config.levels))
        self.decoders = nn.ModuleList(Decoder(config, lvl + 1, *_level_width_depth(config, lvl))
                                      for lvl in range(config.levels))
        self.bottleneck = Bottleneck(config)

    def encode_top(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio (B, S) in [-1, 1] -> top-level tokens (B, S // hop) int64."""
        latents = self.encoders[-1](audio.unsqueeze(1).float())  # (B, emb, S // hop)
        return self.bottleneck.level_blocks[-1].quantise(latents)


def top_encoder_receptive_field(config: JukeboxConfig) -> int:
    """Receptive field (audio samples) of one top-level token: bounds chunked-encoding margins."""
    field, jump = 1, 1
    width_depth = _level_width_depth(config, config.levels - 1)
    for down, stride in zip(config.downs_t, config.strides_t):
        for _ in range(down):
            field += (2 * stride - 1) * jump
            jump *= stride
            field += sum(2 * config.dilation_growth_rate**i * jump for i in range(width_depth[1]))
        field += 2 * jump  # closing kernel-3 conv of the block
    return field
