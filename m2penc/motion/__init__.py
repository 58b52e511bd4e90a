"""Dance motion on the SMPL skeleton: the motion type and its files.

For now this folder holds the motion format (:class:`SMPLMotion`: per-frame SMPL axis-angle
poses, pelvis translation, fps, optional betas, up axis) and its file I/O (AIST++ and EDGE
pickles read by the shared restricted unpickler :mod:`..safe_pickle`, our ``.npz``, BVH). The
motion generators live here too and produce :class:`SMPLMotion`: :mod:`.edge` (the EDGE teacher)
and :mod:`.choreography` (the procedural beat choreographer).
"""
from __future__ import annotations

from .bvh_reader import parse_bvh, read_bvh
from .bvh_writer import motion_to_bvh
from .choreography import choreograph
from .example import EXAMPLE_MOTION, example_motion, write_example_motion
from .euler import euler_to_matrix, matrix_to_euler
from .format import Y_TO_Z_QUAT, SMPLMotion, UpAxis
from .io import LOAD_EXTENSIONS, SAVE_EXTENSIONS, load_motion, save_motion
from .npz import read_npz, write_npz
from .pickle_layouts import AIST_FPS, EDGE_FPS, motion_from_pickle_data, read_motion_pickle

__all__ = [
    "AIST_FPS", "EDGE_FPS", "choreograph", "EXAMPLE_MOTION", "example_motion", "write_example_motion", "LOAD_EXTENSIONS", "SAVE_EXTENSIONS", "SMPLMotion", "UpAxis", "Y_TO_Z_QUAT",
    "euler_to_matrix", "load_motion", "matrix_to_euler", "motion_from_pickle_data", "motion_to_bvh",
    "parse_bvh", "read_bvh", "read_motion_pickle", "read_npz", "save_motion", "write_npz",
]
