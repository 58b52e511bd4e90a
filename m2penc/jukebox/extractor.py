"""Jukebox features for music of any length: the public extraction API.

``extract_jukebox_features(waveform, layer, fps, ...) -> (N, 4800)`` reproduces jukemirlib's
``extract(audio, layers=[layer], downsample_target_rate=fps)`` -- peak-normalised mono 44.1 kHz
-> top-level VQ-VAE tokens -> activations of prior layer ``layer`` -> librosa FFT resampling to
``fps`` -- without jukemirlib's 23.8 s limit (see :mod:`.windows`) and loading only layers
``1..layer``. :class:`JukeboxFeatureExtractor` keeps the models for repeated calls;
:func:`load_jukebox` builds one from the two checkpoint files, taking the architecture from the
files when they carry it (:mod:`.self_describing`, e.g. tiny smoke weights), else ``5b``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from ..checkpoint import load_strict
from ..device import resolve_device, resolve_dtype
from ..errors import AudioError, InputError
from ..timeline import DEFAULT_FPS, frame_count
from ..progress import NO_CONTROL, RunControl
from .checkpoint_io import keys_up_to_layer, read_jukebox_state_dict
from .config import DEFAULT_LAYER, SAMPLE_RATE, JukeboxConfig
from .files import PRIOR_FILENAME, VQVAE_FILENAME, PathLike, require_weights_file
from .memory import check_memory, pickle_read_bytes, required_bytes
from .prior import TopLevelPrior
from .self_describing import check_stored_layers, config_for_files, weights_fingerprint
from .tokens import DEFAULT_CHUNK_TOKENS, encode_tokens
from .vqvae import VQVAE
from .music_input import DEFAULT_OVERLAP_SECONDS, check_fps, peak_normalise
from .windows import FrameStitcher, plan_windows, resample_to_fps

log = logging.getLogger(__name__)

DtypeLike = Union[torch.dtype, str]


class JukeboxFeatureExtractor:
    """Loaded VQ-VAE + truncated prior; :meth:`extract` turns music into (N, width) features.

    ``weights_id`` names the weights the models came from (set by :func:`load_jukebox` from the
    files' paths, sizes and mtimes); ``None`` for models built in memory. Feature caches use it
    to tell features of different weights apart.
    """

    def __init__(self, vqvae: VQVAE, prior: TopLevelPrior, device: Union[str, torch.device] = "cpu",
                 dtype: DtypeLike = torch.float32, window_tokens: Optional[int] = None,
                 overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
                 chunk_tokens: int = DEFAULT_CHUNK_TOKENS, weights_id: Optional[str] = None) -> None:
        self.weights_id = weights_id
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.config: JukeboxConfig = prior.config
        self.vqvae = vqvae.eval().requires_grad_(False).to(self.device)
        self.prior = prior.eval().requires_grad_(False).to(self.device)
        self.window_tokens = self.config.n_ctx if window_tokens is None else window_tokens
        if not 1 <= self.window_tokens <= self.config.n_ctx:
            raise InputError(f"window_tokens must be in 1..{self.config.n_ctx}, got {self.window_tokens}")
        self.overlap_seconds = overlap_seconds
        self.chunk_tokens = chunk_tokens

    @property
    def max_layer(self) -> int:
        """Deepest layer this extractor can return (the layers that were loaded)."""
        return self.prior.n_layers

    def check_layer(self, layer: Optional[int]) -> int:
        """A valid layer this extractor can return (``None``: the deepest loaded); raises InputError."""
        layer = self.max_layer if layer is None else self.config.check_layer(layer)
        if layer > self.max_layer:
            raise InputError(f"layer {layer} requested but only layers 1..{self.max_layer} were loaded; "
                             f"load the extractor with layer={layer}")
        return layer

    def tokens(self, waveform: np.ndarray, control: Optional[RunControl] = None) -> torch.Tensor:
        """Peak-normalised mono 44.1 kHz audio (S,) -> top-level tokens (S // 128,) int64."""
        return encode_tokens(self.vqvae, peak_normalise(waveform), self.device, self.chunk_tokens, control)

    @torch.no_grad()
    def token_features(self, tokens: torch.Tensor, layer: Optional[int] = None,
                       on_layer: Optional[Callable[[int], None]] = None) -> np.ndarray:
        """One context window: tokens (T,) with T <= n_ctx -> layer activations (T, width) float32."""
        layer = self.check_layer(layer)
        acts = self.prior.layer_output(tokens.to(self.device)[None], layer, self.dtype, on_layer)
        return acts[0].float().cpu().numpy()

    def extract(self, waveform: np.ndarray, fps: float = DEFAULT_FPS, layer: Optional[int] = None,
                control: Optional[RunControl] = None, num_frames: Optional[int] = None) -> np.ndarray:
        """Mono 44.1 kHz audio (S,) -> features (num_frames, width) float32.

        ``num_frames`` defaults to the frames the audio covers (:func:`..timeline.frame_count`);
        callers that counted the frames on the music before resampling it to 44.1 kHz pass
        their count, and the windows are laid out on it.
        """
        control = control or NO_CONTROL
        layer = self.check_layer(layer)
        check_fps(fps)
        audio = peak_normalise(waveform)
        n_frames = frame_count(len(audio), SAMPLE_RATE, fps) if num_frames is None else num_frames
        if n_frames < 1:
            raise AudioError(f"{len(audio)} samples at 44.1 kHz is shorter than one frame at {fps} fps")
        tokens = encode_tokens(self.vqvae, audio, self.device, self.chunk_tokens, control)
        overlap = round(self.overlap_seconds * fps)
        windows = plan_windows(len(tokens), n_frames, self.config.token_rate, fps, self.window_tokens, overlap)
        stitcher = FrameStitcher(n_frames, self.config.prior_width)
        total = len(windows) * layer
        for index, window in enumerate(windows):
            def on_layer(done: int, index: int = index) -> None:
                control.tick("jukebox: prior layers", index * layer + done, total)

            window_tokens = tokens[window.token_start: window.token_start + window.token_count]
            features = self.token_features(window_tokens, layer, on_layer)
            frames = resample_to_fps(features, self.config.token_rate, fps, window.frame_count)
            stitcher.add(frames, window.frame_start)
        return stitcher.result()


def _build_on_meta(config: JukeboxConfig, layer: int) -> tuple[VQVAE, TopLevelPrior]:
    with torch.device("meta"):
        return VQVAE(config), TopLevelPrior(config, n_layers=layer, with_head=False)


def _check_resources(config: JukeboxConfig, layer: int, device: torch.device, dtype: torch.dtype,
                     prior_path: PathLike) -> None:
    what = f"the Jukebox prior up to layer {layer}"
    if device.type == "cuda":
        free_vram, _ = torch.cuda.mem_get_info(device)
        check_memory(required_bytes(config, layer, dtype), what + " (GPU memory)", available=free_vram)
        check_memory(pickle_read_bytes(prior_path), f"reading {Path(prior_path).name}")
    else:
        check_memory(required_bytes(config, layer, dtype, prior_path), what)


def load_jukebox(vqvae_path: Optional[PathLike], prior_path: Optional[PathLike], layer: int = DEFAULT_LAYER,
                 device: Union[str, torch.device] = "cpu", dtype: DtypeLike = torch.float32,
                 config: Optional[JukeboxConfig] = None, **extractor_options) -> JukeboxFeatureExtractor:
    """Build the VQ-VAE and the prior's layers ``1..layer`` from checkpoint files (``.pth.tar``,
    converted or self-describing ``.safetensors``), after checking the files exist, hold ``layer``
    and memory suffices. ``config`` wins over the files' embedded config; without either, ``5b``."""
    vqvae_file = require_weights_file(vqvae_path, VQVAE_FILENAME, "Jukebox VQ-VAE")
    prior_file = require_weights_file(prior_path, PRIOR_FILENAME, "Jukebox top-level prior")
    config = config or config_for_files(vqvae_file, prior_file)
    layer = config.check_layer(layer)
    check_stored_layers(prior_file, layer)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    _check_resources(config, layer, device, dtype, prior_file)
    vqvae, prior = _build_on_meta(config, layer)
    load_strict(vqvae, read_jukebox_state_dict(vqvae_file), str(vqvae_file))
    log.info("loading Jukebox prior layers 1..%d from %s", layer, prior_file)
    load_strict(prior, read_jukebox_state_dict(prior_file, keys_up_to_layer(layer)), str(prior_file))
    return JukeboxFeatureExtractor(vqvae, prior, device, dtype, weights_id=weights_fingerprint(vqvae_file, prior_file),
                                   **extractor_options)


def extract_jukebox_features(waveform_mono_44k: np.ndarray, layer: int = DEFAULT_LAYER, fps: float = DEFAULT_FPS,
                             vqvae_path: Optional[PathLike] = None, prior_path: Optional[PathLike] = None,
                             device: Union[str, torch.device] = "cpu", dtype: DtypeLike = torch.float32,
                             control: Optional[RunControl] = None, config: Optional[JukeboxConfig] = None,
                             backend: str = "native") -> np.ndarray:
    """Jukebox layer-``layer`` features of mono 44.1 kHz music (S,) -> (floor(S/44100*fps), width)
    float32 (width 4800 for ``5b``; the architecture comes from ``config``, else the files).

    Loads the models on every call; keep a :class:`JukeboxFeatureExtractor` (from
    :func:`load_jukebox`, or :class:`.reuse.ExtractorCache`) to reuse them.
    ``backend="jukemirlib"`` runs jukemirlib instead (if installed) with the same windowing,
    for cross-checking.
    """
    if backend == "jukemirlib":
        from .jukemirlib_backend import extract_with_jukemirlib
        return extract_with_jukemirlib(waveform_mono_44k, layer, fps, vqvae_path, prior_path, device, control)
    if backend != "native":
        raise InputError(f"backend must be 'native' or 'jukemirlib', got {backend!r}")
    extractor = load_jukebox(vqvae_path, prior_path, layer, device, dtype, config)
    return extractor.extract(waveform_mono_44k, fps, layer, control)
