"""Keypoints <-> Gaussian heatmaps round trip and canvas coordinate mapping."""
from __future__ import annotations

import torch

from m2pdance.m2penc.pose.heatmaps import (
    canvas_to_heatmap, heatmap_to_canvas, heatmaps_to_keypoints, keypoints_to_heatmaps,
)


def _random_keypoints(frames: int, count: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(frames, count, 3, generator=g) * (size - 1)
    points[..., 2] = 1.0
    return points


def test_round_trip_within_one_pixel():
    points = _random_keypoints(5, 18, 64)
    maps = keypoints_to_heatmaps(points, 64, 64)
    assert maps.shape == (5, 18, 64, 64)
    back = heatmaps_to_keypoints(maps)
    error = (back[..., :2] - points[..., :2]).norm(dim=-1)
    assert float(error.max()) < 1.0, float(error.max())
    assert float(error.mean()) < 0.3
    # confidence = peak pixel value; off-grid centres lose up to exp(-0.5 / (2 sigma^2)) ~ 6 %
    torch.testing.assert_close(back[..., 2], torch.ones(5, 18), atol=0.07, rtol=0)


def test_confidence_scales_the_map_and_zero_means_empty():
    points = torch.tensor([[[10.0, 20.0, 0.5], [30.0, 5.0, 0.0]]])
    maps = keypoints_to_heatmaps(points, 32, 48)
    assert maps.shape == (1, 2, 32, 48)
    assert float(maps[0, 0].max()) == 0.5 and float(maps[0, 0, 20, 10]) == 0.5
    assert float(maps[0, 1].abs().max()) == 0.0
    back = heatmaps_to_keypoints(maps)
    assert float(back[0, 0, 2]) == 0.5 and float(back[0, 1, 2]) == 0.0


def test_readout_ignores_a_distant_second_blob():
    maps = keypoints_to_heatmaps(torch.tensor([[40.0, 40.0, 1.0], [5.0, 5.0, 0.6]]), 64, 64).sum(0, keepdim=True)
    x, y, _ = heatmaps_to_keypoints(maps)[0].tolist()
    assert abs(x - 40) < 0.1 and abs(y - 40) < 0.1


def test_canvas_mapping_is_centre_aligned_and_invertible():
    points = torch.tensor([[[0.0, 0.0, 1.0], [63.0, 63.0, 1.0], [31.5, 31.5, 1.0]]])
    canvas = heatmap_to_canvas(points, (64, 64), (512, 640))
    torch.testing.assert_close(canvas[0, 2, :2], torch.tensor([319.5, 255.5]))
    torch.testing.assert_close(canvas[0, 0, :2], torch.tensor([4.5, 3.5]))
    torch.testing.assert_close(canvas_to_heatmap(canvas, (512, 640), (64, 64)), points)
