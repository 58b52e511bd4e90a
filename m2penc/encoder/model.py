"""M2PEnc, the paper's Music-to-Pose Encoder (sec. 3.2.1), as a PyTorch module.

Music features ``(B, N, D)`` (one row per video frame; D = 4800 Jukebox or 35 baseline) go
through:

0. (configurable, ours) per-column standardisation with the training data's statistics, then a
   LayerNorm over the D columns;
1. a fully-connected layer ``D -> G * G`` (G = 64: 4096 values per frame);
2. a reshape to ``(B, 1, N, G, G)``: each frame becomes a one-channel 64 x 64 image and the N
   frames are the time axis of a one-channel video (the "(N, 64, 64)" of the paper);
3. an inflated 3D stem convolution ``1 -> C`` channels;
4. L alternating layers of inflated 3D convolution and 3D attention, at a fixed G x G grid;
5. two inflated 3D convolution heads: pose guidance ``(B, C_guid, N, G, G)`` and keypoint
   heatmaps ``(B, C_heat, N, G, G)``.

Outputs use the video layout ``(B, C, F, H, W)`` that Champ's ``guidance_fea`` expects; the
paper's per-frame ``(N, C, 64, 64)`` view is :func:`frames_first`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..audio.featureset import MusicFeatures
from ..errors import InputError
from .blocks import Attention3d, ConvBlock3d, InflatedConv3d
from .config import M2PEncConfig


#: Floor of the per-column standard deviation of ``input_standardize`` models.
MIN_INPUT_STD = 1e-2


def _block(conv: nn.Module, attention: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One M2PEnc layer: inflated 3D convolution, then 3D attention."""
    return attention(conv(x))


@dataclass
class M2PEncOutput:
    """What M2PEnc predicts for a batch of N-frame clips.

    Attributes:
        guidance: ``(B, C_guid, N, G, G)`` pose guidance features.
        heatmaps: ``(B, C_heat, N, G, G)`` keypoint heatmaps (targets peak at 1).
    """

    guidance: torch.Tensor
    heatmaps: torch.Tensor


def frames_first(video: torch.Tensor) -> torch.Tensor:
    """``(B, C, N, H, W) -> (B, N, C, H, W)``: the paper's per-frame ``(N, C, 64, 64)`` view."""
    return rearrange(video, "b c n h w -> b n c h w")


class M2PEnc(nn.Module):
    """Music features to pose guidance and keypoint heatmaps; built from an :class:`M2PEncConfig`."""

    def __init__(self, config: M2PEncConfig):
        super().__init__()
        self.config = config
        c, g = config.hidden_channels, config.grid_size
        if config.input_standardize:
            # the training data's per-column statistics (stage 1 sets them: set_input_statistics; saved with the
            # weights). NaN until then: a model that never saw its data refuses to run rather than guess.
            self.register_buffer("input_mean", torch.full((config.in_dim,), float("nan")))
            self.register_buffer("input_std", torch.full((config.in_dim,), float("nan")))
        self.input_norm = nn.LayerNorm(config.in_dim) if config.input_norm else nn.Identity()
        self.fc = nn.Linear(config.in_dim, g * g)
        self.stem = InflatedConv3d(1, c, config.temporal_kernel, config.spatial_kernel)
        self.convs = nn.ModuleList(
            ConvBlock3d(c, config.norm_groups, config.temporal_kernel, config.spatial_kernel)
            for _ in range(config.num_layers)
        )
        self.attentions = nn.ModuleList(
            Attention3d(c, config.num_heads, config.norm_groups, config.spatial_attention_stride)
            for _ in range(config.num_layers)
        )
        self.out_norm = nn.GroupNorm(config.norm_groups, c)
        self.guidance_head = InflatedConv3d(c, config.guidance_channels, config.temporal_kernel, config.spatial_kernel)
        self.heatmap_head = InflatedConv3d(c, config.heatmap_channels, config.temporal_kernel, config.spatial_kernel)
        #: Training only: recompute each conv + attention block in the backward pass instead of keeping
        #: its activations (the same values and gradients, less memory, about one more forward of compute).
        self.gradient_checkpointing = False

    def set_input_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-column ``mean``, ``std`` ``(in_dim,)`` of the training features (``input_standardize`` models).

        ``std`` is floored at :data:`MIN_INPUT_STD` so a column that barely varies in training cannot blow
        up on new music.
        """
        if not self.config.input_standardize:
            raise InputError("this M2PEnc does not standardise its inputs (config input_standardize is false)")
        shape = (self.config.in_dim,)
        if tuple(mean.shape) != shape or tuple(std.shape) != shape:
            raise InputError(f"input statistics must be ({self.config.in_dim},), got {tuple(mean.shape)} "
                             f"and {tuple(std.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise InputError("input statistics must be finite; the training features hold NaN/inf")
        with torch.no_grad():
            self.input_mean.copy_(mean)
            self.input_std.copy_(std.clamp(min=MIN_INPUT_STD))

    def check_inputs(self, features: torch.Tensor) -> None:
        """Features must be ``(B, N, in_dim)`` floats with N >= 1."""
        if features.ndim != 3 or features.shape[-1] != self.config.in_dim or features.shape[1] < 1:
            raise InputError(
                f"M2PEnc ({self.config.feature_kind}, {self.config.in_dim}-d) expects music features of "
                f"shape (batch, frames, {self.config.in_dim}), got {tuple(features.shape)}"
            )

    def check_music(self, music: MusicFeatures) -> None:
        """Extracted music features must be of the kind, width and fps this model was trained on."""
        cfg = self.config
        if music.kind != cfg.feature_kind or music.dim != cfg.in_dim:
            raise InputError(
                f"this M2PEnc reads {cfg.feature_kind!r} music features ({cfg.in_dim}-d) but got "
                f"{music.kind!r} ({music.dim}-d); extract {cfg.feature_kind!r} features or load the "
                f"M2PEnc weights trained on {music.kind!r}"
            )
        if abs(music.fps - cfg.fps) > 1e-6:
            raise InputError(f"this M2PEnc was trained at {cfg.fps} fps but the music features are at "
                             f"{music.fps} fps; extract them at {cfg.fps} fps")

    def forward(self, features: torch.Tensor) -> M2PEncOutput:
        """``features`` ``(B, N, D)`` -> :class:`M2PEncOutput` with ``(B, C, N, G, G)`` tensors."""
        self.check_inputs(features)
        g = self.config.grid_size
        if self.config.input_standardize:
            if torch.isnan(self.input_mean).any():
                raise InputError("this M2PEnc standardises its inputs but its feature statistics were never set: "
                                 "load trained weights, or train it with stage 1 (it measures them on the data)")
            features = (features - self.input_mean) / self.input_std
        x = self.fc(self.input_norm(features))                         # (B, N, G*G)
        x = rearrange(x, "b n (h w) -> b 1 n h w", h=g)                  # 1-channel video, time = N
        x = self.stem(x)                                                 # (B, C, N, G, G)
        for conv, attention in zip(self.convs, self.attentions):
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(_block, conv, attention, x, use_reentrant=False)   # recomputed in backward
            else:
                x = attention(conv(x))
        x = F.silu(self.out_norm(x))
        return M2PEncOutput(guidance=self.guidance_head(x), heatmaps=self.heatmap_head(x))
