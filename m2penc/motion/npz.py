"""Our own motion file: a numpy ``.npz`` that holds exactly one :class:`SMPLMotion`.

Arrays: ``poses`` ``(N, 24, 3)`` float32, ``trans`` ``(N, 3)`` float32 (metres), ``fps`` 0-d
float64, ``up_axis`` 0-d unicode (``"y"``/``"z"``), and ``betas`` ``(K,)`` float32 when the
motion has a body shape. It is read with ``allow_pickle=False``, so loading one never runs code;
unknown arrays are refused so that other ``.npz`` layouts (e.g. AMASS) are not misread.
"""
from __future__ import annotations

import os
import zipfile
from typing import BinaryIO, Union

import numpy as np

from ..errors import InputError
from .format import SMPLMotion

REQUIRED_KEYS = ("poses", "trans", "fps", "up_axis")
OPTIONAL_KEYS = ("betas",)
#: Largest motion .npz read, by the sizes its arrays declare (an hour of 60 fps motion is ~25 MB).
MAX_NPZ_BYTES = 2 * 1024 ** 3
_NPY_MAGIC = b"\x93NUMPY"


def write_npz(motion: SMPLMotion, file: BinaryIO) -> None:
    """Write ``motion`` as an (uncompressed) ``.npz`` into the open binary ``file``."""
    arrays = {"poses": motion.poses, "trans": motion.trans, "fps": np.array(motion.fps, dtype=np.float64),
              "up_axis": np.array(motion.up_axis, dtype="<U1")}
    if motion.betas is not None:
        arrays["betas"] = motion.betas
    np.savez(file, **arrays)


def _scalar(arrays: dict[str, np.ndarray], key: str, kind: str, name: str) -> np.ndarray:
    value = arrays[key]
    if value.size != 1 or value.dtype.kind not in kind:
        raise InputError(f"{name}: {key} must be a single {'number' if kind != 'U' else 'string'}, "
                         f"got dtype {value.dtype} shape {value.shape}")
    return value.reshape(())


def _check_archive(path: Union[str, os.PathLike], name: str) -> None:
    """A zip whose members declare at most :data:`MAX_NPZ_BYTES` in all, checked before numpy reads a byte.

    numpy allocates each array at the size its header claims and reads (or decompresses) into it, so
    a small file could otherwise claim gigabytes; a bare ``.npy`` would be read whole before refusal.
    """
    with open(path, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    if magic == _NPY_MAGIC:
        raise InputError(f"{name}: holds a single .npy array, not a motion .npz; expected the arrays "
                         f"{list(REQUIRED_KEYS)} saved with numpy.savez")
    with zipfile.ZipFile(path) as archive:
        declared = sum(info.file_size for info in archive.infolist())
    if declared > MAX_NPZ_BYTES:
        raise InputError(f"{name}: its arrays declare {declared} bytes, more than the {MAX_NPZ_BYTES} a motion .npz "
                         f"may hold; it was not read")


def read_npz(path: Union[str, os.PathLike]) -> SMPLMotion:
    """Load a motion ``.npz`` written by :func:`write_npz` (or by hand with the same arrays)."""
    name = os.path.basename(os.fspath(path))
    try:
        _check_archive(path, name)
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InputError(f"{name}: holds a single .npy array, not a motion .npz; expected the arrays "
                             f"{list(REQUIRED_KEYS)} saved with numpy.savez")
        with loaded as data:
            arrays = {key: data[key] for key in data.files}
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"motion file not found: {path}") from None
    except (ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile) as e:
        raise InputError(f"{name}: not a readable motion .npz ({e}); arrays stored as Python objects are "
                         f"refused (allow_pickle=False). Re-save it with numpy.savez and plain arrays") from None
    if not arrays:
        raise InputError(f"{name}: the .npz holds no arrays; expected {list(REQUIRED_KEYS)}")
    found = set(arrays)
    missing = [k for k in REQUIRED_KEYS if k not in found]
    unknown = sorted(found - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if missing or unknown:
        raise InputError(f"{name}: not a motion .npz: found arrays {sorted(found)}, expected {list(REQUIRED_KEYS)} "
                         f"(+ optional {list(OPTIONAL_KEYS)})" + (f"; missing {missing}" if missing else "")
                         + (f"; unknown {unknown}" if unknown else ""))
    fps = float(_scalar(arrays, "fps", "iuf", name))
    up_axis = str(_scalar(arrays, "up_axis", "U", name))
    return SMPLMotion(arrays["poses"], arrays["trans"], fps=fps, betas=arrays.get("betas"), up_axis=up_axis)
