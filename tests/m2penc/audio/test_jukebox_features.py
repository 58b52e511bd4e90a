"""Jukebox dispatch in the music front end: input convention, backend choice, weights and layer
checks, frame fitting.

The built-in backend runs for real on tiny self-describing weights (``tiny_jukebox``); jukemirlib,
which cannot be installed here, is a stand-in recording how it is driven (``fake_jukemirlib``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pdance.m2penc.audio import jukebox_features as jf
from m2pdance.m2penc.audio.features import extract_music_features
from m2pdance.m2penc.audio.featureset import JUKEBOX_DIM
from m2pdance.m2penc.audio.io import resample, to_mono
from m2pdance.m2penc.errors import InputError, WeightsNotFoundError
from m2pdance.m2penc.jukebox import JukeboxConfig, load_jukebox

SR = 22050
TINY = JukeboxConfig.preset("tiny")
pytestmark = pytest.mark.usefixtures("jukebox_env")


@pytest.fixture
def placeholder_5b(tmp_path):
    """Files named like OpenAI's checkpoints; plans check them without loading (5b config)."""
    vqvae, prior = tmp_path / "vqvae.pth.tar", tmp_path / "prior_level_2.pth.tar"
    vqvae.write_bytes(b"v")
    prior.write_bytes(b"p")
    return vqvae, prior


@pytest.fixture
def song() -> dict:
    """3.2 s stereo 220 Hz sine at 22.05 kHz, peak 0.25: resampling, mixing and scaling all matter."""
    t = np.arange(int(3.2 * SR)) / SR
    y = (0.25 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return {"waveform": torch.from_numpy(np.stack([y, 0.5 * y]))[None], "sample_rate": SR}


def test_own_backend_sees_mono_44k_peak_normalised_music(song, tiny_jukebox):
    music = extract_music_features(song, kind="jukebox", fps=15, layer=2, jukebox_backend="own",
                                   vqvae_path=tiny_jukebox[0], prior_path=tiny_jukebox[1])
    assert music.features.shape == (48, TINY.prior_width) and (music.kind, music.layer) == ("jukebox", 2)
    y44k = resample(to_mono(song["waveform"])[0], SR, jf.JUKEBOX_SAMPLE_RATE)[0].numpy()
    expected = load_jukebox(*tiny_jukebox, layer=2).extract(y44k, fps=15, layer=2)
    np.testing.assert_array_equal(music.features.numpy(), expected[:48])
    # the extractor peak-normalises (once): a quieter copy gives the same features
    np.testing.assert_array_equal(load_jukebox(*tiny_jukebox, layer=2).extract(0.1 * y44k, fps=15, layer=2), expected)


def test_missing_weights_name_file_url_and_the_baseline_fallback(song, tmp_path):
    with pytest.raises(WeightsNotFoundError, match=r"vqvae\.pth\.tar.*openaipublic.*'baseline'"):
        extract_music_features(song, kind="jukebox", jukebox_backend="own")
    (tmp_path / "vqvae.pth.tar").write_bytes(b"v")
    with pytest.raises(WeightsNotFoundError, match=r"prior_level_2\.pth\.tar.*openaipublic"):
        extract_music_features(song, kind="jukebox", jukebox_backend="own", vqvae_path=tmp_path,
                               prior_path=tmp_path / "absent.pth.tar")


def test_layer_and_backend_are_checked_against_the_weights_before_loading(song, placeholder_5b):
    with pytest.raises(InputError, match=r"1\.\.72"):  # OpenAI-format files: the 5b architecture
        extract_music_features(song, kind="jukebox", layer=73, jukebox_backend="own",
                               vqvae_path=placeholder_5b[0], prior_path=placeholder_5b[1])
    run = jf.plan_jukebox(66, "own", *placeholder_5b)  # valid: checked without reading the placeholders
    assert (run.backend, run.layer, run.windows) == ("own", 66, (8192, 2.0)) and len(jf.LOADED) == 0
    with pytest.raises(InputError, match="jukebox_backend"):
        extract_music_features(song, kind="jukebox", jukebox_backend="openai", vqvae_path=placeholder_5b[0],
                               prior_path=placeholder_5b[1])


@pytest.mark.skipif(jf.jukemirlib_available(), reason="jukemirlib is installed here")
def test_auto_is_own_and_missing_jukemirlib_says_how_to_install(song, placeholder_5b):
    assert jf.resolve_backend("auto", torch.device("cuda")) == "own"
    with pytest.raises(jf.JukeboxUnavailableError, match="github.com/rodrigo-castellon/jukemirlib"):
        extract_music_features(song, kind="jukebox", jukebox_backend="jukemirlib",
                               vqvae_path=placeholder_5b[0], prior_path=placeholder_5b[1])


def test_jukemirlib_requests_reach_the_jukebox_package_backend(song, placeholder_5b, fake_jukemirlib):
    assert jf.resolve_backend("auto", torch.device("cuda")) == "jukemirlib"
    assert jf.resolve_backend("auto", torch.device("cpu")) == "own"
    music = extract_music_features(song, kind="jukebox", fps=15, layer=36, jukebox_backend="jukemirlib",
                                   vqvae_path=placeholder_5b[0], prior_path=placeholder_5b[1])
    assert music.features.shape == (48, JUKEBOX_DIM)
    np.testing.assert_allclose(music.features.numpy(), 1.0, atol=1e-5)
    assert fake_jukemirlib.setup_calls == [(str(placeholder_5b[0].parent), "cpu")]
    assert fake_jukemirlib.extract_calls == [(int(3.2 * 44100) // 128 * 128, [36])]


def test_frames_are_counted_once_on_the_music_and_the_windows_follow_that_count(song, tiny_jukebox):
    """48 kHz music whose 44.1 kHz resampling drops a frame boundary still gives floor(S * fps / sr) rows."""
    from m2pdance.m2penc.timeline import frame_count

    sr = 48_000
    y = np.sin(2 * np.pi * 220 * np.arange(47_999) / sr).astype(np.float32)     # 0.99998 s: 14 frames at 15 fps
    music = extract_music_features({"waveform": torch.from_numpy(y)[None, None], "sample_rate": sr}, kind="jukebox",
                                   fps=15, layer=2, jukebox_backend="own", vqvae_path=tiny_jukebox[0],
                                   prior_path=tiny_jukebox[1])
    assert frame_count(47_999, sr, 15) == 14 == music.features.shape[0]
    assert frame_count(44_100, 44_100, 30000 / 1001) == 29 and frame_count(88_200, 44_100, 15) == 30
