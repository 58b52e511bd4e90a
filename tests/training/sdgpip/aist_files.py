"""A tiny AIST++ folder in the official layout, generated for tests (3 sequences, 16 frames at 60 fps).

:func:`write_aist_folder` writes it: ``A`` and ``C`` in the train split, ``B`` listed too but on the
ignore list; one camera setting with an isotropic ``c09`` (the video view) and an anisotropic,
distorted ``c01``; half a second of sine music per music id; and, for the non-ignored sequences,
a C09 video whose frame ``i`` shows a bright box over the joints of motion frame ``i`` with grey
level ``100 + 9 i``. :func:`expected_screen` is the hand-written projection the tests compare with, in
the pack's pixel convention (pixel ``i`` covers ``[i, i + 1)``: OpenCV's coordinates + 0.5).
Test modules import it relatively (``from .aist_files import ...``; pytest's importlib mode).
"""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import av
import numpy as np
import soundfile
import torch

from m2pdance.m2penc.body.skeleton import forward_kinematics
from m2pdance.training.sdgpip.aist import AIST_REST_PELVIS_M

A, B, C = "gBR_sBM_cAll_d04_mBR0_ch01", "gBR_sFM_cAll_d05_mBR0_ch02", "gHO_sBM_cAll_d19_mHO5_ch03"
IGNORED = B
#: Motion frames per sequence (60 fps), video size (the c09 calibration's), music samples at MUSIC_RATE.
FRAMES, WIDTH, HEIGHT = 16, 256, 192
MUSIC_RATE, MUSIC_SAMPLES = 22050, 11025
SCALING = {A: 93.0, B: 100.0, C: 104.0}
#: Motion seed of each sequence (:func:`motion_data`).
SEEDS = {A: 0, B: 1, C: 2}
# c09: 180 degrees about x (camera looks along world -z, image down = world -y), 5 m away, 1 m up.
C09 = {"name": "c09", "size": [WIDTH, HEIGHT], "matrix": [[120.0, 0, 128.0], [0, 120.0, 96.0], [0, 0, 1]],
       "distortions": [0.0] * 5, "rotation": [math.pi, 0.0, 0.0], "translation": [0.0, 100.0, 500.0]}
# c01: 90 degrees about y, R = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]; anisotropic K.
C01 = {"name": "c01", "size": [100, 80], "matrix": [[100.0, 0, 50.0], [0, 110.0, 40.0], [0, 0, 1]],
       "distortions": [0.01, 0, 0, 0, 0], "rotation": [0.0, math.pi / 2, 0.0], "translation": [10.0, 20.0, 600.0]}


def motion_data(seed: int, scaling: float) -> dict:
    """An AIST++ motion pickle's dict: ``smpl_poses`` (16, 72), ``smpl_trans`` (16, 3) cm, ``smpl_scaling``."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(0.0, 0.25, (FRAMES, 72))
    poses[:, :3] = rng.normal(0.0, 0.1, (FRAMES, 3))                            # roughly upright
    pelvis_m = np.array([0.1, 0.95, -0.2]) + np.linspace(0, 0.3, FRAMES)[:, None] * [1.0, 0.0, 0.5]
    return {"smpl_poses": poses, "smpl_trans": pelvis_m * scaling, "smpl_scaling": np.array([scaling]),
            "smpl_loss": 1.5}


def expected_screen(data: dict) -> np.ndarray:
    """(N, 24, 2) pixels of the joints in c09, by the module's unit rule and a hand-written projection.

    In the pack's convention: OpenCV's ``f x / z + c`` plus half a pixel (pixel centres at ``i + 0.5``).
    """
    poses = torch.tensor(data["smpl_poses"]).reshape(-1, 24, 3)
    s = float(data["smpl_scaling"][0])
    root = torch.tensor(data["smpl_trans"] / s) + torch.tensor(AIST_REST_PELVIS_M, dtype=torch.float64)
    world = forward_kinematics(poses, root)[0].numpy() * s / 100.0
    cam = world * [1.0, -1.0, -1.0] + [0.0, 1.0, 5.0]
    return np.stack([120.0 * cam[..., 0] / cam[..., 2] + 128.0 + 0.5, 120.0 * cam[..., 1] / cam[..., 2] + 96.0 + 0.5],
                    -1)


def write_video(path: Path, screen: np.ndarray) -> None:
    """16 frames: dark background, a bright box over the frame's joints whose grey level encodes the frame.

    ``screen`` is in the pack's convention, so the box is pixels ``floor(min) .. ceil(max) - 1``.
    """
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "1"}
        for i in range(FRAMES):
            image = np.full((HEIGHT, WIDTH, 3), 20, np.uint8)
            (u0, v0), (u1, v1) = np.floor(screen[i].min(0)).astype(int), np.ceil(screen[i].max(0)).astype(int)
            image[max(v0, 0):v1, max(u0, 0):u1] = 100 + 9 * i
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def write_aist_folder(root: Path) -> Path:
    """Write the tiny AIST++ folder into ``root`` (created if needed; see the module docstring); returns it."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("motions", "splits", "cameras", "music", "videos"):
        (root / sub).mkdir()
    for name in (A, B, C):
        data = motion_data(SEEDS[name], SCALING[name])
        with open(root / "motions" / f"{name}.pkl", "wb") as f:
            pickle.dump(data, f, protocol=4)
        if name != IGNORED:
            write_video(root / "videos" / f"{name.replace('cAll', 'c09')}.mp4", expected_screen(data))
    (root / "splits" / "crossmodal_train.txt").write_text(f"{A}\n{B}\n\n{C}\n")
    (root / "splits" / "crossmodal_val.txt").write_text(f"{A}\n")
    (root / "splits" / "crossmodal_test.txt").write_text(f"{C}\n")
    (root / "ignore_list.txt").write_text(f"{B}\ngWA_sFM_cAll_d27_mWA2_ch21\n")
    (root / "cameras" / "setting1.json").write_text(json.dumps([C01, C09]))
    (root / "cameras" / "mapping.txt").write_text(f"{A} setting1\n{B} setting1\n{C} setting1\n")
    t = np.arange(MUSIC_SAMPLES) / MUSIC_RATE
    soundfile.write(root / "music" / "mBR0.wav", 0.3 * np.sin(2 * np.pi * 440 * t), MUSIC_RATE)
    soundfile.write(root / "music" / "mHO5.wav", 0.3 * np.sin(2 * np.pi * 220 * t), MUSIC_RATE)
    return root
