"""The optional jukemirlib backend: same features as ours when it is installed with real weights.

jukemirlib installs only from git and needs the real 10 GB checkpoints, so the parity test runs
only where both exist: set M2PDANCE_JUKEBOX_DIR to a folder holding vqvae.pth.tar and
prior_level_2.pth.tar.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.jukebox import extract_jukebox_features
from m2pdance.m2penc.jukebox.jukemirlib_backend import jukemirlib_available

WEIGHTS_DIR = os.environ.get("M2PDANCE_JUKEBOX_DIR")


@pytest.mark.skipif(jukemirlib_available(), reason="jukemirlib is installed; the missing-package path cannot run")
def test_jukemirlib_backend_without_jukemirlib_says_how_to_install():
    with pytest.raises(InputError, match="github.com/rodrigo-castellon/jukemirlib"):
        extract_jukebox_features(np.zeros(44100, np.float32), backend="jukemirlib")


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
