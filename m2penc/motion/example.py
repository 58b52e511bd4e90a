"""A small procedural example dance the pack ships in place of AIST++ (which it may not redistribute).

Two seconds at 30 fps of a side-to-side groove: the hips sway and bounce twice per second (120 BPM),
the arms swing up in alternation and the head nods, all smooth sinusoids of SMPL joint rotations.
It exists so the motion workflows run out of the box; it is not a learned or captured dance.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .format import SMPLMotion
from .io import save_motion

#: File name the example workflows load from ComfyUI's input folder.
EXAMPLE_MOTION = "m2pdance_example_motion.npz"
EXAMPLE_FPS = 30.0
#: Beats per second of the groove (120 BPM).
BEAT_HZ = 2.0


def example_motion(seconds: float = 2.0, fps: float = EXAMPLE_FPS) -> SMPLMotion:
    """The example groove, y-up, pelvis about 0.95 m above the floor."""
    t = np.arange(int(round(seconds * fps))) / fps
    beat = 2 * math.pi * BEAT_HZ * t
    poses = np.zeros((len(t), 24, 3), dtype=np.float32)
    poses[:, 0, 1] = 0.25 * np.sin(beat / 2)                   # pelvis turns left/right once per two beats
    poses[:, 3, 2] = 0.10 * np.sin(beat / 2)                   # spine leans with it
    poses[:, 15, 0] = 0.15 * np.sin(beat)                      # head nods on the beat
    for knee in (4, 5):
        poses[:, knee, 0] = 0.25 * (1 - np.cos(beat))         # knees bend on every beat (bounce)
    for hip in (1, 2):
        poses[:, hip, 0] = -0.12 * (1 - np.cos(beat))
    poses[:, 16, 2] = -0.9 - 0.6 * np.sin(beat / 2)            # left arm (about z) swings up and down
    poses[:, 17, 2] = 0.9 - 0.6 * np.sin(beat / 2)             # right arm, in opposition
    poses[:, 18, 1] = -0.5 - 0.3 * np.sin(beat)                # elbows pump
    poses[:, 19, 1] = 0.5 - 0.3 * np.sin(beat)
    trans = np.stack([0.08 * np.sin(beat / 2), 0.95 - 0.04 * (1 - np.cos(beat)), np.zeros_like(t)], axis=1)
    return SMPLMotion(poses=poses, trans=trans.astype(np.float32), fps=fps)


def write_example_motion(input_dir: str | Path) -> Path:
    """Write :data:`EXAMPLE_MOTION` into ``input_dir`` (atomically); returns its path."""
    return save_motion(example_motion(), Path(input_dir) / EXAMPLE_MOTION)
