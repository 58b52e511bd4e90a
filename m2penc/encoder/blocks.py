"""Building blocks of M2PEnc: inflated 3D convolution and factorised 3D attention.

All tensors are videos ``(B, C, F, H, W)``: F is the time axis (one slice per video frame),
H x W the spatial grid, the layout Champ's 3D UNet and guidance encoder use.

* :class:`InflatedConv3d` is an I3D-style inflated convolution: a ``(t, k, k)`` kernel that can be
  initialised from a 2D ``k x k`` kernel (repeated over t and divided by t). Time is padded by
  replication, so a video whose frames are all equal is mapped exactly like the 2D conv maps
  one frame (I3D's "boring video" property). ``t = 1`` gives Champ's per-frame InflatedConv3d.
* :class:`Attention3d` is the "3D attention" of the paper's sec. 3.2.1, factorised as temporal
  attention (each grid position attends over all frames: long-range time dependencies) followed
  by spatial attention inside each frame on an average-pooled grid (full attention over the
  4096 positions of a 64 x 64 frame would cost 16.7M scores per frame and head).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

#: Sequences per scaled-dot-product call; bounds attention memory on long clips.
ATTENTION_CHUNK = 1024
#: Base of the sinusoidal position code (as in "Attention is all you need").
_PE_BASE = 10000.0


def sinusoidal_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """``(P,)`` float positions -> ``(P, dim)`` sin/cos code (dim even); no length limit."""
    half = dim // 2
    freqs = torch.exp(-math.log(_PE_BASE) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def grid_encoding(height: int, width: int, dim: int, device: torch.device) -> torch.Tensor:
    """``(H * W, dim)`` 2D code: half the channels encode the row, half the column."""
    rows = sinusoidal_encoding(torch.arange(height, device=device), dim // 2)
    cols = sinusoidal_encoding(torch.arange(width, device=device), dim // 2)
    grid = torch.cat([rows[:, None].expand(-1, width, -1), cols[None].expand(height, -1, -1)], dim=-1)
    return grid.reshape(height * width, dim)


def inflate_conv2d_weight(weight: torch.Tensor, time_kernel: int) -> torch.Tensor:
    """I3D inflation: ``(O, I, k, k) -> (O, I, t, k, k)``, repeated over t and divided by t."""
    return weight.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel


class InflatedConv3d(nn.Module):
    """Same-size 3D convolution, ``(B, C_in, F, H, W) -> (B, C_out, F, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, time_kernel: int = 3, kernel: int = 3):
        super().__init__()
        self.time_pad = time_kernel // 2
        self.conv = nn.Conv3d(in_channels, out_channels, (time_kernel, kernel, kernel),
                              padding=(0, kernel // 2, kernel // 2))

    @classmethod
    def from_conv2d(cls, conv2d: nn.Conv2d, time_kernel: int = 3) -> "InflatedConv3d":
        """Inflate a trained square, stride-1, same-padded 2D conv (I3D initialisation)."""
        out_c, in_c, k, k2 = conv2d.weight.shape
        if k != k2 or conv2d.stride != (1, 1) or conv2d.padding != (k // 2, k // 2):
            raise ValueError(f"only square stride-1 same-padded convs can be inflated, got {conv2d}")
        module = cls(in_c, out_c, time_kernel, k)
        with torch.no_grad():
            module.conv.weight.copy_(inflate_conv2d_weight(conv2d.weight, time_kernel))
            if conv2d.bias is not None:
                module.conv.bias.copy_(conv2d.bias)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, self.time_pad), mode="replicate")
        return self.conv(x)


class ConvBlock3d(nn.Module):
    """Residual ``x + Conv3d(SiLU(GroupNorm(x)))``: the paper's Inf-Conv3D layer."""

    def __init__(self, channels: int, groups: int, time_kernel: int, kernel: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = InflatedConv3d(channels, channels, time_kernel, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(F.silu(self.norm(x)))


class _SequenceAttention(nn.Module):
    """Multi-head self-attention over ``(S, L, C)`` sequences, run in chunks of S."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, tokens: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """tokens ``(S, L, C)``, position code ``(L, C)`` added to queries and keys only."""
        outputs = [self._attend(chunk, position) for chunk in tokens.split(ATTENTION_CHUNK)]
        return self.proj(torch.cat(outputs))

    def _attend(self, tokens: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)                      # (s, L, C) each
        q_pos, k_pos, _ = F.linear(position, self.qkv.weight).chunk(3, dim=-1)  # (L, C), no bias
        q, k = q + q_pos, k + k_pos
        q, k, v = (rearrange(t, "s l (h d) -> s h l d", h=self.heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)                  # (s, h, L, d)
        return rearrange(out, "s h l d -> s l (h d)")


class TemporalAttention(nn.Module):
    """Each grid position attends over all frames: ``(B, C, F, H, W)`` residual."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attention = _SequenceAttention(channels, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        tokens = rearrange(self.norm(x), "b c f h w -> (b h w) f c")
        position = sinusoidal_encoding(torch.arange(f, device=x.device), c).to(x.dtype)
        out = self.attention(tokens, position)                          # (B*H*W, F, C)
        return x + rearrange(out, "(b h w) f c -> b c f h w", b=b, h=h, w=w)


class SpatialAttention(nn.Module):
    """Attention among the positions of each frame on a grid pooled by ``stride``: residual."""

    def __init__(self, channels: int, heads: int, groups: int, stride: int):
        super().__init__()
        self.stride = stride
        self.norm = nn.GroupNorm(groups, channels)
        self.attention = _SequenceAttention(channels, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        frames = rearrange(self.norm(x), "b c f h w -> (b f) c h w")
        pooled = F.avg_pool2d(frames, self.stride)                     # (B*F, C, h', w')
        ph, pw = pooled.shape[-2:]
        tokens = rearrange(pooled, "n c h w -> n (h w) c")
        out = self.attention(tokens, grid_encoding(ph, pw, c, x.device).to(x.dtype))
        out = rearrange(out, "n (h w) c -> n c h w", h=ph)
        out = F.interpolate(out, scale_factor=self.stride, mode="nearest")  # back to (H, W)
        return x + rearrange(out, "(b f) c h w -> b c f h w", b=b)


class Attention3d(nn.Module):
    """The paper's 3D attention module: temporal, then (optionally) pooled spatial attention."""

    def __init__(self, channels: int, heads: int, groups: int, spatial_stride: int):
        super().__init__()
        self.temporal = TemporalAttention(channels, heads, groups)
        self.spatial = SpatialAttention(channels, heads, groups, spatial_stride) if spatial_stride else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.temporal(x)
        return self.spatial(x) if self.spatial is not None else x
