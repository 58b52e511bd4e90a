"""Convolutional blocks of Jukebox's VQ-VAE (names match ``vqvae.pth.tar``).

Shapes are (B, C, T). Each encoder down-sampling step is a stride-2 conv (kernel 4, pad 1)
followed by a dilated residual stack; dilations grow as ``dilation_growth_rate ** depth``.
Decoder blocks exist so the whole checkpoint loads strictly; feature extraction never runs them.
"""
from __future__ import annotations

import torch
from torch import nn


class ResConv1DBlock(nn.Module):
    """``x + conv1x1(relu(conv3_dilated(relu(x))))``."""

    def __init__(self, n_in: int, n_state: int, dilation: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(n_in, n_state, 3, 1, dilation, dilation),
            nn.ReLU(),
            nn.Conv1d(n_state, n_in, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


class Resnet1D(nn.Module):
    """``depth`` residual blocks with dilations ``growth ** i`` (reversed in decoders)."""

    def __init__(self, width: int, depth: int, m_conv: float, growth: int, reverse: bool = False) -> None:
        super().__init__()
        blocks = [ResConv1DBlock(width, int(m_conv * width), growth**i) for i in range(depth)]
        self.model = nn.Sequential(*(blocks[::-1] if reverse else blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class EncoderConvBlock(nn.Module):
    """(B, c_in, T) -> (B, c_out, T / stride**down)."""

    def __init__(self, c_in: int, c_out: int, down: int, stride: int, width: int, depth: int,
                 m_conv: float, growth: int) -> None:
        super().__init__()
        kernel, pad = stride * 2, stride // 2
        steps: list[nn.Module] = [
            nn.Sequential(nn.Conv1d(c_in if i == 0 else width, width, kernel, stride, pad),
                          Resnet1D(width, depth, m_conv, growth))
            for i in range(down)
        ]
        steps.append(nn.Conv1d(width, c_out, 3, 1, 1))
        self.model = nn.Sequential(*steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DecoderConvBlock(nn.Module):
    """(B, c, T) -> (B, c, T * stride**down); present for checkpoint completeness."""

    def __init__(self, c: int, down: int, stride: int, width: int, depth: int, m_conv: float,
                 growth: int) -> None:
        super().__init__()
        kernel, pad = stride * 2, stride // 2
        steps: list[nn.Module] = [nn.Conv1d(c, width, 3, 1, 1)]
        steps += [
            nn.Sequential(Resnet1D(width, depth, m_conv, growth, reverse=True),
                          nn.ConvTranspose1d(width, c if i == down - 1 else width, kernel, stride, pad))
            for i in range(down)
        ]
        self.model = nn.Sequential(*steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
