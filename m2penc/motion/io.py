"""``load_motion`` / ``save_motion``: one entry point for every motion file, chosen by extension.

=========  ======  ======  ====================================================================
extension  load    save    layout
=========  ======  ======  ====================================================================
``.pkl``   yes     no      AIST++ motion (60 fps, y up) or EDGE output (30 fps, z up), read by
                           a restricted unpickler (:mod:`.pickle_layouts`, :mod:`..safe_pickle`)
``.npz``   yes     yes     our own lossless format (:mod:`.npz`)
``.bvh``   yes     yes     SMPL skeleton, centimetres, y up, ZXY Euler degrees (:mod:`.bvh_writer`)
=========  ======  ======  ====================================================================

Saving is atomic: the file is written under a temporary name in the target folder and renamed
over ``path`` only once complete, so an error never leaves a half-written motion behind. Every
failure is an :class:`InputError` whose message starts with the file's name.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, Union

from ..checkpoint import atomic_write
from ..errors import InputError
from .bvh_reader import read_bvh
from .bvh_writer import motion_to_bvh
from .format import SMPLMotion
from .npz import read_npz, write_npz
from .pickle_layouts import read_motion_pickle

PathLike = Union[str, os.PathLike]


def _write_bvh(motion: SMPLMotion, file: BinaryIO) -> None:
    file.write(motion_to_bvh(motion).encode("utf-8"))


_READERS: dict[str, Callable[[PathLike], SMPLMotion]] = {".pkl": read_motion_pickle, ".npz": read_npz, ".bvh": read_bvh}
_WRITERS: dict[str, Callable[[SMPLMotion, BinaryIO], None]] = {".npz": write_npz, ".bvh": _write_bvh}
LOAD_EXTENSIONS = tuple(_READERS)
SAVE_EXTENSIONS = tuple(_WRITERS)


def _extension(path: Path, supported: tuple[str, ...], verb: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in supported:
        raise InputError(f"{path.name}: cannot {verb} motion files of type {suffix or '(no extension)'!r}; "
                         f"supported: {', '.join(supported)}. Rename or convert the file")
    return suffix


def load_motion(path: PathLike) -> SMPLMotion:
    """Read the motion file at ``path`` (``.pkl``, ``.npz`` or ``.bvh``) into an :class:`SMPLMotion`.

    Raises:
        InputError: unsupported extension, missing file, unknown layout, wrong shapes, NaN/inf,
        zero frames, a refused pickle global; the message names the file and the fix.
    """
    path = Path(path)
    reader = _READERS[_extension(path, LOAD_EXTENSIONS, "load")]
    if not path.is_file():
        raise InputError(f"motion file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        return reader(path)
    except InputError as e:
        if path.name in str(e):
            raise
        raise InputError(f"{path.name}: {e}") from None


def save_motion(motion: SMPLMotion, path: PathLike) -> Path:
    """Write ``motion`` to ``path`` (``.npz`` lossless, or ``.bvh``); returns ``path``.

    The folder is created if needed. The write is atomic (temporary file + ``os.replace``).
    """
    if not isinstance(motion, SMPLMotion):
        raise InputError(f"save_motion expects an SMPLMotion, got {type(motion).__name__}")
    path = Path(path)
    writer = _WRITERS[_extension(path, SAVE_EXTENSIONS, "save")]

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            writer(motion, f)

    return atomic_write(path, write)
