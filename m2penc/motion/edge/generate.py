"""Music features -> an EDGE dance (:class:`~..format.SMPLMotion`, z up, 30 fps), as EDGE's test.py makes one.

The steps: cut the music into windows of ``seq_len`` frames (5 s) every half window (2.5 s),
sample them jointly with :func:`.diffusion.long_ddim_sample` (in-painted overlaps; one window
falls back to :func:`.diffusion.ddim_sample`, as in EDGE), unnormalize, stitch
(:func:`.representation.stitch_windows`), and cut the dance to the music's length.

Deviation from EDGE, on purpose: EDGE uses full windows only and drops the music's tail (and
picks a random run of them). Here windows keep EDGE's hop of exactly half a window (its
in-painting needs it) and continue until the whole music is covered; features past the end
repeat the last frame (as :mod:`...audio.edge_slices` pads its per-slice features), and the
frames they condition are cut away. Music shorter than one window is one padded window.

Two entry points: :func:`edge_motion` takes one feature sequence ``(N, C)`` of the whole song
and slices it; :func:`edge_motion_from_windows` takes features already cut into windows
``(B, L, C)`` (EDGE extracts each 5-s slice on its own; :mod:`...audio.edge_slices` does that).
Same seed, same features, same device -> the same dance: all noise comes from one CPU generator.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional

import torch

from ...errors import InputError
from ...progress import NO_CONTROL, RunControl
from ...timeline import rational_fps
from ..format import SMPLMotion
from .checkpoint import EDGEModelBundle
from .config import FEATURE_DIMS
from .diffusion import DEFAULT_GUIDANCE, long_ddim_sample
from .representation import stitch_windows

#: What each feature kind is, for messages.
FEATURE_NAMES = {"jukebox": "Jukebox 5B layer-66 features (4800-d) at 30 fps",
                 "baseline": "EDGE's 35-d baseline librosa features at 30 fps"}


def window_count(num_frames: int, window: int) -> int:
    """Windows of ``window`` frames every ``window // 2`` needed to cover ``num_frames`` frames (>= 1)."""
    if num_frames < 1 or window < 2 or window % 2:
        raise InputError(f"need >= 1 frame and an even window >= 2, got {num_frames} frames, window {window}")
    return 1 if num_frames <= window else 1 + math.ceil((num_frames - window) / (window // 2))


def slice_windows(features: torch.Tensor, window: int) -> torch.Tensor:
    """``(N, C)`` -> ``(B, window, C)``: windows every ``window // 2`` frames, the tail padded with the last frame."""
    count, hop = window_count(features.shape[0], window), window // 2
    total = window + hop * (count - 1)
    padded = torch.cat([features, features[-1:].expand(total - features.shape[0], -1)])
    return padded.unfold(0, window, hop).transpose(1, 2)


def _check_features(bundle: EDGEModelBundle, features: torch.Tensor, what: str, feature_kind: Optional[str]) -> None:
    config = bundle.config
    need = FEATURE_NAMES.get(config.feature_kind, f"{config.cond_feature_dim}-d features")
    if feature_kind is not None and feature_kind != config.feature_kind:
        raise InputError(f"this EDGE model reads {need}, but {feature_kind!r} features were given; "
                         f"extract {config.feature_kind!r} features or load the matching EDGE checkpoint")
    if not isinstance(features, torch.Tensor) or features.shape[-1] != config.cond_feature_dim:
        width = features.shape[-1] if isinstance(features, torch.Tensor) and features.ndim else None
        guess = {v: k for k, v in FEATURE_DIMS.items()}.get(width)
        got = f"{width}-d features" + (f" (those look like {guess!r} features)" if guess else "")
        raise InputError(f"this EDGE model reads {need}, got {got} in {what}; extract "
                         f"{config.feature_kind!r} features or load the matching EDGE checkpoint")
    if not bool(torch.isfinite(features).all()):
        raise InputError(f"{what} hold NaN/inf values; re-extract the music features")


def edge_motion_from_windows(bundle: EDGEModelBundle, windows: torch.Tensor, num_frames: int, *, seed: int,
                             guidance_weight: float = DEFAULT_GUIDANCE, control: RunControl = NO_CONTROL,
                             feature_kind: Optional[str] = None) -> SMPLMotion:
    """Sample and stitch an EDGE dance from music already cut into windows.

    Args:
        windows: ``(B, L, C)`` features of windows starting every ``L/2`` frames, ``L = seq_len``.
        num_frames: frames of the dance (the music's length at 30 fps), at most ``L + (B-1) L/2``.
        seed: seeds the CPU generator all of the sampler's noise comes from.
        guidance_weight: classifier-free guidance weight (EDGE: 2; long sampling ramps up to it).
        control: progress (one tick per DDIM step) and cancel hook.
        feature_kind: if given, must be the model's (``"jukebox"``/``"baseline"``).
    Returns:
        :class:`SMPLMotion` with ``num_frames`` frames at the model's fps (30), ``up_axis="z"``.
    """
    config = bundle.config
    _check_features(bundle, windows, "the music windows", feature_kind)
    if windows.ndim != 3 or windows.shape[1] != config.seq_len or windows.shape[0] < 1:
        raise InputError(f"music windows must be (B, {config.seq_len}, {config.cond_feature_dim}) for this EDGE "
                         f"model (windows of seq_len={config.seq_len} frames), got {tuple(windows.shape)}")
    count, length = windows.shape[:2]
    covered = length + (length // 2) * (count - 1)
    if not isinstance(num_frames, int) or not 1 <= num_frames <= covered:
        raise InputError(f"num_frames must be an int in [1, {covered}] ({count} windows of {length} frames cover "
                         f"{covered}), got {num_frames!r}")
    if not isinstance(seed, int) or not math.isfinite(float(guidance_weight)):
        raise InputError(f"seed must be an int and guidance_weight a finite number, got {seed!r}, {guidance_weight!r}")
    generator = torch.Generator("cpu").manual_seed(seed)
    x0 = long_ddim_sample(bundle.model, windows, guidance_weight=float(guidance_weight), generator=generator,
                          control=control)
    root, poses = stitch_windows(bundle.normalizer.unnormalize(x0.float().cpu()))
    return SMPLMotion(poses[:num_frames].numpy(), root[:num_frames].numpy(), fps=config.fps, up_axis="z")


def edge_motion(bundle: EDGEModelBundle, features: torch.Tensor, *, seed: int,
                guidance_weight: float = DEFAULT_GUIDANCE, seconds: Optional[float] = None,
                control: RunControl = NO_CONTROL, features_fps: float = 30.0,
                feature_kind: Optional[str] = None) -> SMPLMotion:
    """An EDGE dance for a whole song's features (see the module docstring for the windowing).

    Args:
        features: ``(N, C)`` music features at 30 fps (C = the model's ``cond_feature_dim``).
        seconds: dance only the first ``seconds`` of the music (capped at its length); ``None``: all.
        features_fps: the features' frame rate; must be the model's (30).
        seed, guidance_weight, control, feature_kind: as :func:`edge_motion_from_windows`.
    Returns:
        :class:`SMPLMotion`, ``min(N, floor(seconds * 30))`` frames at 30 fps, ``up_axis="z"``.
    """
    fps = bundle.config.fps
    if rational_fps(features_fps) != rational_fps(fps):
        raise InputError(f"EDGE needs music features at {fps:g} fps, got {features_fps:g} fps; "
                         f"re-extract the features with fps={fps:g}")
    _check_features(bundle, features, "the music features", feature_kind)
    if features.ndim != 2 or features.shape[0] < 1:
        raise InputError(f"music features must be (N, C) with N >= 1 frames, got {tuple(features.shape)}")
    frames = features.shape[0]
    if seconds is not None:
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise InputError(f"seconds must be a positive number or None (the whole music), got {seconds!r}")
        wanted = math.floor(Fraction(seconds).limit_denominator(1_000_000) * rational_fps(fps))
        if wanted < 1:
            raise InputError(f"seconds={seconds} is shorter than one frame at {fps:g} fps")
        frames = min(frames, wanted)
    windows = slice_windows(features[:frames], bundle.config.seq_len)
    return edge_motion_from_windows(bundle, windows, frames, seed=seed, guidance_weight=guidance_weight,
                                    control=control)
