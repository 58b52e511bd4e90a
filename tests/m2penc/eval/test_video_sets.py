"""Video-set scoring: folder listing, decoding, pairing, pooling and the FVD clip policy (no weights files)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval.i3d import I3DConfig, InceptionI3d
from m2pdance.m2penc.eval.image_metrics import psnr, ssim
from m2pdance.m2penc.eval.video_sets import (MIN_FVD_CLIPS, MetricModels, clip_features, fvd_of_features,
                                             fvd_protocol, list_videos, load_metric_models, read_video,
                                             score_pair, score_sets)
from m2pdance.m2penc.video import VideoWriter


def _frames(count: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.random((count, 4, 4, 3))
    return (np.kron(coarse, np.ones((1, size // 4, size // 4, 1))) * 255).astype(np.uint8)


def _write(path: Path, frames: np.ndarray) -> Path:
    with VideoWriter(path, fps=15.0, format=path.suffix.lstrip(".")) as writer:
        writer.write(frames)
    return path


@pytest.fixture(scope="module")
def tiny_i3d() -> InceptionI3d:
    torch.manual_seed(0)
    return InceptionI3d(I3DConfig(width=0.125)).eval()


def test_list_videos_keys_by_stem_and_skips_other_files(tmp_path):
    _write(tmp_path / "b.mp4", _frames(2))
    _write(tmp_path / "a.webm", _frames(2))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.mp4").write_bytes(b"")
    assert list(list_videos(tmp_path)) == ["a", "b"]
    (tmp_path / "a.mp4").write_bytes(b"")
    with pytest.raises(InputError, match=r"several videos share this name \(a.mp4, a.webm\)"):
        list_videos(tmp_path)
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(InputError, match="dir.mp4: not a regular file"):
        list_videos(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        list_videos(tmp_path / "nope")


def test_read_video_decodes_what_was_written(tmp_path):
    frames = _frames(5)
    decoded = read_video(_write(tmp_path / "v.mp4", frames))
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames).mean() < 10        # H.264 4:2:0 at CRF 19 on sharp colour blocks
    assert read_video(tmp_path / "v.mp4", max_frames=2).shape[0] == 2
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="broken.mp4: cannot open the video"):
        read_video(tmp_path / "broken.mp4")


def test_pairs_are_cut_to_the_common_length_and_pooled_by_frame(tmp_path):
    a, b = _frames(6, seed=1), _frames(4, seed=2)
    pair = score_pair("x", a, b, None)
    assert pair.frames == 4 and pair.frames_given == (6, 4) and pair.lpips is None
    assert pair.psnr.per_frame == psnr(a[:4], b).per_frame and pair.ssim.per_frame == ssim(a[:4], b).per_frame
    with pytest.raises(InputError, match="crop/resize both sets to one size"):
        score_pair("x", _frames(2, size=16), b, None)
    paths = {n: _write(tmp_path / f"{n}.mp4", f) for n, f in (("p", _frames(3, seed=3)), ("q", _frames(5, seed=4)))}
    real = {n: _write(tmp_path / f"r_{n}.mp4", _frames(p, seed=9)) for n, p in (("p", 3), ("q", 5))}
    scores = score_sets(paths, real, MetricModels())
    per_frame = [v for pair in scores.pairs for v in pair.psnr.per_frame]
    assert scores.frames == 8 and scores.pooled("psnr").mean == pytest.approx(math.fsum(per_frame) / 8)
    assert scores.pooled("lpips") is None and scores.fvd.value is None and "no I3D" in scores.fvd.reason


def test_fvd_policy_clips_of_16_and_at_least_two_per_set(tiny_i3d):
    assert clip_features(tiny_i3d, _frames(15)).shape == (0, 400)
    features = clip_features(tiny_i3d, _frames(40, seed=5))                    # 2 clips, 8 frames dropped
    assert features.shape == (2, 400)
    protocol = fvd_protocol(tiny_i3d)
    short = fvd_of_features([features[:1]], [features], protocol)
    assert short.value is None and (short.real_clips, short.generated_clips) == (1, 2)
    assert f">= {MIN_FVD_CLIPS} clips of 16 frames" in short.reason
    same = fvd_of_features([features], [features], protocol)
    assert same.value == pytest.approx(0.0, abs=1e-6) and same.reason is None
    other = fvd_of_features([features], [clip_features(tiny_i3d, _frames(32, seed=6))], protocol)
    assert other.value > 0


def test_missing_metric_weights_become_notes_naming_the_entries(tmp_path):
    models = load_metric_models((tmp_path / "alex.pth", tmp_path / "alexnet.pth"), tmp_path / "i3d.pt", "cpu")
    assert models.lpips is None and models.i3d is None
    assert any("lpips_alex_lin" in n for n in models.notes) and any("i3d_kinetics400" in n for n in models.notes)
