"""One entry point from an AUDIO dict to per-video-frame music features for M2PEnc.

``extract_music_features`` validates and trims the music, looks the result up in the feature
cache, and otherwise runs one of two extractors:

* ``"baseline"``: EDGE's 35-d librosa set (:mod:`.baseline`), seconds on a CPU. The default.
* ``"jukebox"``: 4800-d activations of the Jukebox 5B prior (:mod:`.jukebox_features`), what
  the paper uses; needs the 5B checkpoints and, in practice, a GPU. Self-describing tiny
  weights (:func:`..jukebox.write_tiny_jukebox`) load through the same paths for smoke runs.

Both return :class:`~.featureset.MusicFeatures` with ``N = floor(duration * fps)`` rows.

Jukebox requests are checked (backend, files, layer) before the cache is consulted, and a model
is loaded only on a cache miss, then kept for the next call: pass ``extractor=`` to own it, or
let :data:`.jukebox_features.LOADED` (one model at most) keep it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import torch

from ..device import resolve_device, resolve_dtype
from ..errors import AudioError, InputError
from ..jukebox import JukeboxFeatureExtractor
from ..progress import NO_CONTROL, RunControl
from .baseline import FEATURE_SAMPLE_RATE, baseline_features, hop_length_for
from .cache import FeatureCache, audio_content_hash, cache_key
from .featureset import BASELINE, DEFAULT_FPS, FEATURE_KINDS, JUKEBOX, MusicFeatures
from ..timeline import frame_count
from .io import check_not_silent, resample, to_mono, trim_audio, validate_audio
from .jukebox_features import DEFAULT_LAYER, JUKEBOX_SAMPLE_RATE, JukeboxRun, plan_jukebox

log = logging.getLogger(__name__)

PathLike = Union[str, Path]


def _mono_at(audio: Mapping[str, Any], sample_rate: int) -> np.ndarray:
    """Channel mean of batch item 0, resampled: float32 ``(S,)``."""
    mono = to_mono(audio["waveform"])[0]  # [1, S]
    return resample(mono, audio["sample_rate"], sample_rate)[0].numpy()


def _check_request(audio: Mapping[str, Any], kind: str, fps: float) -> None:
    if kind not in FEATURE_KINDS:
        raise InputError(f"music feature kind must be one of {FEATURE_KINDS}, got {kind!r}")
    if not fps > 0:
        raise InputError(f"fps must be > 0, got {fps!r}")
    if kind == BASELINE:
        hop_length_for(fps)
    if audio["waveform"].shape[0] != 1:
        raise AudioError(
            f"AUDIO holds a batch of {audio['waveform'].shape[0]} clips; music features are computed "
            "for one song at a time (split the batch first)"
        )


def _compute(window: Mapping[str, Any], kind: str, fps: float, num_frames: int, start_bpm: Optional[float],
             jukebox: Optional[JukeboxRun], control: RunControl) -> np.ndarray:
    """The window's features, float32 ``(num_frames, D)``."""
    if kind == BASELINE:
        return baseline_features(_mono_at(window, FEATURE_SAMPLE_RATE), fps, num_frames, start_bpm)
    return jukebox.run(_mono_at(window, JUKEBOX_SAMPLE_RATE), fps, num_frames, control)  # peak-normalised there


def _cache_for(cache: Optional[FeatureCache], extra: Optional[dict[str, Any]]) -> Optional[FeatureCache]:
    """``cache``, unless the extractor's weights cannot be identified (then caching would risk
    serving one model's features for another's)."""
    if cache is not None and extra is None:
        log.info("music features: not cached, the Jukebox extractor was built in memory (no weights_id)")
        return None
    return cache


def extract_music_features(
    audio: Mapping[str, Any],
    kind: str = BASELINE,
    fps: float = DEFAULT_FPS,
    layer: int = DEFAULT_LAYER,
    start: float = 0.0,
    duration: Optional[float] = None,
    jukebox_backend: str = "auto",
    vqvae_path: Optional[PathLike] = None,
    prior_path: Optional[PathLike] = None,
    start_bpm: Optional[float] = None,
    device: Union[str, torch.device, None] = "cpu",
    dtype: Union[str, torch.dtype] = "fp32",
    cache: Optional[FeatureCache] = None,
    control: RunControl = NO_CONTROL,
    extractor: Optional[JukeboxFeatureExtractor] = None,
) -> MusicFeatures:
    """Per-video-frame music features of ``audio[start : start + duration]``.

    Args:
        audio: ComfyUI AUDIO dict ``{"waveform": [1, C, S], "sample_rate": int}``.
        kind: ``"baseline"`` (EDGE's 35-d librosa set) or ``"jukebox"`` (4800-d).
        fps: video frame rate of the output rows (paper: 15; EDGE: 30).
        layer: Jukebox prior layer, 1..72 for the 5B weights (EDGE: 66), 1..depth for others
            (6 for the tiny smoke weights). Ignored for ``"baseline"``.
        start, duration: trim window in seconds (``duration=None``: to the end).
        jukebox_backend: ``"auto"``, ``"own"`` or ``"jukemirlib"``.
        vqvae_path, prior_path: Jukebox weights files, or a folder holding them (``"jukebox"``
            only): OpenAI's ``.pth.tar``, converted or self-describing ``.safetensors``.
        start_bpm: tempo hint for the baseline beat tracker (estimated when ``None``).
        device, dtype: where and how the Jukebox prior runs.
        cache: a :class:`FeatureCache`; ``None`` disables caching.
        control: progress/cancel hooks.
        extractor: a loaded :class:`~..jukebox.JukeboxFeatureExtractor` to use instead of loading
            from the paths (its device/dtype apply). Without it, the last loaded model is kept
            in :data:`.jukebox_features.LOADED` and reused while files and settings match.

    Returns:
        :class:`MusicFeatures` with ``features`` float32 ``(N, D)``, ``N = floor(duration * fps)``;
        ``D`` = 35 (baseline) or the prior width (4800 for the 5B weights).
    """
    audio = validate_audio(audio, allow_silent=True)
    _check_request(audio, kind, fps)
    layer_used = layer if kind == JUKEBOX else None
    source_hash = audio_content_hash(audio)
    jukebox = None
    if kind == JUKEBOX:
        device_ = resolve_device(device)
        jukebox = plan_jukebox(layer, jukebox_backend, vqvae_path, prior_path, device_,
                               resolve_dtype(dtype, device_), extractor)
    extra = {"start_bpm": start_bpm} if kind == BASELINE else jukebox.cache_extra()
    cache = _cache_for(cache, extra)
    key = cache_key(source_hash, kind, layer_used, fps, start, duration, extra)
    if cache is not None and (hit := cache.load(key)) is not None:
        log.info("music features: cache hit %s", cache.path_for(key).name)
        return hit
    window = trim_audio(audio, start, duration)
    check_not_silent(window["waveform"], f"the music window starting at {start:.2f} s")
    num_frames = frame_count(window["waveform"].shape[-1], window["sample_rate"], fps)
    if num_frames < 1:
        raise AudioError(f"music window is {window['waveform'].shape[-1] / window['sample_rate']:.3f} s, "
                         f"shorter than one video frame at {fps} fps")
    rows = _compute(window, kind, fps, num_frames, start_bpm, jukebox, control)
    result = MusicFeatures(features=torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)),
                           fps=float(fps), kind=kind, layer=layer_used, source_hash=source_hash,
                           start_seconds=float(start))
    if cache is not None:
        cache.store(key, result)
    return result
