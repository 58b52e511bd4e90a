"""Long music: chunked tokens, window plan, stitching, output length (tiny random model)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2pdance.m2penc.jukebox import JukeboxConfig
from m2pdance.m2penc.jukebox.random_weights import tiny_extractor
from m2pdance.m2penc.jukebox.tokens import encode_tokens
from m2pdance.m2penc.sampling.windows import crossfade_weights
from m2pdance.m2penc.timeline import frame_count as _frame_count
from m2pdance.m2penc.jukebox.windows import (FrameStitcher, plan_windows,
                                              resample_to_fps)

CONFIG = JukeboxConfig.preset("tiny")
RATE = CONFIG.token_rate
FPS = 15.0
OVERLAP_SECONDS = 0.5


@pytest.fixture(scope="module")
def extractor():
    return tiny_extractor(layer=4, seed=2, overlap_seconds=OVERLAP_SECONDS, chunk_tokens=3000)


@pytest.fixture(scope="module")
def clip_60s():
    rng = np.random.default_rng(7)
    t = np.arange(60 * 44100 + 1234) / 44100
    tone = np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    return (tone + 0.2 * rng.standard_normal(len(t))).astype(np.float32)


def test_chunked_tokens_equal_whole_clip_tokens(extractor, clip_60s):
    audio = clip_60s[: 20 * 44100]
    whole = extractor.vqvae.encode_top(torch.from_numpy(audio)[None])[0]
    chunked = encode_tokens(extractor.vqvae, audio, torch.device("cpu"), chunk_tokens=1000)
    assert len(chunked) == len(audio) // CONFIG.hop_length
    assert len(torch.unique(whole)) > 4
    assert torch.equal(chunked, whole)


@pytest.mark.parametrize("fps", [15.0, 24.0, 30.0, 30000 / 1001])
def test_window_plan_covers_frames_on_the_frame_grid(fps):
    n_samples = 60 * 44100 + 999
    n_tokens, n_frames = n_samples // CONFIG.hop_length, _frame_count(n_samples, 44100, fps)
    overlap = round(OVERLAP_SECONDS * fps)
    windows = plan_windows(n_tokens, n_frames, RATE, fps, CONFIG.n_ctx, overlap)
    assert windows[0].frame_start == 0 and windows[-1].frame_start + windows[-1].frame_count == n_frames
    for w in windows:
        assert w.token_count <= CONFIG.n_ctx and w.token_start + w.token_count <= n_tokens
        assert abs(w.token_start - w.frame_start * RATE / fps) <= 0.5
        assert math.ceil(w.token_count * fps / RATE) >= w.frame_count
    for a, b in zip(windows, windows[1:]):
        assert a.frame_start + a.frame_count - b.frame_start >= overlap


def test_single_window_is_jukemirlibs_single_pass(extractor, clip_60s):
    import librosa

    audio = clip_60s[: 2 * 44100 + 77]  # 690 tokens < n_ctx
    peak = np.abs(audio).max()
    tokens = extractor.tokens(audio)
    acts = extractor.token_features(tokens)
    expected = librosa.resample(np.asfortranarray(acts.T), orig_sr=RATE, target_sr=FPS, res_type="fft").T
    n_frames = math.floor(len(audio) / 44100 * FPS)
    out = extractor.extract(audio * 0.3 / peak, fps=FPS)  # peak-normalised inside
    assert out.shape == (n_frames, CONFIG.prior_width) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected[:n_frames], atol=1e-5)


def test_60s_windowed_equals_single_pass_windows_and_is_continuous(extractor, clip_60s):
    out = extractor.extract(clip_60s, fps=FPS)
    n_frames = math.floor(len(clip_60s) / 44100 * FPS)
    assert out.shape == (n_frames, CONFIG.prior_width)
    tokens = extractor.tokens(clip_60s)
    windows = plan_windows(len(tokens), n_frames, RATE, FPS, CONFIG.n_ctx, round(OVERLAP_SECONDS * FPS))
    assert len(windows) > 10
    singles = [resample_to_fps(extractor.token_features(tokens[w.token_start: w.token_start + w.token_count]),
                               RATE, FPS, w.frame_count) for w in windows]
    covered = np.zeros(n_frames, dtype=int)
    for w in windows:
        covered[w.frame_start: w.frame_start + w.frame_count] += 1
    for w, single in zip(windows, singles):  # away from seams: exactly that window's single pass
        own = covered[w.frame_start: w.frame_start + w.frame_count] == 1
        np.testing.assert_allclose(out[w.frame_start: w.frame_start + w.frame_count][own], single[own], atol=1e-6)
    for (a, fa), (b, fb) in zip(zip(windows, singles), zip(windows[1:], singles[1:])):
        lo, hi = b.frame_start, a.frame_start + a.frame_count  # the seam (overlap)
        wb = crossfade_weights(hi - lo).numpy()[:, None]
        earlier, later = fa[lo - a.frame_start:], fb[: hi - lo]
        np.testing.assert_allclose(out[lo:hi], (1 - wb) * earlier + wb * later, atol=1e-5)
        # continuity: entering and leaving the seam jumps by at most the natural frame-to-frame
        # change plus 1/(n+1) of the two windows' disagreement
        disagreement = np.abs(later - earlier).max()
        step_in = np.abs(out[lo] - out[lo - 1]).max()
        step_out = np.abs(out[hi] - out[hi - 1]).max()
        assert step_in <= np.abs(earlier[0] - fa[lo - a.frame_start - 1]).max() + disagreement / (hi - lo + 1) + 1e-5
        assert step_out <= np.abs(fb[hi - lo] - later[-1]).max() + disagreement / (hi - lo + 1) + 1e-5


def test_stitcher_rejects_gaps_and_incomplete_cover():
    stitcher = FrameStitcher(10, 2)
    stitcher.add(np.ones((4, 2), np.float32), 0)
    with pytest.raises(ValueError, match="gap"):
        stitcher.add(np.ones((4, 2), np.float32), 6)
    with pytest.raises(ValueError, match="covered 4 of 10"):
        stitcher.result()
    assert np.all(np.diff(crossfade_weights(7).numpy()) > 0) and 0 < crossfade_weights(7)[0] < crossfade_weights(7)[-1] < 1


@pytest.mark.parametrize("fps", [15.0, 30.0, 24.0])
def test_output_frame_count_is_floor_of_duration_times_fps(extractor, clip_60s, fps):
    for n in (44100, 44100 * 3 + 17, 5 * 44100 - 1):
        assert extractor.extract(clip_60s[:n], fps=fps).shape[0] == math.floor(n / 44100 * fps)
