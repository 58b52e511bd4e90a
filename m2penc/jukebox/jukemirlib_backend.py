"""Optional cross-check backend: the same windows computed by jukemirlib itself.

This is the pack's only code that calls jukemirlib (``m2penc.audio`` dispatches here).
jukemirlib (rodrigo-castellon/jukemirlib; git-only, not on PyPI) is detected at run time and
only knows the ``5b`` model. Its ``setup_models`` downloads the checkpoints when they are missing
from its cache folder, so we call it with the folder that already holds both files and refuse
to start otherwise: this pack never downloads. Its ``get_z``/``get_cond`` put tensors on the
package-level ``jukemirlib.DEVICE`` whatever device the models were set up on, so that is set
too. The models live in jukemirlib's module globals and are set up again when the folder or
device changes. Each context window is handed to ``jukemirlib.extract`` as audio (jukemirlib
truncates clips to 8192 tokens), then resampled and stitched exactly like the native backend.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Optional, Union

import numpy as np
import torch

from ..device import resolve_device
from ..errors import M2PDanceError, WeightsNotFoundError
from ..progress import NO_CONTROL, RunControl
from .config import SAMPLE_RATE, JukeboxConfig
from ..timeline import frame_count
from .files import PRIOR_FILENAME, VQVAE_FILENAME, PathLike, require_weights_file
from .music_input import DEFAULT_OVERLAP_SECONDS, peak_normalise
from .windows import FrameStitcher, plan_windows, resample_to_fps

JUKEMIRLIB_URL = "https://github.com/rodrigo-castellon/jukemirlib"
#: Attribute on ``jukemirlib.lib`` recording which (folder, device) its models were set up from.
_SETUP_MARK = "_m2pdance_setup"


class JukeboxUnavailableError(M2PDanceError, RuntimeError):
    """The requested Jukebox backend cannot run here; the message says what to install."""


def jukemirlib_available() -> bool:
    """True if ``import jukemirlib`` would succeed (checked without importing it)."""
    return importlib.util.find_spec("jukemirlib") is not None


def require_jukemirlib() -> None:
    """Raise :class:`JukeboxUnavailableError` with install instructions if jukemirlib is missing."""
    if not jukemirlib_available():
        raise JukeboxUnavailableError(
            f"the 'jukemirlib' Jukebox backend needs jukemirlib, which is not installed (it is not on "
            f"PyPI): pip install git+{JUKEMIRLIB_URL}.git -- or use the built-in backend "
            "(jukebox_backend='own' / backend='native'), which reads the same checkpoints"
        )


def _weights_folder(vqvae_path: Optional[PathLike], prior_path: Optional[PathLike]) -> Path:
    vqvae = require_weights_file(vqvae_path, VQVAE_FILENAME, "Jukebox VQ-VAE")
    prior = require_weights_file(prior_path, PRIOR_FILENAME, "Jukebox top-level prior")
    if vqvae.name != VQVAE_FILENAME or prior.name != PRIOR_FILENAME or vqvae.parent != prior.parent:
        raise WeightsNotFoundError(
            f"jukemirlib needs {VQVAE_FILENAME} and {PRIOR_FILENAME} side by side in one folder "
            f"(got {vqvae} and {prior}); otherwise it would download them"
        )
    return vqvae.parent


def _setup(folder: Path, device: torch.device) -> ModuleType:
    """jukemirlib with its models loaded from ``folder`` onto ``device`` (reused if already so)."""
    import jukemirlib
    from jukemirlib import lib

    wanted = (str(folder), str(device))
    if lib.VQVAE is None or lib.TOP_PRIOR is None or getattr(lib, _SETUP_MARK, None) != wanted:
        jukemirlib.DEVICE = str(device)
        lib.x_cond = lib.y_cond = None  # conditioning cached on the previous device
        lib.VQVAE, lib.TOP_PRIOR = jukemirlib.setup_models(cache_dir=str(folder), device=str(device))
        setattr(lib, _SETUP_MARK, wanted)
    return jukemirlib


def extract_with_jukemirlib(waveform: np.ndarray, layer: int, fps: float,
                            vqvae_path: Optional[PathLike], prior_path: Optional[PathLike],
                            device: Union[str, torch.device] = "cpu",
                            control: Optional[RunControl] = None, num_frames: Optional[int] = None) -> np.ndarray:
    """Same contract as :meth:`.extractor.JukeboxFeatureExtractor.extract` for the ``5b`` model,
    computed by jukemirlib: mono 44.1 kHz (S,) -> (num_frames, 4800) float32."""
    require_jukemirlib()
    config = JukeboxConfig.preset("5b")
    layer = config.check_layer(layer)
    control = control or NO_CONTROL
    jukemirlib = _setup(_weights_folder(vqvae_path, prior_path), resolve_device(device))
    audio = peak_normalise(waveform)
    hop = config.hop_length
    n_frames = frame_count(len(audio), SAMPLE_RATE, fps) if num_frames is None else num_frames
    windows = plan_windows(len(audio) // hop, n_frames, config.token_rate, fps, config.n_ctx,
                           round(DEFAULT_OVERLAP_SECONDS * fps))
    stitcher = FrameStitcher(n_frames, config.prior_width)
    for index, window in enumerate(windows):
        clip = audio[window.token_start * hop: (window.token_start + window.token_count) * hop]
        acts = np.asarray(jukemirlib.extract(audio=clip, layers=[layer])[layer])  # (tokens, 4800)
        stitcher.add(resample_to_fps(acts, config.token_rate, fps, window.frame_count), window.frame_start)
        control.tick("jukebox (jukemirlib)", index + 1, len(windows))
    return stitcher.result()
