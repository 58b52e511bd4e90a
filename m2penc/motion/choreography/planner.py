"""Beats in, dance out: choosing the moves, timing them on the beats, limiting speed, grounding.

Why this shape: a choreographer for tests, demos and synthetic data must be deterministic (one
seeded ``np.random.Generator`` makes every choice), always on the beat (moves are functions of
beat phase, :mod:`.timeline`) and physically tame (a speed limiter and :mod:`.grounding`).

1. **Plan** - the beats are cut into segments of 4 or 8 beats aligned to beat 0; each segment
   gets a move whose ``level`` is close to the music's level over it (loudness per beat, plus
   off-beat onsets as "busyness"), a side (mirror) and repeats; the same move twice in a row is
   discouraged (``variety`` :data:`VARIETIES` says how; ``looped``: one-beat segments of loops).
2. **Time** - every frame gets its beat phase; each segment's move is evaluated in its own phase
   and cross-faded into the next over the next segment's first beat (:func:`.timeline.segment_weight`),
   which keeps the stops on the beats.
3. **Scale** - per-beat amplitude ``intensity * (0.55 + 0.45 * energy)`` around the resting stance.
4. **Limit** - the output is checked with forward kinematics: any beat interval where a joint moves
   faster than ``max_joint_speed`` (default :data:`MAX_JOINT_SPEED`) or a joint rotates faster than
   :data:`MAX_ANGULAR_SPEED` (finite differences at the output fps) has its amplitude reduced, then
   checked again.
5. **Ground** - feet on the floor, planted feet still (:func:`.grounding.ground`).

:func:`plan_dance` exposes steps 1-2 (which move when) for inspection; :func:`choreograph` does all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import numpy as np
import torch

from ...body.rotations import axis_angle_to_quaternion
from ...errors import InputError
from ...timeline import rational_fps
from ..format import SMPLMotion
from .grounding import ground, joint_positions
from .moves import LEFT, LOOPS, MOVES, REST, RIGHT, Move, flatten_feet, to_axis_angle
from .timeline import beat_grid, beat_phase, hit, segment_weight, smoothstep

#: Default limit on any joint's speed (m/s, forward kinematics, finite differences at the output fps) ...
MAX_JOINT_SPEED = 5.0
#: ... and the range a caller may set it in (``choreograph(max_joint_speed=...)``).
JOINT_SPEED_RANGE = (0.5, 12.0)
#: Hard limit on any joint's local rotation speed (rad/s); per frame at most this / fps.
MAX_ANGULAR_SPEED = 12.0
#: Spread of the level match when choosing moves, and the weight left to repeating the last move.
LEVEL_SPREAD, REPEAT_WEIGHT = 0.3, 0.15
#: The limiter aims this far below the limits (float32 output, and margin for the caller's own checks).
LIMIT_MARGIN = 0.98
#: How moves are chosen: ``seeded`` (random lengths, moves drawn near the music's level, random sides:
#: varied dances) or ``by_level`` (4-beat segments, the move whose level is nearest the music's, leading
#: left: the dance is a function of the music alone) or ``looped`` (every beat one loop of
#: :data:`~.moves.LOOPS`, the one nearest that beat's level: the pose is a function of the time inside the
#: beat and the local level, which a regressor such as M2PEnc can learn from any window of the music).
VARIETIES = ("seeded", "by_level", "looped")
#: Rounds of the per-beat speed limiter, then of the last resort (scaling the whole dance by 0.9).
LIMIT_ROUNDS, SHRINK_ROUNDS = 8, 40


@dataclass(frozen=True)
class Segment:
    """``move`` danced from beat ``start`` for ``beats`` beats, leading with ``side`` (+1 left, -1 right)."""

    move: Move
    start: int
    beats: int
    side: int


def plan_moves(first: int, last: int, level: np.ndarray, rng: np.random.Generator,
               variety: str = "seeded") -> list[Segment]:
    """Segments covering beats ``[first, last]``; ``level`` ``(last - first + 1,)`` in 0..1 per beat;
    ``variety`` one of :data:`VARIETIES` (``by_level`` draws nothing from ``rng``)."""
    if variety not in VARIETIES:
        raise InputError(f"variety must be one of {VARIETIES}, got {variety!r}")
    if variety == "looped":
        return [Segment(min(LOOPS, key=lambda m: abs(m.level - float(level[min(k - first, level.size - 1)]))),
                        k, 1, LEFT) for k in range(first, last + 1)]
    segments: list[Segment] = []
    start = 4 * math.floor(first / 4)
    previous: Optional[Move] = None
    while start <= last:
        length = 4 if variety == "by_level" else int(rng.choice([4, 8]))
        span = level[np.clip(np.arange(start, start + length) - first, 0, level.size - 1)]
        target = float(span.mean())
        if variety == "by_level":
            move = min(MOVES, key=lambda m: abs(m.level - target))
            side = LEFT
        else:
            weights = np.array([math.exp(-((m.level - target) / LEVEL_SPREAD) ** 2)
                                * (REPEAT_WEIGHT if m is previous else 1.0) for m in MOVES])
            move = MOVES[int(rng.choice(len(MOVES), p=weights / weights.sum()))]
            side = int(rng.choice([LEFT, RIGHT]))
        segments.append(Segment(move, start, length, side))
        previous, start = move, start + length
    return segments


def dance_angles(segments: list[Segment], phase: np.ndarray) -> np.ndarray:
    """``(T,)`` beat phase -> ``(T, 24, 3)`` angles: each segment's move, cross-faded into the next."""
    angles = np.zeros((phase.size, 24, 3))
    for j, seg in enumerate(segments):
        end = seg.start + seg.beats
        lo = -np.inf if j == 0 else seg.start
        hi = np.inf if j == len(segments) - 1 else end + 1
        frames = (phase >= lo) & (phase < hi)
        if not frames.any():
            continue
        p = phase[frames]
        fade_in = 1.0 if j == 0 else segment_weight(p, seg.start)
        weight = fade_in * (1.0 if hi == np.inf else 1 - segment_weight(p, end))
        angles[frames] += np.asarray(weight)[..., None, None] * seg.move(p - seg.start, seg.side)
    return angles


