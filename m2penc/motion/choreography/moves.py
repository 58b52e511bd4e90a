"""The move library of the beat choreographer: eight dance moves and four one-beat loops as functions of beat phase.

Why a hand-written library: the choreographer is a documented, weight-free stand-in for a learned
dance model (tests, demos, offline users, a third synthetic-data source next to AIST++ and EDGE),
so its moves must be legible, deterministic and on the beat by construction. Each move maps beat
phase ``(T,)`` to joint angles ``(T, 24, 3)`` built only from :func:`.timeline.keyed` and
:func:`.timeline.bump`, so every joint stops on every beat (integer phase) and the pose there is
the move's accent (a clap closing, an arm at the top, knees at the bottom of a bounce).

Angles: column ``(x, y, z)`` of joint ``j`` is the local rotation ``R = R_y(y) R_x(x) R_z(z)``
(radians) in SMPL's body frame (y up, facing +z, left at +x); :func:`to_axis_angle` converts.
Moves are written leading with one side; ``Move(phase, side=-1)`` mirrors them (left <-> right).
Moves return no root offset on purpose: the pelvis position follows from the legs in
:mod:`.grounding` (lowest foot on the floor, planted feet do not slide), so a sway comes from
tilting both legs and a step from moving one leg, never from sliding the body.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch

from ...body.rotations import matrix_to_axis_angle
from ..euler import axis_rotation
from .timeline import bump, hit, keyed, smoothstep

Curve = Union[float, np.ndarray]
LEFT, RIGHT = 1, -1
_HIP, _KNEE, _ANKLE = {LEFT: 1, RIGHT: 2}, {LEFT: 4, RIGHT: 5}, {LEFT: 7, RIGHT: 8}
_COLLAR, _SHOULDER, _ELBOW = {LEFT: 13, RIGHT: 14}, {LEFT: 16, RIGHT: 17}, {LEFT: 18, RIGHT: 19}
SPINE, NECK, HEAD = (3, 6, 9), 12, 15
#: Joint order after a left/right mirror (SMPL's symmetric pairs swapped).
MIRRORED = np.arange(24)
for _a, _b in ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)):
    MIRRORED[_a], MIRRORED[_b] = _b, _a
#: Resting stance: arms hang slightly away from the body, elbows and knees soft.
REST_ARM_LIFT, REST_ELBOW, REST_KNEE = 0.25, 0.3, 0.08


class Pose:
    """Joint angles of ``frames`` frames, starting at the resting stance; setters write absolute
    angles for one body part (arguments are floats or ``(T,)`` curves). ``angles``: ``(T, 24, 3)``."""

    def __init__(self, frames: int):
        self.angles = np.zeros((frames, 24, 3))
        for side in (LEFT, RIGHT):
            self.arm(side, REST_ARM_LIFT, bend=REST_ELBOW)
            self.leg(side, knee=REST_KNEE)

    def arm(self, side: int, lift: Curve, forward: Curve = 0.0, bend: Curve = 0.0, bend_up: Curve = 0.0) -> "Pose":
        """Upper arm ``lift`` radians up from hanging (pi/2 sideways, pi overhead), swung ``forward``
        towards the front; forearm bent ``bend`` towards the front and ``bend_up`` towards the sky."""
        self.angles[:, _SHOULDER[side], 1] = -side * forward
        self.angles[:, _SHOULDER[side], 2] = side * (lift - np.pi / 2)
        self.angles[:, _ELBOW[side], 1] = -side * bend
        self.angles[:, _ELBOW[side], 2] = side * bend_up
        return self

    def leg(self, side: int, flex: Optional[Curve] = None, out: Optional[Curve] = None,
            knee: Optional[Curve] = None, point: Optional[Curve] = None) -> "Pose":
        """Thigh raised ``flex`` forward and ``out`` sideways, ``knee`` bent, toes pointed ``point``
        beyond flat (ankles are levelled later, :func:`flatten_feet`); ``None`` keeps a value."""
        for value, joint, axis, sign in ((flex, _HIP, 0, -1), (out, _HIP, 2, side), (knee, _KNEE, 0, 1),
                                         (point, _ANKLE, 0, 1)):
            if value is not None:
                self.angles[:, joint[side], axis] = sign * value
        return self

    def bounce(self, depth: Curve, lift_left: Curve = 0.0, lift_right: Curve = 0.0) -> "Pose":
        """Both knees bent ``depth`` (thighs forward, shins back: the pelvis sinks straight down),
        plus a per-leg ``lift`` that raises that foot off the floor."""
        for side, lift in ((LEFT, lift_left), (RIGHT, lift_right)):
            self.angles[:, _HIP[side], 0] = -(depth + lift)
            self.angles[:, _KNEE[side], 0] = REST_KNEE + 2 * depth + 2 * lift
        return self

    def spine(self, lean: Curve = 0.0, twist: Curve = 0.0, side_bend: Curve = 0.0) -> "Pose":
        """Torso ``lean`` forward, ``twist`` to its left, ``side_bend`` to its left, spread over three joints."""
        for joint in SPINE:
            self.angles[:, joint] = np.stack(np.broadcast_arrays(lean / 3, twist / 3, side_bend / 3), -1)
        return self

    def head(self, nod: Curve = 0.0, turn: Curve = 0.0, tilt: Curve = 0.0) -> "Pose":
        """Head ``nod`` down, ``turn`` left, ``tilt`` towards the left shoulder (split neck / head)."""
        for joint in (NECK, HEAD):
            self.angles[:, joint] = np.stack(np.broadcast_arrays(nod / 2, turn / 2, tilt / 2), -1)
        return self


def _n(phase: np.ndarray) -> int:
    return int(phase.shape[0])


# -- the moves (written leading with the left side where a side matters) --------------------------

def groove(p: np.ndarray) -> np.ndarray:
    """Bounce with arm pumps (2 beats): knees down on every beat, forearms punch forward in turn."""
    left, right = keyed(p, [1, 0]), keyed(p, [0, 1])
    pose = Pose(_n(p)).bounce(0.26 - 0.12 * bump(p))
    pose.arm(LEFT, 0.35 + 0.45 * left, 0.5 * left, 0.5 + 1.1 * left)
    pose.arm(RIGHT, 0.35 + 0.45 * right, 0.5 * right, 0.5 + 1.1 * right)
    pose.spine(0.1, keyed(p, [-0.25, 0.25]), keyed(p, [0.06, -0.06]))
    return pose.head(0.12, 0.0, keyed(p, [0.12, -0.12])).angles


def hip_sway(p: np.ndarray) -> np.ndarray:
    """Hip sway (2 beats): both legs tilt so the pelvis swings left then right, arms follow."""
    sway = keyed(p, [1, -1])
    pose = Pose(_n(p)).bounce(0.12 - 0.05 * bump(p))
    pose.leg(LEFT, 0.12, -0.13 * sway, REST_KNEE + 0.24).leg(RIGHT, 0.12, 0.13 * sway, REST_KNEE + 0.24)
    pose.arm(LEFT, 0.55 + 0.35 * sway, 0.3, 0.9).arm(RIGHT, 0.55 - 0.35 * sway, 0.3, 0.9)
    return pose.spine(0.05, 0.15 * sway, -0.16 * sway).head(0.0, 0.0, 0.14 * sway).angles


def twist(p: np.ndarray) -> np.ndarray:
    """Torso twist (2 beats): shoulders turn left then right, arms swing across the body."""
    turn = keyed(p, [1, -1])
    pose = Pose(_n(p)).bounce(0.18 - 0.06 * bump(p))
    pose.arm(LEFT, 0.75, 0.2 - 0.55 * turn, 1.2).arm(RIGHT, 0.75, 0.2 + 0.55 * turn, 1.2)
    return pose.spine(0.08, 0.6 * turn, 0.0).head(0.05, -0.3 * turn, 0.0).angles


def step_touch(p: np.ndarray) -> np.ndarray:
    """Step-touch (4 beats): left foot steps out, right closes (clap), right steps out, left closes (clap)."""
    closed = keyed(p, [1, 0, 1, 0])
    pose = Pose(_n(p)).bounce(0.12 + 0.12 * closed, 0.4 * bump(p, [1, 0, 0, 1]), 0.4 * bump(p, [0, 1, 1, 0]))
    pose.leg(LEFT, out=0.24 * keyed(p, [0, 1, 0, 0])).leg(RIGHT, out=0.24 * keyed(p, [0, 0, 0, 1]))
    open_arms = 1 - closed
    for side in (LEFT, RIGHT):
        pose.arm(side, 0.6 + 0.5 * open_arms, 1.25 - 0.9 * open_arms, 1.2 - 0.7 * open_arms)
    return pose.spine(0.1 * closed, 0.0, keyed(p, [0, -0.12, 0, 0.12])).head(0.15 * closed).angles


def clap(p: np.ndarray) -> np.ndarray:
    """Clap and open (2 beats), stepping in place: hands meet in front on beat 1, fly open on beat 2."""
    together = keyed(p, [1, 0])
    pose = Pose(_n(p)).bounce(0.2, 0.3 * bump(p, [1, 0]), 0.3 * bump(p, [0, 1]))
    for side in (LEFT, RIGHT):
        pose.arm(side, 1.2 + 0.1 * together, 1.15 * together + 0.1, 0.45 * together + 0.3)
    return pose.spine(0.12 * together, 0.0, 0.0).head(0.18 * together).angles


def arm_wave(p: np.ndarray) -> np.ndarray:
    """Arm wave (4 beats): left arm high / right low, arms wide, right high / left low, arms wide."""
    high_left, high_right = keyed(p, [1, 0, 0, 0]), keyed(p, [0, 0, 1, 0])
    wide = keyed(p, [0, 1, 0, 1])
    pose = Pose(_n(p)).bounce(0.14 + 0.08 * wide)
    pose.arm(LEFT, 0.7 + 2.0 * high_left + 0.8 * wide + 0.3 * high_right, 0.2, 0.3 + 0.6 * high_right, 0.4 * wide)
    pose.arm(RIGHT, 0.7 + 2.0 * high_right + 0.8 * wide + 0.3 * high_left, 0.2, 0.3 + 0.6 * high_left, 0.4 * wide)
    pose.leg(LEFT, 0.14, 0.08 * (high_left - high_right), REST_KNEE + 0.28)
    pose.leg(RIGHT, 0.14, -0.08 * (high_left - high_right), REST_KNEE + 0.28)
    return pose.spine(0.0, 0.0, 0.2 * (high_right - high_left)).head(0.0, 0.0, 0.1 * (high_right - high_left)).angles


def raise_roof(p: np.ndarray) -> np.ndarray:
    """Raise the roof (2 beats): arms out with forearms up push to the sky on beat 1, pull down on beat 2."""
    push = keyed(p, [1, 0])
    pose = Pose(_n(p)).bounce(0.3 - 0.2 * push)
    for side in (LEFT, RIGHT):
        pose.arm(side, 1.35 + 0.55 * push, 0.35, 0.0, 1.7 - 1.1 * push)
    return pose.spine(0.15 - 0.1 * push).head(0.25 - 0.35 * push).angles


def kick(p: np.ndarray) -> np.ndarray:
    """Knee-up and kick (4 beats): left knee up, kick forward, foot down with a clap, arms open low."""
    up, out, down = keyed(p, [0, 1, 0, 0]), keyed(p, [0, 0, 1, 0]), keyed(p, [0, 0, 0, 1])
    pose = Pose(_n(p)).bounce(0.18 * (1 - up - out) + 0.06)
    pose.leg(LEFT, 0.06 + 1.25 * up + 0.95 * out, 0.0, REST_KNEE + 0.12 + 1.6 * up + 0.05 * out, 0.45 * out)
    low = 1 - up - out - down
    lift = 0.7 * low + 1.1 * out + 1.25 * down
    pose.arm(LEFT, lift + 0.45 * up, -0.3 * up + 1.15 * down, 0.5 + 0.4 * up + 0.15 * down)
    pose.arm(RIGHT, lift + 0.8 * up, 0.9 * up + 1.15 * down, 0.5 + 0.8 * up + 0.15 * down)
    return pose.spine(0.2 * up + 0.12 * out + 0.1 * down).head(0.15 * up + 0.15 * down).angles


@dataclass(frozen=True)
class Move:
    """A named move: ``beats`` long (its keys repeat with that period), suited to music ``level``
    (0 calm .. 1 energetic); ``move(phase, side)`` gives angles ``(T, 24, 3)``, mirrored for side -1."""

    name: str
    beats: int
    level: float
    angles: Callable[[np.ndarray], np.ndarray]

    def __call__(self, phase: np.ndarray, side: int = LEFT) -> np.ndarray:
        angles = self.angles(np.asarray(phase, dtype=np.float64))
        return angles if side == LEFT else mirror(angles)


MOVES: tuple[Move, ...] = (
    Move("groove", 2, 0.25, groove), Move("hip_sway", 2, 0.15, hip_sway), Move("twist", 2, 0.4, twist),
    Move("step_touch", 4, 0.5, step_touch), Move("clap", 2, 0.6, clap), Move("arm_wave", 4, 0.7, arm_wave),
    Move("raise_roof", 2, 0.85, raise_roof), Move("kick", 4, 1.0, kick),
)
#: The resting stance every move is scaled around (amplitude 0 = standing relaxed), ``(24, 3)``.
REST = Pose(1).angles[0]


# -- the loops: one-beat moves for ``variety="looped"`` --------------------------------------------
# Their peaks are sized to read at a glance (arms out to a T, up past the shoulders). Raising an arm that far
# and back inside one beat moves the hands fast (about 7 m/s at 120 BPM, more at faster tempos): at the default
# limit the speed limiter shrinks them; ``choreograph(max_joint_speed=...)`` allows more (the demo recipe dances
# them at 8 m/s, where the angular speed limit sets most of their size).

def _loop(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - cos 2 pi s, sin 2 pi s)`` with ``s`` the eased time inside each beat: a closed loop that
    leaves the resting stance on a beat, travels without stopping and is back at rest, at rest speed 0,
    on the next beat. Both curves are ``(T,)``; the speed's only minimum in a beat is on the beat."""
    s = smoothstep(hit(p - np.floor(p)))
    return 1.0 - np.cos(2 * np.pi * s), np.sin(2 * np.pi * s)


