"""Fixtures for the motion tests: random SMPL motions and a rotation-distance check.

Rotations are compared as matrices (geodesic angle of ``R1^T R2``), never as raw axis-angle
vectors: ``v`` and ``v * (1 - 2 pi / |v|)`` are the same rotation.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch

from m2pdance.m2penc.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from m2pdance.m2penc.motion import SMPLMotion


def rotation_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest angle (radians) between the rotations of two ``(..., 3)`` axis-angle arrays."""
    ra = axis_angle_to_matrix(torch.as_tensor(np.asarray(a, np.float64)))
    rb = axis_angle_to_matrix(torch.as_tensor(np.asarray(b, np.float64)))
    relative = ra.transpose(-1, -2) @ rb
    return float(torch.linalg.vector_norm(matrix_to_axis_angle(relative), dim=-1).max())


def random_poses(rng: np.random.Generator, frames: int, max_angle: float = 3.0) -> np.ndarray:
    """``(frames, 24, 3)`` axis-angle with random axes and angles in ``[0, max_angle)``."""
    axes = rng.normal(size=(frames, 24, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    return (axes * rng.uniform(0, max_angle, size=(frames, 24, 1))).astype(np.float32)


@pytest.fixture
def make_motion() -> Callable[..., SMPLMotion]:
    """``make_motion(frames=10, fps=30, seed=0, up_axis="y", betas=None, max_angle=3.0)``."""
    def make(frames: int = 10, fps: float = 30.0, seed: int = 0, up_axis: str = "y",
             betas=None, max_angle: float = 3.0) -> SMPLMotion:
        rng = np.random.default_rng(seed)
        trans = rng.normal(0, 0.5, size=(frames, 3)).astype(np.float32)
        return SMPLMotion(random_poses(rng, frames, max_angle), trans, fps=fps, betas=betas, up_axis=up_axis)
    return make


@pytest.fixture
def rot_err() -> Callable[[np.ndarray, np.ndarray], float]:
    """:func:`rotation_error` as a fixture (conftest modules are not importable by the tests)."""
    return rotation_error
