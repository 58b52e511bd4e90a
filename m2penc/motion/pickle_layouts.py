"""The two motion pickle layouts we read: AIST++ motions and EDGE outputs (loaded safely).

* **AIST++** (``motions/<name>.pkl``): ``smpl_poses`` ``(N, 72)`` axis-angle, ``smpl_trans``
  ``(N, 3)`` in the dataset's scaled units, ``smpl_scaling`` ``(1,)``; 60 fps, y up. The pelvis
  position in metres is ``smpl_trans / smpl_scaling`` (what EDGE trains on). Other keys (e.g.
  ``smpl_loss``) are ignored.
* **EDGE output** (``test.py --save_motions``): ``smpl_poses`` ``(N, 72)``, ``smpl_trans``
  ``(N, 3)`` pelvis position in metres, ``full_pose`` ``(N, 24, 3)`` FK joints; 30 fps. EDGE
  writes them straight from its model space, which is **z up** (the y-up -> z-up turn is baked
  into the root rotation; see ``shared/spec/edge/REPORT.md`` section 8), so they load with
  ``up_axis="z"``. Told apart from AIST++ by ``full_pose`` and no ``smpl_scaling``.

EDGE's axis-angles may have angles in (pi, 2 pi) (old pytorch3d); they are valid rotations and
kept as they are.

Both are read by the shared restricted unpickler (:mod:`..safe_pickle`) with :data:`MOTION_PICKLE`:
numpy arrays and plain containers only, nothing from the file is run.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Union

import numpy as np

from ..body.skeleton import NUM_JOINTS
from ..errors import InputError
from ..safe_pickle import PickleRules, load_pickle
from .format import SMPLMotion, check_finite

AIST_FPS = 60.0
EDGE_FPS = 30.0
AIST_KEYS = ("smpl_poses", "smpl_trans", "smpl_scaling")
EDGE_KEYS = ("smpl_poses", "smpl_trans", "full_pose")
#: How motion pickles are read: the base allow-list only (arrays, numbers, containers).
MOTION_PICKLE = PickleRules(kind="motion pickle", fix="Re-export the motion, or save its arrays with numpy "
                                                      "(np.savez) and load the .npz instead")


def _numbers(data: Mapping[str, Any], key: str, name: str) -> np.ndarray:
    value = data[key]
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: {key} must be a numeric array, got {type(value).__name__}") from None
    return array


def _poses_and_trans(data: Mapping[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    poses, trans = _numbers(data, "smpl_poses", name), _numbers(data, "smpl_trans", name)
    if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3:
        raise InputError(f"{name}: smpl_poses must be (N, 72) axis-angle (24 joints x 3), got shape {poses.shape}; "
                         f"the file is not an SMPL motion in AIST++/EDGE layout")
    if poses.shape[0] == 0:
        raise InputError(f"{name}: the motion has 0 frames (smpl_poses is (0, 72)); a motion needs at least one frame")
    if trans.shape != (poses.shape[0], 3):
        raise InputError(f"{name}: smpl_trans must be (N, 3) = {(poses.shape[0], 3)} to match smpl_poses, "
                         f"got shape {trans.shape}")
    poses = poses.reshape(-1, NUM_JOINTS, 3)
    check_finite("smpl_poses", poses)
    check_finite("smpl_trans", trans)
    return poses, trans


def _aist_motion(data: Mapping[str, Any], name: str) -> SMPLMotion:
    poses, trans = _poses_and_trans(data, name)
    scaling = _numbers(data, "smpl_scaling", name)
    if scaling.size != 1 or not np.isfinite(scaling).all() or float(scaling.reshape(())) <= 0:
        raise InputError(f"{name}: smpl_scaling must be one positive number (shape (1,)), got {scaling.tolist()!r}")
    return SMPLMotion(poses, trans / float(scaling.reshape(())), fps=AIST_FPS, up_axis="y")


def _edge_motion(data: Mapping[str, Any], name: str) -> SMPLMotion:
    poses, trans = _poses_and_trans(data, name)
    joints = _numbers(data, "full_pose", name)
    if joints.shape != (poses.shape[0], NUM_JOINTS, 3):
        raise InputError(f"{name}: full_pose must be (N, 24, 3) = {(poses.shape[0], NUM_JOINTS, 3)} joint positions "
                         f"to match smpl_poses, got shape {joints.shape}")
    return SMPLMotion(poses, trans, fps=EDGE_FPS, up_axis="z")


def motion_from_pickle_data(data: Any, name: str) -> SMPLMotion:
    """An already unpickled AIST++ or EDGE dict -> :class:`SMPLMotion` (``name`` is for messages)."""
    if not isinstance(data, Mapping):
        raise InputError(f"{name}: a motion pickle holds a dict of arrays, this one holds a {type(data).__name__}")
    keys = {str(k) for k in data}
    if set(AIST_KEYS) <= keys:
        return _aist_motion(data, name)
    if set(EDGE_KEYS) <= keys:
        return _edge_motion(data, name)
    raise InputError(f"{name}: unknown motion pickle layout; found keys {sorted(keys)}, expected AIST++ "
                     f"{list(AIST_KEYS)} or EDGE output {list(EDGE_KEYS)}")


def read_motion_pickle(path: Union[str, os.PathLike]) -> SMPLMotion:
    """Load an AIST++ motion or EDGE output pickle at ``path`` without running code from it."""
    return motion_from_pickle_data(load_pickle(path, MOTION_PICKLE), os.path.basename(os.fspath(path)))
