"""The optional jukemirlib backend: how it drives jukemirlib, and parity with ours where possible.

jukemirlib installs only from git and needs the real 10 GB checkpoints, so the parity test runs
only where both exist: set M2PDANCE_JUKEBOX_DIR to a folder holding vqvae.pth.tar and
prior_level_2.pth.tar. The other tests drive the backend against a stand-in jukemirlib
(``fake_jukemirlib``) that records how it is called.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from m2pdance.m2penc.errors import InputError, WeightsNotFoundError
from m2pdance.m2penc.jukebox import JukeboxUnavailableError, extract_jukebox_features
from m2pdance.m2penc.jukebox.jukemirlib_backend import jukemirlib_available

WEIGHTS_DIR = os.environ.get("M2PDANCE_JUKEBOX_DIR")


@pytest.mark.skipif(jukemirlib_available(), reason="jukemirlib is installed; the missing-package path cannot run")
def test_jukemirlib_backend_without_jukemirlib_says_how_to_install():
    install = r"pip install git\+https://github.com/rodrigo-castellon/jukemirlib"
    with pytest.raises(JukeboxUnavailableError, match=install):
        extract_jukebox_features(np.zeros(44100, np.float32), backend="jukemirlib")


@pytest.fixture
def weights_folder(tmp_path) -> Path:
    """Placeholder files with the names jukemirlib reads (the stand-in never opens them)."""
    (tmp_path / "vqvae.pth.tar").write_bytes(b"v")
    (tmp_path / "prior_level_2.pth.tar").write_bytes(b"p")
    return tmp_path


def test_jukemirlib_is_set_up_from_the_given_folder_and_device_once(fake_jukemirlib, weights_folder, make_music):
    audio = make_music(2.0)
    kwargs = dict(layer=66, fps=15.0, vqvae_path=weights_folder / "vqvae.pth.tar",
                  prior_path=weights_folder / "prior_level_2.pth.tar", backend="jukemirlib")
    features = extract_jukebox_features(audio, **kwargs)
    assert features.shape == (30, 4800) and features.dtype == np.float32
    np.testing.assert_allclose(features, 1.0, atol=1e-5)  # the one window's activations, resampled
    (call,) = fake_jukemirlib.extract_calls
    assert call["layers"] == [66] and "downsample_target_rate" not in call  # we resample ourselves
    np.testing.assert_allclose(call["audio"], audio[: len(audio) // 128 * 128] / np.abs(audio).max(), rtol=1e-6)
    assert fake_jukemirlib.setup_calls == [{"cache_dir": str(weights_folder), "device": "cpu", "DEVICE": "cpu"}]
    extract_jukebox_features(audio, **kwargs)
    assert len(fake_jukemirlib.setup_calls) == 1  # models kept in jukemirlib's globals
    extract_jukebox_features(audio, device="meta", **kwargs)
    assert fake_jukemirlib.setup_calls[-1] == {"cache_dir": str(weights_folder), "device": "meta", "DEVICE": "meta"}


def test_jukemirlib_refuses_files_it_would_download_and_layers_the_5b_lacks(fake_jukemirlib, weights_folder,
                                                                           tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("other") / "prior_level_2.pth.tar"
    elsewhere.write_bytes(b"p")
    with pytest.raises(WeightsNotFoundError, match="side by side in one folder"):
        extract_jukebox_features(np.ones(44100, np.float32), layer=36, backend="jukemirlib",
                                 vqvae_path=weights_folder / "vqvae.pth.tar", prior_path=elsewhere)
    with pytest.raises(InputError, match="1..72"):
        extract_jukebox_features(np.ones(44100, np.float32), layer=73, backend="jukemirlib",
                                 vqvae_path=weights_folder, prior_path=weights_folder)
    assert fake_jukemirlib.setup_calls == []


def _parity_skip_reason() -> str:
    reasons = []
    if not jukemirlib_available():
        reasons.append("jukemirlib not installed (git-only: "
                       "pip install git+https://github.com/rodrigo-castellon/jukemirlib.git)")
    if WEIGHTS_DIR is None or not (Path(WEIGHTS_DIR) / "prior_level_2.pth.tar").is_file():
        reasons.append("real Jukebox weights not available (set M2PDANCE_JUKEBOX_DIR to the folder "
                       "holding vqvae.pth.tar and prior_level_2.pth.tar)")
    return "; ".join(reasons)


@pytest.mark.slow
@pytest.mark.skipif(bool(_parity_skip_reason()), reason=_parity_skip_reason() or "runs")
def test_native_and_jukemirlib_backends_agree(make_music):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    audio = make_music(20.0)  # one context window: both backends encode the same whole clip
    kwargs = dict(layer=36, fps=30.0, vqvae_path=Path(WEIGHTS_DIR) / "vqvae.pth.tar",
                  prior_path=Path(WEIGHTS_DIR) / "prior_level_2.pth.tar", device=device)
    ours = extract_jukebox_features(audio, backend="native", **kwargs)
    theirs = extract_jukebox_features(audio, backend="jukemirlib", **kwargs)
    assert ours.shape == theirs.shape == (600, 4800)
    np.testing.assert_allclose(ours, theirs, atol=1e-3 * float(np.abs(theirs).max()), rtol=1e-3)
