"""The foreign objects in SMPL's pickled model files, as inert records our own code converts.

SMPL's ``.pkl`` files hold, besides numpy arrays, ``scipy.sparse`` CSC matrices (``J_regressor``)
and, in SMPL 1.0, ``chumpy.ch.Ch`` arrays (``shapedirs``). Unpickling those classes would need
scipy and chumpy and run their code, so :data:`SMPL_RECORDS` maps them to
:class:`~..safe_pickle.InertRecord` stand-ins for the shared restricted unpickler
(:mod:`..safe_pickle`): the pickled state is kept as plain data, and :func:`record_to_array` turns
it into a numpy array here (a chumpy array's value is its ``x``; a sparse matrix is densified
after its index arrays are checked), so a forged record can at worst be rejected.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from ..safe_pickle import GlobalKey, InertRecord

#: Largest sparse matrix densified (1 GiB of float64); SMPL's J_regressor has 24 x 6890 entries.
MAX_DENSE_ELEMENTS = 2 ** 27


class ChumpyRecord(InertRecord):
    """A ``chumpy.ch.Ch`` array; its numpy value is the ``x`` entry of its state."""


class SparseRecord(InertRecord):
    """A scipy CSC/CSR matrix's state (``data``, ``indices``, ``indptr``, ``_shape``)."""

    format = ""


class CscRecord(SparseRecord):
    format = "csc"


class CsrRecord(SparseRecord):
    format = "csr"


def _smpl_records() -> dict[GlobalKey, Callable[..., Any]]:
    records: dict[GlobalKey, Callable[..., Any]] = {("chumpy.ch", "Ch"): ChumpyRecord}
    for fmt, record in (("csc", CscRecord), ("csr", CsrRecord)):
        for module in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}", "scipy.sparse"):
            records[(module, f"{fmt}_matrix")] = record
            records[(module, f"{fmt}_array")] = record
    return records


#: The extra globals a SMPL pickle may name (every scipy version's module path), as inert records.
SMPL_RECORDS: Mapping[GlobalKey, Callable[..., Any]] = MappingProxyType(_smpl_records())


class RecordError(ValueError):
    """A chumpy or sparse record that does not hold a usable array (the message says why)."""


def record_to_array(value: Any) -> Any:
    """``value`` with chumpy records replaced by their ``x`` and sparse records densified.

    Raises:
        RecordError: a chumpy expression without ``x``, or an inconsistent sparse matrix.
    """
    if isinstance(value, ChumpyRecord):
        if value.__dict__.get("x") is None:
            raise RecordError("a chumpy expression, not a plain array; convert the file with smplx's "
                              "tools/clean_ch.py, or use SMPL 1.1's chumpy-free file")
        return value.__dict__["x"]
    if isinstance(value, SparseRecord):
        return to_dense(value)
    return value


def _sparse_parts(matrix: SparseRecord) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    state = matrix.__dict__
    try:
        shape = tuple(int(n) for n in state.get("_shape", state.get("shape", ())))
        data, indices, indptr = (np.asarray(state.get(k, ())) for k in ("data", "indices", "indptr"))
    except (TypeError, ValueError) as e:
        raise RecordError(f"a sparse matrix with unreadable parts ({e})") from None
    if len(shape) != 2 or indices.ndim != 1 or indptr.ndim != 1 or data.ndim != 1:
        raise RecordError(f"a sparse matrix without a 2-d shape and 1-d parts (state keys {sorted(state)})")
    if min(shape) < 0 or shape[0] * shape[1] > MAX_DENSE_ELEMENTS:
        raise RecordError(f"a sparse matrix of shape {shape}: negative, or over {MAX_DENSE_ELEMENTS} entries dense")
    if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu" or data.dtype.kind not in "fiub":
        raise RecordError(f"a sparse matrix with non-numeric parts ({data.dtype}, {indices.dtype}, {indptr.dtype})")
    return shape, data, indices.astype(np.int64), indptr.astype(np.int64)


def to_dense(matrix: SparseRecord) -> np.ndarray:
    """Densify a CSC/CSR record (float64) after checking its index arrays are consistent.

    Raises:
        RecordError: shape, ``indptr``, ``indices`` and ``data`` do not describe one matrix.
    """
    fmt = type(matrix).format
    shape, data, indices, indptr = _sparse_parts(matrix)
    rows, cols = shape
    major, minor = (cols, rows) if fmt == "csc" else (rows, cols)
    counts = np.diff(indptr)
    if (indptr.shape != (major + 1,) or indptr[0] != 0 or (counts < 0).any() or indptr[-1] != len(indices)
            or len(data) != len(indices) or (len(indices) and (indices.min() < 0 or indices.max() >= minor))):
        raise RecordError(f"an inconsistent {fmt} sparse matrix of shape {shape}")
    dense = np.zeros((major, minor), dtype=np.float64)
    np.add.at(dense, (np.repeat(np.arange(major), counts), indices), data.astype(np.float64))
    return dense.T if fmt == "csc" else dense
