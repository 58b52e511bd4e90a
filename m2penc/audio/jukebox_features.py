"""Jukebox 5B-prior activations as music features: backend choice and frame bookkeeping.

The paper (sec. 2.1, 3.2.1) feeds M2PEnc 4800-d Jukebox vectors, one per video frame. They are
the residual stream of the 5B model's top-level prior after ``layer`` of its 72 transformer
layers, at the prior's token rate (344.5 Hz), resampled to the video fps. EDGE uses layer 66
(jukemirlib's own default is 36).

Two backends:

* ``"jukemirlib"`` (rodrigo-castellon/jukemirlib, installed from git; not on PyPI) is used when
  it is importable. It only runs on CUDA, reads ``vqvae.pth.tar`` and ``prior_level_2.pth.tar``
  from its cache folder and looks at the first 25 s of what it is given, so the music is fed
  in :data:`JUKEMIRLIB_WINDOW_SECONDS` pieces and the results are concatenated.
* ``"own"``: :func:`m2pdance.m2penc.jukebox.extract_jukebox_features`, this pack's own
  re-implementation, imported lazily so that the baseline path never loads it.

``"auto"`` picks jukemirlib when it is importable and the device is CUDA, else ``"own"``.
Both backends receive mono 44.1 kHz audio peak-normalised to 1, as jukemirlib's loader does.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from ..errors import InputError, M2PDanceError, WeightsNotFoundError
from ..progress import NO_CONTROL, RunControl
from .featureset import JUKEBOX_DIM

#: Jukebox's audio sample rate (Hz).
JUKEBOX_SAMPLE_RATE = 44100
#: Top-prior tokens per second: 8192 tokens per 1,048,576 samples = 344.53 Hz (hop 128).
JUKEBOX_TOKEN_RATE = 8192 / (1048576 / JUKEBOX_SAMPLE_RATE)
#: Transformer layers in the 5B top prior; valid layers are 1..this (1-based, as jukemirlib).
JUKEBOX_NUM_LAYERS = 72
#: EDGE's layer (the paper follows EDGE); jukemirlib's own default is 36.
DEFAULT_LAYER = 66
#: jukemirlib truncates its input to 25 s; pieces of 20 s stay inside the prior's 23.8 s context.
JUKEMIRLIB_WINDOW_SECONDS = 20.0
BACKENDS: tuple[str, ...] = ("auto", "own", "jukemirlib")
#: Where the official 5B checkpoints are published (users download them; we never do).
WEIGHTS_URL_PREFIX = "https://openaipublic.azureedge.net/jukebox/models/5b/"
VQVAE_FILENAME = "vqvae.pth.tar"
PRIOR_FILENAME = "prior_level_2.pth.tar"

PathLike = Union[str, Path]


class JukeboxUnavailableError(M2PDanceError, RuntimeError):
    """No Jukebox backend can run here; the message says what to install."""


def jukemirlib_available() -> bool:
    """True when ``import jukemirlib`` would succeed (checked without importing it)."""
    return importlib.util.find_spec("jukemirlib") is not None


def resolve_backend(name: str, device: torch.device) -> str:
    """Map ``"auto"`` to a concrete backend; validate explicit names."""
    if name not in BACKENDS:
        raise InputError(f"jukebox_backend must be one of {BACKENDS}, got {name!r}")
    if name != "auto":
        return name
    return "jukemirlib" if jukemirlib_available() and device.type == "cuda" else "own"


def check_layer(layer: int) -> None:
    """Layers are 1-based like jukemirlib's: 1..72."""
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= JUKEBOX_NUM_LAYERS:
        raise InputError(f"Jukebox layer must be an int in 1..{JUKEBOX_NUM_LAYERS}, got {layer!r} "
                         f"(EDGE uses {DEFAULT_LAYER})")


def require_weights(vqvae_path: Optional[PathLike], prior_path: Optional[PathLike]) -> tuple[Path, Path]:
    """Both checkpoint files must exist locally; the error names them and where to get them."""
    found: list[Path] = []
    for given, name, size in ((vqvae_path, VQVAE_FILENAME, "~8 MB"), (prior_path, PRIOR_FILENAME, "~10 GB")):
        if given is None or not Path(given).is_file():
            where = "no path was given" if given is None else f"{given} does not exist"
            raise WeightsNotFoundError(
                f"Jukebox 5B checkpoint {name} ({size}) is missing: {where}. Download it from "
                f"{WEIGHTS_URL_PREFIX}{name} and pass its path, or use the CPU-friendly "
                "'baseline' music features instead."
            )
        found.append(Path(given))
    return found[0], found[1]


def frames_for(num_samples: int, sample_rate: int, fps: float) -> int:
    """``N = floor(duration * fps)``: the number of whole video frames the music covers."""
    return int(math.floor(num_samples / sample_rate * fps + 1e-9))


def fit_frames(acts: np.ndarray, num_frames: int, slack: int = 2) -> np.ndarray:
    """Trim or edge-pad a ``(T, 4800)`` activation matrix to exactly ``num_frames`` rows.

    Resampling 344.5 Hz to the video rate can be off by a frame at the end; more than
    ``slack`` frames missing means the backend returned something else, which is an error.
    """
    if acts.ndim != 2 or acts.shape[1] != JUKEBOX_DIM:
        raise InputError(f"Jukebox backend returned shape {acts.shape}, expected (frames, {JUKEBOX_DIM})")
    if acts.shape[0] + slack < num_frames:
        raise InputError(f"Jukebox backend returned {acts.shape[0]} frames, {num_frames} were expected")
    if acts.shape[0] < num_frames:
        pad = np.repeat(acts[-1:], num_frames - acts.shape[0], axis=0)
        acts = np.concatenate([acts, pad], axis=0)
    return np.ascontiguousarray(acts[:num_frames], dtype=np.float32)


