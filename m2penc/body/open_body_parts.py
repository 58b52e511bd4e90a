"""The open body's 24 parts: one capsule per SMPL part, placed on the rest skeleton, and how each
part's skin blends into its neighbours.

Part ``j`` is the body region that turns with joint ``j`` (SMPL's and Champ's part convention:
1 left thigh, 4 left calf, 7 left foot, 10 left toes, 16 left upper arm, 18 forearm, 20 palm,
22 fingers, 15 head, ...). Radii are plausible adult ones (thigh 0.085 m at the hip, calf 0.058,
upper arm 0.05, forearm 0.042 at the elbow); the head reaches ~0.23 m above the neck joint and
the soles sit ~1.0 m below the pelvis. Left and right parts are built from each side's own joints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .primitives import Capsule, Vec3

X_AXIS, Y_AXIS, Z_AXIS = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)
#: Largest half-width of a skinning blend band around a joint, metres.
MAX_BAND = 0.05


@dataclass(frozen=True)
class Blend:
    """Skin near ``center`` shared with joint ``partner`` (see ``open_body.skin_weights``).

    ``side="start"``: the partner is the parent side; vertices at or behind ``center`` (along
    ``axis``) share the most, fading to none ``band`` metres ahead. ``side="end"``: the partner is
    the child side; sharing fades in over the ``band`` metres before ``center``. ``reach``, when set,
    limits sharing to vertices within that distance of the line through ``center`` along ``axis``.
    """

    center: Vec3
    axis: Vec3
    partner: int
    side: str
    band: float
    reach: Optional[float] = None


@dataclass(frozen=True)
class PartSpec:
    """Geometry and skinning of the part owned by joint ``owner``."""

    owner: int
    capsule: Capsule
    blends: tuple[Blend, ...]
    detail: float = 1.0


def _v(t: torch.Tensor) -> Vec3:
    return tuple(float(x) for x in t)


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / torch.linalg.vector_norm(t)


def _bone(joints: torch.Tensor, owner: int, end: torch.Tensor, radii_start, radii_end,
          parent: Optional[int], child: Optional[int], width_axis: Vec3 = X_AXIS,
          caps: Optional[tuple[float, float]] = None) -> PartSpec:
    """A limb-like part from joint ``owner`` to point ``end``, blending at both ends along the bone."""
    a = joints[owner]
    axis = _unit(end - a)
    band = min(MAX_BAND, 0.4 * float(torch.linalg.vector_norm(end - a)))
    cap_start, cap_end = caps if caps is not None else (min(radii_start), min(radii_end))
    capsule = Capsule(_v(a), _v(end), radii_start, radii_end, cap_start, cap_end, width_axis)
    blends = []
    if parent is not None:
        blends.append(Blend(_v(a), _v(axis), parent, "start", band))
    if child is not None:
        blends.append(Blend(_v(end), _v(axis), child, "end", band))
    return PartSpec(owner, capsule, tuple(blends))


def _torso(joints: torch.Tensor) -> list[PartSpec]:
    j = joints
    up = torch.tensor(Y_AXIS, dtype=j.dtype)
    pelvis_bottom = j[0] + torch.tensor([0.0, -0.09, -0.01], dtype=j.dtype)
    pelvis = Capsule(_v(pelvis_bottom), _v(j[3]), (0.165, 0.11), (0.145, 0.10), 0.07, 0.04)
    chest_top = j[9] + torch.tensor([0.0, 0.15, -0.02], dtype=j.dtype)
    chest = Capsule(_v(j[9]), _v(chest_top), (0.16, 0.105), (0.17, 0.095), 0.04, 0.065)
    head_center = j[15] + torch.tensor([0.0, 0.035, 0.02], dtype=j.dtype)
    head = Capsule(_v(head_center), _v(head_center), (0.078, 0.095), (0.078, 0.095), 0.105, 0.105, axis=Y_AXIS)
    return [
        PartSpec(0, pelvis, (Blend(_v(j[3]), _v(_unit(j[3] - pelvis_bottom)), 3, "end", MAX_BAND),)),
        _bone(j, 3, j[6], (0.145, 0.10), (0.15, 0.10), parent=0, child=6, caps=(0.04, 0.04)),
        _bone(j, 6, j[9], (0.15, 0.10), (0.16, 0.105), parent=3, child=9, caps=(0.04, 0.04)),
        PartSpec(9, chest, (Blend(_v(j[9]), _v(_unit(chest_top - j[9])), 6, "start", MAX_BAND),
                            Blend(_v(j[12]), _v(up), 12, "end", 0.04, reach=0.07))),
        _bone(j, 12, j[15], (0.055, 0.05), (0.05, 0.048), parent=9, child=15),
        PartSpec(15, head, (Blend(_v(head_center - 0.105 * up), _v(up), 12, "start", 0.04),), detail=1.5),
    ]


def _arm(joints: torch.Tensor, side: int) -> list[PartSpec]:
    """Collar, upper arm, forearm, palm, fingers; ``side`` 0 = left (+x), 1 = right."""
    j = joints
    collar, shoulder, elbow, wrist, hand = (13 + side, 16 + side, 18 + side, 20 + side, 22 + side)
    finger_tip = j[hand] + 0.085 * _unit(j[hand] - j[wrist])
    return [
        _bone(j, collar, j[shoulder], (0.06, 0.06), (0.055, 0.055), parent=9, child=shoulder, width_axis=Z_AXIS),
        _bone(j, shoulder, j[elbow], (0.05, 0.05), (0.042, 0.04), parent=collar, child=elbow, width_axis=Z_AXIS),
        _bone(j, elbow, j[wrist], (0.042, 0.04), (0.032, 0.028), parent=shoulder, child=wrist, width_axis=Z_AXIS),
        _bone(j, wrist, j[hand], (0.042, 0.02), (0.046, 0.017), parent=elbow, child=hand, width_axis=Z_AXIS,
              caps=(0.02, 0.015)),
        _bone(j, hand, finger_tip, (0.044, 0.015), (0.036, 0.011), parent=wrist, child=None, width_axis=Z_AXIS,
              caps=(0.015, 0.012)),
    ]


def _leg(joints: torch.Tensor, side: int) -> list[PartSpec]:
    """Thigh, calf, foot, toes; ``side`` 0 = left (+x), 1 = right."""
    j = joints
    hip, knee, ankle, toe = (1 + side, 4 + side, 7 + side, 10 + side)
    heel = j[ankle] + torch.tensor([0.0, -0.055, -0.045], dtype=j.dtype)
    foot_dir = _unit(j[toe] - heel)
    toe_tip = j[toe] + 0.05 * foot_dir
    foot_band = min(MAX_BAND, 0.4 * float(torch.linalg.vector_norm(j[toe] - heel)))
    calf_dir = _unit(j[ankle] - j[knee])
    # The foot hangs below and in front of its joint: it runs heel -> toe joint and blends with the
    # calf across the ankle's height (along the calf) rather than along its own axis.
    foot = PartSpec(ankle, Capsule(_v(heel), _v(j[toe]), (0.042, 0.035), (0.048, 0.028), 0.035, 0.02, X_AXIS), (
        Blend(_v(j[ankle]), _v(calf_dir), knee, "start", 0.04, reach=0.07),
        Blend(_v(j[toe]), _v(foot_dir), toe, "end", foot_band),
    ))
    return [
        _bone(j, hip, j[knee], (0.085, 0.085), (0.058, 0.058), parent=0, child=knee),
        _bone(j, knee, j[ankle], (0.058, 0.058), (0.04, 0.04), parent=hip, child=ankle),
        foot,
        _bone(j, toe, toe_tip, (0.048, 0.026), (0.042, 0.018), parent=ankle, child=None, caps=(0.02, 0.018)),
    ]


def part_specs(joints: torch.Tensor) -> list[PartSpec]:
    """The 24 parts, sorted by owner joint, for rest joints ``(24, 3)`` float64."""
    parts = _torso(joints) + _arm(joints, 0) + _arm(joints, 1) + _leg(joints, 0) + _leg(joints, 1)
    parts.sort(key=lambda p: p.owner)
    assert [p.owner for p in parts] == list(range(24))
    return parts