def sway_loop(p: np.ndarray) -> np.ndarray:
    """Hips circle (1 beat): a dip that swings left and back, arms float out and forward, elbows bent."""
    ring, swing = _loop(p)
    pose = Pose(_n(p)).bounce(0.09 * ring)
    pose.leg(LEFT, None, -0.1 * swing).leg(RIGHT, None, 0.1 * swing)
    for arm in (LEFT, RIGHT):
        pose.arm(arm, REST_ARM_LIFT + 0.35 * ring, 0.2 * ring, REST_ELBOW + 0.35 * ring)
    return pose.spine(0.05 * ring, 0.0, -0.12 * swing).head(0.0, 0.0, 0.12 * swing).angles


def pump_loop(p: np.ndarray) -> np.ndarray:
    """Roof pump (1 beat): elbows out towards shoulder height, forearms up, and back down; knees give."""
    ring, swing = _loop(p)
    pose = Pose(_n(p)).bounce(0.08 * ring)
    for arm in (LEFT, RIGHT):
        pose.arm(arm, REST_ARM_LIFT + 0.6 * ring, 0.15 * swing, REST_ELBOW + 0.2 * ring, 0.6 * ring)
    return pose.spine(0.06 * ring, 0.15 * swing).head(0.08 * ring).angles


def circle_loop(p: np.ndarray) -> np.ndarray:
    """Arm circles (1 beat): both arms sweep out to a T and back down the front."""
    ring, swing = _loop(p)
    pose = Pose(_n(p)).bounce(0.1 * ring)
    for arm in (LEFT, RIGHT):
        pose.arm(arm, REST_ARM_LIFT + 0.75 * ring, 0.3 * swing, REST_ELBOW)
    return pose.spine(0.0, 0.0, 0.08 * swing).head(-0.06 * ring).angles


