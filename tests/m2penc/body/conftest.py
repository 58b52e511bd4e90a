"""Fixtures for the body-model tests: the open body, and a synthetic model file in SMPL's exact layout.

The synthetic SMPL is plausible, not random noise: its template is the open body's rest mesh
(padded to SMPL's 6890 vertices and 13776 faces), shifted so the rest pelvis sits where SMPL's
does (~0.22 m below the origin); each joint is regressed (a ``scipy.sparse.csc_matrix``, as in
the real file) from two vertices 1 cm either side of it; ``shapedirs`` is a chumpy ``Ch`` object
(SMPL 1.0 files hold those), pickled through a stand-in ``chumpy.ch`` module at protocol 2 with
latin-1-compatible strings, like the real file.
"""
from __future__ import annotations

import contextlib
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from m2pdance.m2penc.body import OpenBody
from m2pdance.m2penc.body.skeleton import PARENTS, rest_joints, rest_offsets

SMPL_V, SMPL_F = 6890, 13776
#: Rest pelvis of the synthetic model (SMPL's neutral one is about here).
SYNTHETIC_PELVIS = np.array([0.0012, -0.2236, 0.0282])


@pytest.fixture(scope="session")
def open_body() -> OpenBody:
    """The default open body, float32 on the CPU (tests must not modify it)."""
    return OpenBody()


@contextlib.contextmanager
def fake_chumpy():
    """Install a minimal ``chumpy.ch`` module whose ``Ch`` pickles like chumpy's (state dict with
    ``x`` and a set of dirty names); yields the ``Ch`` class."""

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x, dtype=np.float64)
            self._dirty_vars = {"x"}
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch, package.ch = Ch, module
    saved = {name: sys.modules.get(name) for name in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        yield Ch
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def synthetic_smpl_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """SMPL's required keys with SMPL's shapes and dtypes (J_regressor dense here)."""
    body = OpenBody()
    rest = body.rest_vertices.double().numpy()
    weights = body.lbs_weights.double().numpy()
    faces = body.faces.numpy()
    joints = rest_joints(rest_offsets(dtype=torch.float64)).numpy()
    n = rest.shape[0]
    rng = np.random.default_rng(seed)
    side = np.array([0.01, 0.0, 0.0])
    extra = rng.choice(n, SMPL_V - n - 48)
    vertices = np.concatenate([rest, joints + side, joints - side, rest[extra]]) + SYNTHETIC_PELVIS
    joint_weights = np.eye(24)[np.r_[0:24, 0:24]]
    regressor = np.zeros((24, SMPL_V))
    regressor[np.r_[0:24, 0:24], n + np.arange(48)] = 0.5
    kintree = np.array([[4294967295] + list(PARENTS[1:]), list(range(24))], dtype=np.int64)
    return {
        "v_template": vertices,
        "f": np.concatenate([faces, faces[rng.choice(len(faces), SMPL_F - len(faces))]]).astype(np.uint32),
        "weights": np.concatenate([weights, joint_weights, weights[extra]]),
        "J_regressor": regressor,
        "kintree_table": kintree,
        "shapedirs": rng.normal(0.0, 0.01, (SMPL_V, 3, 10)),
        "posedirs": rng.normal(0.0, 0.002, (SMPL_V, 3, 207)),
    }


def write_smpl_pickle(path: Path, arrays: dict[str, np.ndarray], protocol: int = 2) -> Path:
    """Pickle ``arrays`` like SMPL's release: sparse ``J_regressor``, chumpy ``shapedirs``, extra keys."""
    with fake_chumpy() as Ch:
        data = dict(arrays)
        data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
        data["shapedirs"] = Ch(arrays["shapedirs"])
        data.update({"bs_style": "lbs", "bs_type": "lrotmin",
                     "J": arrays["J_regressor"] @ arrays["v_template"]})
        with open(path, "wb") as handle:
            pickle.dump(data, handle, protocol=protocol)
    return path


@pytest.fixture(scope="session")
def smpl_arrays() -> dict[str, np.ndarray]:
    return synthetic_smpl_arrays()


@pytest.fixture(scope="session")
def smpl_file(tmp_path_factory, smpl_arrays) -> Path:
    """``models/smpl/SMPL_NEUTRAL.pkl`` in a session folder, in SMPL's pickled layout."""
    folder = tmp_path_factory.mktemp("models") / "smpl"
    folder.mkdir()
    return write_smpl_pickle(folder / "SMPL_NEUTRAL.pkl", smpl_arrays)


@pytest.fixture(scope="session")
def smpl_body(smpl_file):
    from m2pdance.m2penc.body import load_smpl

    return load_smpl(smpl_file)
