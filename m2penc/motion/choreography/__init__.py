"""The beat choreographer: music beats in, a beat-synchronous SMPL dance out, no weights.

A clearly labelled stand-in for a learned dance model, so tests, the demo and offline users always
have a motion source, and a third source of synthetic training motion next to AIST++ and EDGE. It
is procedural: eight hand-written moves (:mod:`.moves`) chosen per 4 or 8 beats by a seeded
planner (:mod:`.planner`), every joint stopping on every beat (:mod:`.timeline`), speeds limited,
feet kept on the floor (:mod:`.grounding`). It knows nothing about audio: the music analysis
(beats, energy, onsets) lives in ``m2penc.audio.rhythm``, which also offers
``music_choreography(audio, fps, seed, intensity)``.
"""
from __future__ import annotations

from .grounding import CONTACT_HEIGHT, FLOOR, SOFT_FLOOR, ground, joint_positions
from .moves import MOVES, Move, mirror
from .planner import (JOINT_SPEED_RANGE, MAX_ANGULAR_SPEED, MAX_JOINT_SPEED, DancePlan, Segment, check_joint_speed,
                      choreograph, plan_dance, plan_moves)
from .timeline import FALLBACK_BPM, beat_phase

__all__ = [
    "CONTACT_HEIGHT", "DancePlan", "FALLBACK_BPM", "FLOOR", "JOINT_SPEED_RANGE", "MAX_ANGULAR_SPEED",
    "MAX_JOINT_SPEED", "MOVES", "Move", "SOFT_FLOOR", "Segment", "beat_phase", "check_joint_speed", "choreograph",
    "ground", "joint_positions", "mirror", "plan_dance", "plan_moves",
]
