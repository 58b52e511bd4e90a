"""Beat time as a continuous *phase*, and the two curve shapes every move is built from.

Why: Bailando's beat alignment finds *kinematic* beats at local minima of joint speed. If every
joint angle of a dance is a function of the beat phase ``p`` (``p = k`` exactly at music beat
``k``) whose derivative vanishes at integer ``p``, the whole body momentarily stops on every beat
and the movement accents land on the music, whatever the tempo or tempo drift. Two shapes do it:

* :func:`keyed` - eased interpolation through one key value per beat (:func:`smoothstep`, zero
  slope and curvature at both ends, peak speed near mid-beat). This carries the poses.
* :func:`bump` - ``sin^2(pi u)`` inside chosen beat intervals: an excursion that leaves and
  returns with zero slope (a lifted foot, a bounce). Its own slope also vanishes mid-beat, so
  moves keep bumps small next to the keyed motion to avoid extra speed minima between beats.

Both read the time inside a beat interval through :func:`hit`, a slight asymmetry (leave slowly,
arrive fast) that puts the accent on the beat and makes each speed minimum a single frame.

Not to be confused with :mod:`m2penc.timeline` (the video frame count); this is the musical one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...errors import InputError

#: Tempo of the fallback beat grid used when the music has fewer than two beats (BPM).
FALLBACK_BPM = 100.0
#: Asymmetry of every beat interval (:func:`hit`), in (-1, 1); negative = arrive faster than leave.
#: -0.1 breaks speed ties around beats while keeping the smoothed speed minimum within ~0.2 frames
#: of the beat at 60 fps (-0.25 drifted it 1-2 frames late, +0.1 1.3 frames early).
HIT = -0.1


def check_beats(beat_times: np.ndarray) -> np.ndarray:
    """``(K,)`` beat times in seconds as float64, checked: finite and strictly increasing."""
    beats = np.asarray(beat_times, dtype=np.float64)
    if beats.ndim != 1:
        raise InputError(f"beat_times must be a 1-D array of seconds, got shape {beats.shape}")
    if not np.isfinite(beats).all():
        raise InputError("beat_times contains NaN/inf; pass finite beat times in seconds")
    steps = np.diff(beats)
    if (steps <= 0).any():
        k = int(np.flatnonzero(steps <= 0)[0])
        raise InputError(f"beat_times must be strictly increasing, but beat {k + 1} ({beats[k + 1]:.3f} s) "
                         f"does not follow beat {k} ({beats[k]:.3f} s); sort them and drop duplicates")
    return beats


def beat_grid(beat_times: np.ndarray, duration: float) -> np.ndarray:
    """The beats to dance on: ``beat_times`` itself, or a :data:`FALLBACK_BPM` grid over ``duration``
    when fewer than two beats were found (silence, ambient music): the dancer still grooves."""
    beats = check_beats(beat_times)
    if beats.size >= 2:
        return beats
    period = 60.0 / FALLBACK_BPM
    start = beats[0] % period if beats.size else 0.5 * period
    return np.arange(start, max(duration, start + 2 * period) + period, period)


def beat_phase(times: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """``(T,)`` seconds -> ``(T,)`` beat phase: ``k + (t - b_k) / (b_{k+1} - b_k)`` between beats.

    ``beats``: ``(K >= 2,)`` increasing seconds. Before the first and after the last beat the
    phase continues linearly with the first/last beat interval (negative before beat 0).
    """
    t = np.asarray(times, dtype=np.float64)
    index = np.arange(beats.size, dtype=np.float64)
    phase = np.interp(t, beats, index)
    first, last = beats[1] - beats[0], beats[-1] - beats[-2]
    phase = np.where(t < beats[0], (t - beats[0]) / first, phase)
    return np.where(t > beats[-1], index[-1] + (t - beats[-1]) / last, phase)


def hit(u: np.ndarray) -> np.ndarray:
    """Time inside a beat interval, warped: ``u + HIT * u (1 - u)`` leaves a beat slowly and arrives
    at the next quickly (slope ``1 + HIT`` at 0, ``1 - HIT`` at 1). The accent lands *on* the beat,
    and speed around a beat is never mirror-symmetric, so the speed minimum is one frame, not a
    two-frame tie that a strict local-minimum test (Bailando's) would miss."""
    return u + HIT * u * (1.0 - u)


def smoothstep(u: np.ndarray) -> np.ndarray:
    """``6u^5 - 15u^4 + 10u^3`` on ``[0, 1]`` (Perlin's smootherstep): 0 -> 1 with zero slope and
    curvature at both ends, peak slope 1.875 at 0.5. The flat ends make a deep, wide speed valley
    on the beat that survives the 5-frame smoothing of the beat-alignment metric."""
    return u * u * u * (u * (6.0 * u - 15.0) + 10.0)


def keyed(phase: np.ndarray, keys: Sequence[float]) -> np.ndarray:
    """Eased interpolation through per-beat keys, cycling: value ``keys[k % n]`` at phase ``k``.

    ``phase`` ``(T,)`` -> ``(T,)``; zero slope at every integer phase.
    """
    values = np.asarray(keys, dtype=np.float64)
    k = np.floor(phase).astype(np.int64)
    a, b = values[k % values.size], values[(k + 1) % values.size]
    return a + (b - a) * smoothstep(hit(phase - k))


def bump(phase: np.ndarray, on: Sequence[float] = (1.0,)) -> np.ndarray:
    """``sin^2(pi u)`` inside beat interval ``[k, k + 1)``, scaled by ``on[k % n]``; ``(T,)`` -> ``(T,)``."""
    gains = np.asarray(on, dtype=np.float64)
    k = np.floor(phase).astype(np.int64)
    return gains[k % gains.size] * np.sin(np.pi * hit(phase - k)) ** 2


def segment_weight(phase: np.ndarray, start: float) -> np.ndarray:
    """Cross-fade weight of a move starting at integer phase ``start``: 0 before, smoothstep over
    its first beat, 1 after (zero slope at both beats, so the blend keeps the stops on the beat)."""
    return smoothstep(hit(np.clip(phase - start, 0.0, 1.0)))
