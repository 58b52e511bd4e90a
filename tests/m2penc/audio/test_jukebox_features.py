"""Jukebox feature plumbing: backend choice, weights checks, resampling, frame count.

The 5B prior cannot run here, so the backends are replaced by fakes that record what they
were given; the fakes stand in for the real functions at the exact call boundary.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

import m2pdance.m2penc.jukebox as jukebox_pkg
from m2pdance.m2penc.audio import jukebox_features as jf
from m2pdance.m2penc.audio.features import extract_music_features
from m2pdance.m2penc.audio.featureset import JUKEBOX_DIM
from m2pdance.m2penc.errors import InputError, WeightsNotFoundError

SR = 22050


@pytest.fixture
def weights(tmp_path):
    vqvae, prior = tmp_path / jf.VQVAE_FILENAME, tmp_path / jf.PRIOR_FILENAME
    vqvae.write_bytes(b"v")
    prior.write_bytes(b"p")
    return vqvae, prior


@pytest.fixture
def song() -> dict:
    t = np.arange(int(3.2 * SR)) / SR
    y = (0.25 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return {"waveform": torch.from_numpy(np.stack([y, y]))[None], "sample_rate": SR}


def _fake_own(calls: list):
    def extract_jukebox_features(waveform_mono_44k, layer, fps, vqvae_path, prior_path, device, dtype, control):
        calls.append({"y": waveform_mono_44k, "layer": layer, "fps": fps, "device": device, "dtype": dtype})
        n = int(len(waveform_mono_44k) / jf.JUKEBOX_SAMPLE_RATE * fps) - 1  # one short: must be padded
        return np.tile(np.arange(n, dtype=np.float32)[:, None], (1, JUKEBOX_DIM))
    return extract_jukebox_features


def test_own_backend_receives_normalised_44k_mono(monkeypatch, song, weights):
    calls: list = []
    monkeypatch.setattr(jukebox_pkg, "extract_jukebox_features", _fake_own(calls), raising=False)
    music = extract_music_features(song, kind="jukebox", fps=15, layer=36, jukebox_backend="own",
                                   vqvae_path=weights[0], prior_path=weights[1])
    (call,) = calls
    assert call["layer"] == 36 and call["fps"] == 15 and call["dtype"] == torch.float32
    assert call["y"].dtype == np.float32 and call["y"].ndim == 1
    assert abs(len(call["y"]) - 3.2 * jf.JUKEBOX_SAMPLE_RATE) <= 1
    assert np.abs(call["y"]).max() == pytest.approx(1.0)
    assert music.features.shape == (48, JUKEBOX_DIM) and music.kind == "jukebox" and music.layer == 36
    assert float(music.features[-1, 0]) == float(music.features[-2, 0])  # edge-padded last frame


def test_missing_own_backend_is_explained(monkeypatch, song, weights):
    monkeypatch.delattr(jukebox_pkg, "extract_jukebox_features", raising=False)
    with pytest.raises(jf.JukeboxUnavailableError, match="jukemirlib"):
        extract_music_features(song, kind="jukebox", jukebox_backend="own",
                               vqvae_path=weights[0], prior_path=weights[1])


def test_missing_weights_name_file_and_url(monkeypatch, song, tmp_path):
    monkeypatch.setattr(jukebox_pkg, "extract_jukebox_features", _fake_own([]), raising=False)
    with pytest.raises(WeightsNotFoundError, match=r"vqvae\.pth\.tar.*openaipublic"):
        extract_music_features(song, kind="jukebox", jukebox_backend="own")
    with pytest.raises(WeightsNotFoundError, match=r"prior_level_2\.pth\.tar"):
        jf.require_weights(__file__, tmp_path / "absent.tar")


def test_layer_and_backend_validation():
    with pytest.raises(InputError, match="1..72"):
        jf.check_layer(73)
    with pytest.raises(InputError, match="jukebox_backend"):
        jf.resolve_backend("openai", torch.device("cpu"))
    assert jf.resolve_backend("auto", torch.device("cpu")) == "own"


def test_jukemirlib_backend_is_fed_in_windows(monkeypatch, weights):
    seen: list[int] = []

    def extract(audio, layers, downsample_target_rate):
        seen.append(len(audio))
        frames = int(np.ceil(len(audio) / jf.JUKEBOX_SAMPLE_RATE * downsample_target_rate))
        return {layers[0]: np.ones((frames, JUKEBOX_DIM), dtype=np.float32) * len(seen)}

    fake = types.ModuleType("jukemirlib")
    fake.extract = extract
    fake.constants = types.SimpleNamespace(CACHE_DIR="~/.cache/jukemirlib")
    monkeypatch.setitem(sys.modules, "jukemirlib", fake)
    monkeypatch.setattr(jf, "jukemirlib_available", lambda: True)
    y = np.ones(int(45.0 * jf.JUKEBOX_SAMPLE_RATE), dtype=np.float32)
    acts = jf.jukebox_features(y, layer=66, fps=15, backend="jukemirlib", vqvae_path=weights[0],
                               prior_path=weights[1], device=torch.device("cuda"))
    window = int(jf.JUKEMIRLIB_WINDOW_SECONDS * jf.JUKEBOX_SAMPLE_RATE)
    assert seen == [window, window, len(y) - 2 * window]
    assert acts.shape == (45 * 15, JUKEBOX_DIM)
    assert fake.constants.CACHE_DIR == str(weights[0].parent)
    with pytest.raises(InputError, match="CUDA"):
        jf.jukebox_features(y, backend="jukemirlib", vqvae_path=weights[0], prior_path=weights[1])
