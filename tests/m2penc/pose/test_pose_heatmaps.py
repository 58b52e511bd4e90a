"""Keypoints <-> Gaussian heatmaps round trip and canvas coordinate mapping."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.pose.heatmaps import (
    canvas_to_heatmap, heatmap_to_canvas, heatmaps_to_keypoints, keypoints_to_heatmaps,
)


def _random_keypoints(frames: int, count: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(frames, count, 3, generator=g) * (size - 1)
    points[..., 2] = 1.0
    return points


def test_round_trip_is_exact_for_gaussian_targets():
    points = _random_keypoints(5, 18, 64)
    points[..., :2] = points[..., :2].clamp(1.0, 62.0)          # an argmax on the border falls back (below)
    maps = keypoints_to_heatmaps(points, 64, 64)
    assert maps.shape == (5, 18, 64, 64)
    back = heatmaps_to_keypoints(maps)
    error = (back[..., :2] - points[..., :2]).norm(dim=-1)
    assert float(error.max()) < 1e-3, float(error.max())
    # confidence = peak pixel value; off-grid centres lose up to exp(-0.5 / (2 sigma^2)) ~ 6 %
    torch.testing.assert_close(back[..., 2], torch.ones(5, 18), atol=0.07, rtol=0)


def test_a_keypoint_moving_smoothly_reads_smoothly_across_pixel_boundaries():
    """0.1-px steps across a boundary read as 0.1-px steps (the window mean alone jumped 0.6 px at x = 4.5)."""
    xs = torch.arange(40, dtype=torch.float32) * 0.1 + 3.0
    points = torch.stack([xs, torch.full_like(xs, 7.3), torch.ones_like(xs)], dim=-1)[:, None]
    back = heatmaps_to_keypoints(keypoints_to_heatmaps(points, 16, 16))[:, 0]
    torch.testing.assert_close(back[:, 0], xs, atol=1e-4, rtol=0)
    torch.testing.assert_close(back[:, 1], torch.full_like(xs, 7.3), atol=1e-4, rtol=0)


def test_maps_without_a_log_peak_fall_back_to_the_window_mean():
    # a plateau (no curvature at the argmax): the window mean, not the argmax pixel
    flat = torch.zeros(1, 16, 16)
    flat[0, 5:10, 4:8] = 1.0                                          # positive around the argmax, no curvature
    flat[0, 7, 5] = 1.0 + 1e-6                                        # argmax (5, 7); the plateau spans x 4..7, y 5..9
    x, y, c = heatmaps_to_keypoints(flat)[0].tolist()
    assert x == pytest.approx(5.5, abs=1e-5) and y == pytest.approx(7.0, abs=1e-6) and c == 1.0
    edge = keypoints_to_heatmaps(torch.tensor([[0.2, 8.0, 1.0]]), 16, 16)
    x, y, _ = heatmaps_to_keypoints(edge)[0].tolist()
    assert y == pytest.approx(8.0, abs=1e-4) and 0.0 < x < 1.0      # biased inwards, but on the map
    # a negative value next to the peak (a regression head's output) also falls back, and stays finite
    ragged = keypoints_to_heatmaps(torch.tensor([[8.3, 8.0, 1.0]]), 16, 16)
    ragged[0, 8, 9] = -0.2
    x, y, _ = heatmaps_to_keypoints(ragged)[0].tolist()
    assert 7.5 < x < 8.5 and y == pytest.approx(8.0, abs=0.2)


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
