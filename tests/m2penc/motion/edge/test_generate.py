"""Music features -> EDGE dance with a tiny random DanceDecoder: windowing, length, fps, determinism, checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import GenerationCancelled, InputError
from m2pdance.m2penc.motion.edge import DanceDecoder, EDGEConfig
from m2pdance.m2penc.motion.edge.checkpoint import EDGEModelBundle
from m2pdance.m2penc.motion.edge.generate import (
    edge_motion, edge_motion_from_windows, slice_windows, window_count,
)
from m2pdance.m2penc.motion.edge.normalizer import MinMaxNormalizer
from m2pdance.m2penc.progress import RunControl


@pytest.fixture(scope="module")
def bundle() -> EDGEModelBundle:
    torch.manual_seed(0)
    config = EDGEConfig.preset("tiny")                         # baseline features (35-d), windows of 30 frames
    frames = torch.randn(8, 30, 151)
    frames[..., 7:] = frames[..., 7:].clamp(-1, 1)
    return EDGEModelBundle(DanceDecoder(config).eval(), MinMaxNormalizer.fit(frames), config)


def test_window_count_and_slicing():
    assert [window_count(n, 30) for n in (1, 30, 31, 45, 46, 75)] == [1, 1, 2, 2, 3, 4]
    features = torch.arange(40.0)[:, None].expand(40, 2)
    windows = slice_windows(features, 30)                      # starts 0 and 15; frames 40..44 repeat frame 39
    assert windows.shape == (2, 30, 2)
    assert torch.equal(windows[0, :, 0], torch.arange(30.0))
    assert torch.equal(windows[1, :25, 0], torch.arange(15.0, 40.0))
    assert torch.equal(windows[1, 25:, 0], torch.full((5,), 39.0))


def test_dance_length_fps_and_finite(bundle):
    music = torch.randn(70, 35)                                # 4 windows cover 75 frames; cut back to 70
    motion = edge_motion(bundle, music, seed=1)
    assert motion.num_frames == 70 and motion.fps == 30.0 and motion.up_axis == "z"
    assert np.isfinite(motion.poses).all() and np.isfinite(motion.trans).all()
    assert edge_motion(bundle, music, seed=1, seconds=1.0).num_frames == 30
    assert edge_motion(bundle, music, seed=1, seconds=100.0).num_frames == 70      # capped at the music
    assert edge_motion(bundle, music[:10], seed=1).num_frames == 10               # one padded window


def test_same_seed_same_dance(bundle):
    music = torch.randn(50, 35)
    a, b = edge_motion(bundle, music, seed=7), edge_motion(bundle, music, seed=7)
    assert np.array_equal(a.poses, b.poses) and np.array_equal(a.trans, b.trans)
    c = edge_motion(bundle, music, seed=8)
    assert not np.allclose(a.trans, c.trans)


def test_windows_entry_point_matches(bundle):
    music = torch.randn(50, 35)
    windows = slice_windows(music, 30)
    a = edge_motion(bundle, music, seed=3, guidance_weight=1.5)
    b = edge_motion_from_windows(bundle, windows, 50, seed=3, guidance_weight=1.5)
    assert np.array_equal(a.poses, b.poses) and np.array_equal(a.trans, b.trans)


def test_progress_and_cancel(bundle):
    ticks = []
    edge_motion(bundle, torch.randn(40, 35), seed=0, control=RunControl(progress=lambda *a: ticks.append(a)))
    assert ticks[-1] == ("edge", 50, 50) and len(ticks) == 50
    with pytest.raises(GenerationCancelled):
        edge_motion(bundle, torch.randn(40, 35), seed=0, control=RunControl(should_cancel=lambda: True))


def test_wrong_features_say_which_are_needed(bundle):
    with pytest.raises(InputError, match=r"35-d baseline.*4800-d features \(those look like 'jukebox'"):
        edge_motion(bundle, torch.randn(40, 4800), seed=0)
    with pytest.raises(InputError, match="'jukebox' features were given"):
        edge_motion(bundle, torch.randn(40, 35), seed=0, feature_kind="jukebox")
    with pytest.raises(InputError, match="at 30 fps, got 15 fps"):
        edge_motion(bundle, torch.randn(40, 35), seed=0, features_fps=15.0)
    with pytest.raises(InputError, match="NaN"):
        edge_motion(bundle, torch.full((40, 35), float("nan")), seed=0)
    with pytest.raises(InputError, match="seconds"):
        edge_motion(bundle, torch.randn(40, 35), seed=0, seconds=0.0)
    with pytest.raises(InputError, match=r"\(B, 30, 35\)"):
        edge_motion_from_windows(bundle, torch.randn(2, 20, 35), 30, seed=0)
    with pytest.raises(InputError, match=r"num_frames must be an int in \[1, 45\]"):
        edge_motion_from_windows(bundle, torch.randn(2, 30, 35), 46, seed=0)
