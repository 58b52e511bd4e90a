"""EDGE's 35-d baseline features against librosa called directly, on a synthetic click track."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from m2pdance.m2penc.audio.baseline import FEATURE_SAMPLE_RATE, hop_length_for
from m2pdance.m2penc.audio.featureset import (
    BASELINE_DIM, COL_BEAT, COL_CHROMA, COL_ENVELOPE, COL_MFCC, COL_ONSET_PEAK,
)
from m2pdance.m2penc.audio.features import extract_music_features
from m2pdance.m2penc.errors import AudioError, InputError

SR = 44100
BPM = 120.0
SECONDS = 8.0
FIRST_CLICK = 0.25


def click_times() -> np.ndarray:
    return np.arange(FIRST_CLICK, SECONDS - 0.1, 60.0 / BPM)


def click_track() -> dict:
    """AUDIO dict: 1 kHz decaying clicks at 120 BPM over quiet noise, stereo 44.1 kHz."""
    y = 1e-3 * np.random.default_rng(0).standard_normal(int(SECONDS * SR))
    n = int(0.03 * SR)
    click = np.exp(-np.arange(n) / 400) * np.sin(2 * np.pi * 1000 * np.arange(n) / SR)
    for t in click_times():
        y[int(t * SR): int(t * SR) + n] += click
    waveform = torch.from_numpy(np.stack([y, y]).astype(np.float32))[None]
    return {"waveform": waveform, "sample_rate": SR}


@pytest.fixture(scope="module")
def clicks() -> dict:
    return click_track()


def _librosa_reference(audio: dict, fps: int) -> dict[str, np.ndarray]:
    """The same columns computed with librosa directly (EDGE's calls, explicit hop)."""
    y = librosa.resample(audio["waveform"][0].mean(0).numpy(), orig_sr=SR, target_sr=FEATURE_SAMPLE_RATE)
    hop = FEATURE_SAMPLE_RATE // fps
    env = librosa.onset.onset_strength(y=y, sr=FEATURE_SAMPLE_RATE, hop_length=hop)
    return {
        "envelope": env,
        "mfcc": librosa.feature.mfcc(y=y, sr=FEATURE_SAMPLE_RATE, n_mfcc=20, hop_length=hop).T,
        "chroma": librosa.feature.chroma_cens(y=y, sr=FEATURE_SAMPLE_RATE, hop_length=hop, n_chroma=12).T,
        "peaks": librosa.onset.onset_detect(onset_envelope=env, sr=FEATURE_SAMPLE_RATE, hop_length=hop),
        "beats": librosa.beat.beat_track(onset_envelope=env, sr=FEATURE_SAMPLE_RATE, hop_length=hop,
                                         start_bpm=BPM, tightness=100)[1],
    }


@pytest.mark.parametrize("fps", [15, 30])
def test_baseline_matches_librosa(clicks, fps):
    music = extract_music_features(clicks, kind="baseline", fps=fps, start_bpm=BPM)
    n = int(SECONDS * fps)
    feats = music.features.numpy()
    assert music.features.dtype == torch.float32 and feats.shape == (n, BASELINE_DIM)
    assert (music.kind, music.layer, music.fps) == ("baseline", None, fps)
    ref = _librosa_reference(clicks, fps)
    np.testing.assert_allclose(feats[:, COL_ENVELOPE], ref["envelope"][:n], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feats[:, COL_MFCC], ref["mfcc"][:n], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(feats[:, COL_CHROMA], ref["chroma"][:n], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.flatnonzero(feats[:, COL_ONSET_PEAK]), ref["peaks"][ref["peaks"] < n])
    np.testing.assert_array_equal(np.flatnonzero(feats[:, COL_BEAT]), ref["beats"][ref["beats"] < n])


@pytest.mark.parametrize("fps", [15, 30])
def test_beats_land_on_clicks(clicks, fps):
    beats = np.flatnonzero(extract_music_features(clicks, fps=fps).features[:, COL_BEAT].numpy())
    clicks_at = click_times() * fps
    assert len(beats) >= len(clicks_at) - 2, (beats, clicks_at)  # the tracker may skip the ends
    for beat in beats:
        assert np.min(np.abs(clicks_at - beat)) <= 1.0, (beat, clicks_at)


def test_frame_count_and_trim(clicks):
    music = extract_music_features(clicks, fps=15, start=1.0, duration=2.5)
    assert music.num_frames == int(2.5 * 15) and music.start_seconds == 1.0
    odd = {"waveform": clicks["waveform"][..., : int(3.33 * SR)], "sample_rate": SR}
    assert extract_music_features(odd, fps=15).num_frames == int(np.floor(3.33 * 15))


def test_hop_length_for_fps():
    assert hop_length_for(30) == 512 and hop_length_for(15) == 1024
    with pytest.raises(InputError, match="does not divide"):
        hop_length_for(25)


def test_bad_requests(clicks):
    with pytest.raises(InputError, match="kind must be one of"):
        extract_music_features(clicks, kind="mel")
    with pytest.raises(AudioError, match="one song at a time"):
        extract_music_features({"waveform": clicks["waveform"].repeat(2, 1, 1), "sample_rate": SR})
    silent = {"waveform": torch.zeros(1, 1, SR * 2), "sample_rate": SR}
    with pytest.raises(AudioError, match="silent"):
        extract_music_features(silent)
    with pytest.raises(AudioError, match="shorter than one video frame"):
        extract_music_features({"waveform": clicks["waveform"][..., :1000], "sample_rate": SR})