def _own_extractor() -> Callable[..., np.ndarray]:
    """The pack's own backend, imported only when needed."""
    try:
        module = importlib.import_module("..jukebox", __package__)
    except ImportError as e:
        raise JukeboxUnavailableError(
            f"the built-in Jukebox backend (m2pdance.m2penc.jukebox) failed to import: {e}. "
            "Reinstall m2pdance with `pip install -e .[jukebox]`, or install jukemirlib from "
            "https://github.com/rodrigo-castellon/jukemirlib (CUDA only)."
        ) from e
    fn = getattr(module, "extract_jukebox_features", None)
    if fn is None:
        raise JukeboxUnavailableError(
            "m2pdance.m2penc.jukebox has no extract_jukebox_features(); this m2pdance build ships "
            "without the built-in Jukebox backend. Update m2pdance, install jukemirlib from "
            "https://github.com/rodrigo-castellon/jukemirlib (CUDA only), or use 'baseline' features."
        )
    return fn


def _run_own(fn: Callable[..., np.ndarray], y44k: np.ndarray, layer: int, fps: float, vqvae: Path,
             prior: Path, device: torch.device, dtype: torch.dtype, control: RunControl) -> np.ndarray:
    return np.asarray(fn(y44k, layer=layer, fps=fps, vqvae_path=vqvae, prior_path=prior,
                         device=device, dtype=dtype, control=control))


def _prepare_jukemirlib(jukemirlib, vqvae: Path, prior: Path, device: torch.device) -> None:
    """Point jukemirlib at the user's checkpoints so that it never downloads them itself."""
    if device.type != "cuda":
        raise InputError(f"jukemirlib only runs on CUDA (got device {device}); use jukebox_backend='own'")
    if vqvae.parent != prior.parent or vqvae.name != VQVAE_FILENAME or prior.name != PRIOR_FILENAME:
        raise InputError(
            f"jukemirlib reads {VQVAE_FILENAME} and {PRIOR_FILENAME} from one folder; put both files, "
            f"with these names, in the same folder (got {vqvae} and {prior})"
        )
    constants = getattr(jukemirlib, "constants", None)
    if constants is not None and hasattr(constants, "CACHE_DIR"):
        constants.CACHE_DIR = str(vqvae.parent)


def _run_jukemirlib(y44k: np.ndarray, layer: int, fps: float, vqvae: Path, prior: Path,
                    device: torch.device, control: RunControl) -> np.ndarray:
    jukemirlib = importlib.import_module("jukemirlib")
    _prepare_jukemirlib(jukemirlib, vqvae, prior, device)
    window = int(JUKEMIRLIB_WINDOW_SECONDS * JUKEBOX_SAMPLE_RATE)
    pieces = []
    starts = range(0, len(y44k), window)
    for i, first in enumerate(starts):
        piece = y44k[first:first + window]
        want = frames_for(len(piece), JUKEBOX_SAMPLE_RATE, fps)
        if want == 0:
            break
        acts = jukemirlib.extract(audio=piece, layers=[layer], downsample_target_rate=fps)[layer]
        pieces.append(fit_frames(np.asarray(acts), want))
        control.tick("jukebox", i + 1, len(starts))
    return np.concatenate(pieces, axis=0)


def jukebox_features(
    y44k: np.ndarray,
    layer: int = DEFAULT_LAYER,
    fps: float = 15.0,
    backend: str = "auto",
    vqvae_path: Optional[PathLike] = None,
    prior_path: Optional[PathLike] = None,
    device: torch.device = torch.device("cpu"),
    dtype: torch.dtype = torch.float32,
    control: RunControl = NO_CONTROL,
) -> np.ndarray:
    """Layer-``layer`` activations for mono, peak-normalised 44.1 kHz audio.

    Args:
        y44k: float32 ``(S,)`` at :data:`JUKEBOX_SAMPLE_RATE`, ``max|y| == 1``.
        layer: 1-based prior layer (1..72); EDGE uses 66.
        fps: output frame rate.
        backend: ``"auto"``, ``"own"`` or ``"jukemirlib"``.
        vqvae_path, prior_path: local ``vqvae.pth.tar`` and ``prior_level_2.pth.tar``.
        device, dtype: where and in which precision the prior runs.

    Returns:
        float32 ``(N, 4800)``, ``N = floor(S / 44100 * fps)``.
    """
    check_layer(layer)
    chosen = resolve_backend(backend, device)
    if chosen == "jukemirlib" and not jukemirlib_available():
        raise JukeboxUnavailableError(
            "jukebox_backend='jukemirlib' but jukemirlib is not installed; install it with "
            "`pip install git+https://github.com/rodrigo-castellon/jukemirlib` or use 'own'/'auto'"
        )
    own = _own_extractor() if chosen == "own" else None  # a missing backend is reported first
    vqvae, prior = require_weights(vqvae_path, prior_path)
    num_frames = frames_for(len(y44k), JUKEBOX_SAMPLE_RATE, fps)
    if chosen == "jukemirlib":
        acts = _run_jukemirlib(y44k, layer, fps, vqvae, prior, device, control)
    else:
        acts = _run_own(own, y44k, layer, fps, vqvae, prior, device, dtype, control)
    return fit_frames(acts, num_frames)
