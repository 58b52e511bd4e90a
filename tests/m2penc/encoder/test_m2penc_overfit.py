"""A tiny M2PEnc overfits one (music features -> guidance, heatmaps) batch on the CPU."""
from __future__ import annotations

import time

import pytest
import torch

from m2pdance.m2penc.encoder import M2PEnc, M2PEncConfig, m2penc_loss
from m2pdance.m2penc.pose.heatmaps import keypoints_to_heatmaps

FRAMES, GRID, KEYPOINTS, GUIDANCE = 8, 16, 18, 8
STEPS = 250
#: One intra-op thread: on a small model this is faster than two and less sensitive to load.
THREADS = 1


def _batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features with per-frame structure; smooth guidance maps; Gaussian keypoint heatmaps."""
    features = torch.randn(1, FRAMES, 35, generator=generator)
    t = torch.linspace(0, 1, FRAMES)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, GRID), torch.linspace(-1, 1, GRID), indexing="ij")
    channels = torch.arange(GUIDANCE, dtype=torch.float32)
    guidance = torch.sin(3 * xs + channels[:, None, None, None] + 4 * t[None, :, None, None]) * ys
    keypoints = torch.rand(FRAMES, KEYPOINTS, 3, generator=generator) * (GRID - 5) + 2
    keypoints[..., 2] = 1.0
    heatmaps = keypoints_to_heatmaps(keypoints, GRID, GRID, sigma=1.5).permute(1, 0, 2, 3)
    return features, guidance[None], heatmaps[None]


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


def test_tiny_model_overfits_one_batch(one_thread):
    torch.manual_seed(0)
    features, guidance, heatmaps = _batch(torch.Generator().manual_seed(0))
    model = M2PEnc(M2PEncConfig.preset("tiny", heatmap_channels=KEYPOINTS, guidance_channels=GUIDANCE))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    start = time.perf_counter()
    losses = []
    for _ in range(STEPS):
        loss = m2penc_loss(model(features), guidance, heatmaps).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    elapsed = time.perf_counter() - start
    assert losses[-1] <= 0.1 * losses[0], f"loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    assert elapsed < 30, f"{STEPS} steps took {elapsed:.1f} s"