def _keyed_amplitude(phase: np.ndarray, first: int, keys: np.ndarray) -> np.ndarray:
    """Eased per-beat amplitude: ``keys[k - first]`` at phase ``k``, zero slope there."""
    k = np.floor(phase).astype(np.int64)
    a, b = keys[np.clip(k - first, 0, keys.size - 1)], keys[np.clip(k + 1 - first, 0, keys.size - 1)]
    return a + (b - a) * smoothstep(hit(phase - k))


def _render(segments: list[Segment], phase: np.ndarray, first: int,
            amplitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude-scaled, foot-levelled SMPL axis-angle ``(T, 24, 3)`` and grounded pelvis ``(T, 3)``."""
    scale = _keyed_amplitude(phase, first, amplitude)[:, None, None]
    poses = to_axis_angle(flatten_feet(REST + scale * (dance_angles(segments, phase) - REST)))
    return poses, ground(poses)


def _speed_excess(poses: np.ndarray, trans: np.ndarray, fps: float, max_joint_speed: float) -> np.ndarray:
    """``(T - 1,)``: per frame step, the largest of joint speed / ``max_joint_speed`` and rotation speed / limit."""
    positions = joint_positions(poses, trans)
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=-1).max(axis=1) * fps
    quats = axis_angle_to_quaternion(torch.from_numpy(poses)).numpy()
    dots = np.clip(np.abs((quats[1:] * quats[:-1]).sum(-1)), 0.0, 1.0)
    turn = (2 * np.arccos(dots)).max(axis=1) * fps
    return np.maximum(speed / max_joint_speed, turn / MAX_ANGULAR_SPEED)


def _levels(beats: np.ndarray, ks: np.ndarray, energy: Optional[np.ndarray],
            onsets: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per beat ``k`` in ``ks``: (energy 0..1, music level 0..1 = energy and off-beat onset busyness)."""
    index = np.clip(ks, 0, beats.size - 1)
    if energy is None:
        e = np.full(ks.size, 0.5)
    else:
        e = np.clip(np.asarray(energy, dtype=np.float64), 0.0, 1.0)
        if e.shape != beats.shape:
            raise InputError(f"energy must hold one value per beat, shape {beats.shape}, got {e.shape}; "
                             "pass Rhythm.energy_per_beat for the same beats, or None")
        e = e[index]
    busy = np.zeros(ks.size)
    if onsets is not None and np.size(onsets):
        onset_phase = beat_phase(np.asarray(onsets, dtype=np.float64).reshape(-1), beats)
        off_beat = np.abs(onset_phase - np.round(onset_phase)) > 0.15
        slot = np.floor(onset_phase[off_beat]).astype(np.int64) - ks[0]
        counts = np.bincount(slot[(slot >= 0) & (slot < ks.size)], minlength=ks.size)
        busy = np.clip(counts / 2.0, 0.0, 1.0)
    return e, np.clip(0.75 * e + 0.25 * busy, 0.0, 1.0)


def check_joint_speed(value: object) -> float:
    """``value`` as a joint speed limit in m/s (a float) within :data:`JOINT_SPEED_RANGE`, or :class:`InputError`."""
    if isinstance(value, bool):
        raise InputError(f"max_joint_speed must be a number of m/s in {list(JOINT_SPEED_RANGE)}, got {value!r}")
    return _number("max_joint_speed", value, *JOINT_SPEED_RANGE, f"m/s; {MAX_JOINT_SPEED:g} is the default")


def _number(name: str, value: object, lo: float, hi: float, hint: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and lo <= number <= hi):
        raise InputError(f"{name} must be a number in [{lo:g}, {hi:g}] ({hint}), got {value!r}")
    return number


@dataclass(frozen=True)
class DancePlan:
    """What the choreographer decided before any angle is computed.

    Attributes:
        segments: the moves in order (:class:`Segment`).
        phase: ``(T,)`` beat phase of every output frame (``k`` at beat ``k``).
        first: the beat index of ``energy[0]`` (``floor(phase[0])``, may be negative).
        energy: per-beat energy 0..1 for beats ``first, first + 1, ...`` (past the last frame too).
    """

    segments: list[Segment]
    phase: np.ndarray
    first: int
    energy: np.ndarray


def plan_dance(beat_times: np.ndarray, duration: float, fps: float, *, energy: Optional[np.ndarray] = None,
               onsets: Optional[np.ndarray] = None, seed: int = 0, num_frames: Optional[int] = None,
               variety: str = "seeded") -> DancePlan:
    """Frame timing and seeded move choice for :func:`choreograph` (same arguments, no intensity)."""
    duration = _number("duration", duration, 1e-9, math.inf, "seconds of music")
    rate = rational_fps(fps)
    count = math.floor(Fraction(duration) * rate) if num_frames is None else int(num_frames)
    if count < 2:
        raise InputError(f"{duration} s at {fps:g} fps gives {count} frame(s); a dance needs at least 2: "
                         "pass longer music or a higher fps")
    if onsets is not None and not np.isfinite(np.asarray(onsets, dtype=np.float64)).all():
        raise InputError("onsets contains NaN/inf; pass finite onset times in seconds, or None")
    beats = beat_grid(beat_times, duration)
    if beats.size != np.size(beat_times):
        energy = None                                  # the fallback grid: per-beat energies do not apply
    phase = beat_phase(np.arange(count) / float(fps), beats)
    first, last = int(np.floor(phase[0])), int(np.floor(phase[-1])) + 1
    beat_energy, level = _levels(beats, np.arange(first, last + 2), energy, onsets)
    segments = plan_moves(first, last, level[:last - first + 1], np.random.default_rng(seed), variety)
    return DancePlan(segments, phase, first, beat_energy)


def choreograph(beat_times: np.ndarray, duration: float, fps: float, *, energy: Optional[np.ndarray] = None,
                onsets: Optional[np.ndarray] = None, seed: int = 0, intensity: float = 1.0,
                num_frames: Optional[int] = None, variety: str = "seeded",
                max_joint_speed: float = MAX_JOINT_SPEED) -> SMPLMotion:
    """A beat-synchronous SMPL dance (y-up, facing +z, pelvis joint at ``trans``), procedural and seeded.

    Args:
        beat_times: ``(K,)`` music beats in seconds, strictly increasing (fewer than 2: a 100 BPM grid).
        duration: seconds of music; the motion has ``floor(duration * fps)`` frames.
        fps: output frame rate.
        energy: ``(K,)`` loudness per beat in 0..1 (amplitude and move choice), or ``None`` (0.5).
        onsets: ``(M,)`` onset times in seconds; off-beat onsets favour livelier moves.
        seed: seeds every random choice; the same arguments give the same motion.
        intensity: amplitude multiplier, 0 (standing still) .. 2 (large; the speed limiter still applies).
        num_frames: frame count when the caller counted it from samples (:func:`m2penc.timeline.frame_count`).
        variety: how moves are chosen (:data:`VARIETIES`).
        max_joint_speed: the speed limit of every joint in m/s, within :data:`JOINT_SPEED_RANGE` (default
            :data:`MAX_JOINT_SPEED`; the one-beat loops need ~7.5 at 120 BPM, where the angular limit takes over).
    Returns:
        ``SMPLMotion`` with ``(T, 24, 3)`` axis-angle poses and ``(T, 3)`` pelvis positions at ``fps``;
        no joint faster than ``max_joint_speed``, no joint turning faster than
        :data:`MAX_ANGULAR_SPEED`, the lowest foot joint on the floor (y = 0) every frame.
    """
    intensity = _number("intensity", intensity, 0.0, 2.0, "1 = normal, 0 = standing still")
    max_joint_speed = check_joint_speed(max_joint_speed)
    plan = plan_dance(beat_times, duration, fps, energy=energy, onsets=onsets, seed=seed, num_frames=num_frames,
                      variety=variety)
    amplitude = intensity * (0.55 + 0.45 * plan.energy)
    for round_ in range(LIMIT_ROUNDS + SHRINK_ROUNDS):
        poses, trans = _render(plan.segments, plan.phase, plan.first, amplitude)
        excess = _speed_excess(poses, trans, float(fps), max_joint_speed) / LIMIT_MARGIN
        if excess.max() <= 1.0:
            break
        if round_ >= LIMIT_ROUNDS:                     # last resort: the whole dance smaller
            amplitude = amplitude * 0.9
            continue
        worst = np.zeros(amplitude.size)
        np.maximum.at(worst, np.floor(plan.phase[1:]).astype(np.int64) - plan.first, excess)
        shrink = np.where(worst > 1.0, 1.0 / np.maximum(worst, 1e-9), 1.0)
        amplitude = amplitude * np.minimum(shrink, np.roll(shrink, 1))   # both keys of a fast interval
    else:
        raise AssertionError(f"the speed limiter did not converge (excess {excess.max():.3f})")
    return SMPLMotion(poses=poses.astype(np.float32), trans=trans.astype(np.float32), fps=fps, up_axis="y")