def reach_loop(p: np.ndarray) -> np.ndarray:
    """Reach up (1 beat): a deep dip, both arms thrown up past the shoulders and circling back down."""
    ring, swing = _loop(p)
    pose = Pose(_n(p)).bounce(0.14 * ring)
    pose.leg(LEFT, None, 0.06 * swing).leg(RIGHT, None, -0.06 * swing)
    for arm in (LEFT, RIGHT):
        pose.arm(arm, REST_ARM_LIFT + 1.1 * ring, 0.25 * swing - 0.1 * ring, REST_ELBOW - 0.1 * ring)
    return pose.spine(-0.05 * ring, 0.0, 0.1 * swing).head(-0.12 * ring).angles
#: The one-beat loops (``variety="looped"``): every one is at the resting stance, still, on every beat, so
#: the pose is a function of the time inside the beat and of the music's level, whatever came before.
LOOPS: tuple[Move, ...] = (
    Move("sway_loop", 1, 0.2, sway_loop), Move("pump_loop", 1, 0.45, pump_loop),
    Move("circle_loop", 1, 0.7, circle_loop), Move("reach_loop", 1, 0.95, reach_loop),
)


def mirror(angles: np.ndarray) -> np.ndarray:
    """Left/right mirror of ``(..., 24, 3)`` angles: swap symmetric joints, negate y and z angles."""
    return angles[..., MIRRORED, :] * np.array([1.0, -1.0, -1.0])


def flatten_feet(angles: np.ndarray) -> np.ndarray:
    """Ankles counter-rotated so the soles stay level whatever hips and knees do; ``(T, 24, 3)``."""
    out = angles.copy()
    for side in (LEFT, RIGHT):
        out[:, _ANKLE[side], 0] -= angles[:, _HIP[side], 0] + angles[:, _KNEE[side], 0]
        out[:, _ANKLE[side], 2] -= angles[:, _HIP[side], 2]
    return out


def to_axis_angle(angles: np.ndarray) -> np.ndarray:
    """``(..., 24, 3)`` angles (``R = R_y R_x R_z``) -> SMPL axis-angle ``(..., 24, 3)`` float64."""
    matrix = axis_rotation(1, angles[..., 1]) @ axis_rotation(0, angles[..., 0]) @ axis_rotation(2, angles[..., 2])
    return matrix_to_axis_angle(torch.from_numpy(matrix)).numpy()
