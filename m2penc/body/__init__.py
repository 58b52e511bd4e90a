"""Body models on SMPL's 24-joint skeleton: rotations, forward kinematics, meshes.

* :mod:`.rotations`, :mod:`.skeleton`: rotation conversions and forward kinematics on SMPL's tree;
* :class:`BodyModel` / :class:`BodyOutput` (:mod:`.model`): the interface the renderer poses,
  ``forward(poses (B, 24, 3), trans (B, 3), betas=None)`` -> posed vertices and joints, with
  ``faces``, ``lbs_weights``, ``part_labels`` (SMPL part indices) and face ``landmarks``;
* :class:`OpenBody` (:mod:`.open_body`): the default body, built procedurally, needs no files;
* :func:`load_smpl` (:mod:`.smpl`): the user's licensed SMPL through smplx, read without running
  code from the file.

:func:`make_body` picks one by name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import InputError
from .model import LANDMARK_NAMES, BodyModel, BodyOutput, linear_blend_skinning
from .open_body import OpenBody
from .smpl import SMPLBody, load_smpl

BODY_KINDS = ("open", "smpl")

__all__ = [
    "BODY_KINDS", "LANDMARK_NAMES", "BodyModel", "BodyOutput", "OpenBody", "SMPLBody",
    "linear_blend_skinning", "load_smpl", "make_body",
]


def make_body(kind: str = "open", smpl_path: Optional[Union[str, Path]] = None,
              device: Optional[Union[str, torch.device]] = None, dtype: Optional[torch.dtype] = None) -> BodyModel:
    """A body model by name: ``"open"`` (default, no files) or ``"smpl"`` (needs ``smpl_path``).

    Args:
        kind: ``"open"`` or ``"smpl"``.
        smpl_path: the SMPL model file or its folder (``models/smpl``); only for ``"smpl"``.
        device, dtype: where the body's buffers live (default CPU, float32).
    """
    if kind == "open":
        body: BodyModel = OpenBody()
    elif kind == "smpl":
        if smpl_path is None:
            raise InputError("body kind 'smpl' needs smpl_path: the SMPL_NEUTRAL.pkl you downloaded from "
                             "https://smpl.is.tue.mpg.de (e.g. models/smpl/SMPL_NEUTRAL.pkl); or use kind 'open'")
        body = load_smpl(smpl_path)
    else:
        raise InputError(f"body kind must be one of {BODY_KINDS}, got {kind!r}")
    return body.to(device=device, dtype=dtype)
