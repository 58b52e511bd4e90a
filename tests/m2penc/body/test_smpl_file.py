"""SMPL's pickled records: scipy sparse and chumpy arrays load as inert records at every protocol; nothing else does."""
from __future__ import annotations

import builtins
import copyreg
import pickle
import subprocess

import numpy as np
import pytest
import scipy.sparse

from m2pdance.m2penc.body.smpl import SMPL_PICKLE
from m2pdance.m2penc.body.smpl_file import (
    ChumpyRecord, CscRecord, RecordError, SparseRecord, record_to_array, to_dense,
)
from m2pdance.m2penc.errors import InputError, WeightsError
from m2pdance.m2penc.safe_pickle import load_pickle

from .conftest import fake_chumpy


def _write(path, obj, protocol=2):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class _Reduce:
    def __init__(self, target, *args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_arrays_sparse_and_chumpy_round_trip(tmp_path, protocol):
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(4, 6)) * (rng.random((4, 6)) < 0.4)
    with fake_chumpy() as Ch:
        path = _write(tmp_path / "SMPL.pkl", {
            "a": rng.normal(size=(3, 2)), "f": np.arange(6, dtype=np.uint32).reshape(2, 3), "s": np.float64(1.5),
            "csc": scipy.sparse.csc_matrix(dense), "csr": scipy.sparse.csr_matrix(dense), "ch": Ch(dense),
            "csc_array": scipy.sparse.csc_array(dense), "name": "lbs",
        }, protocol)
    data = load_pickle(path, SMPL_PICKLE)
    assert data["f"].dtype == np.uint32 and data["name"] == "lbs" and data["s"] == 1.5
    assert isinstance(data["csc"], SparseRecord) and isinstance(data["ch"], ChumpyRecord)
    for key in ("csc", "csr", "csc_array", "ch"):
        np.testing.assert_array_equal(record_to_array(data[key]), dense)
    assert record_to_array(data["a"]) is data["a"]


def test_records_are_only_allowed_for_smpl_files(tmp_path):
    path = _write(tmp_path / "motion.pkl", scipy.sparse.csc_matrix(np.eye(2)))
    with pytest.raises(InputError, match=r"refused to load the global 'scipy\.sparse\.\S*csc_matrix'"):
        load_pickle(path)


@pytest.mark.parametrize("target, args", [
    (builtins.eval, ("1+1",)), (builtins.exec, ("x = 1",)), (subprocess.check_output, (["true"],)),
    (getattr, (np.ndarray, "tofile")), (np.load, ("x.npy",)),
])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_any_other_global_is_refused_as_a_weights_error(tmp_path, target, args, protocol):
    path = _write(tmp_path / "SMPL_NEUTRAL.pkl", {"v_template": _Reduce(target, *args)}, protocol)
    with pytest.raises(WeightsError, match=r"SMPL_NEUTRAL\.pkl: refused to load the global .*"
                                           r"no code from the file was run\. Delete it .*smpl\.is\.tue\.mpg\.de"):
        load_pickle(path, SMPL_PICKLE)


def test_copyreg_reconstructor_only_builds_smpl_records(tmp_path):
    path = _write(tmp_path / "SMPL.pkl", _Reduce(copyreg._reconstructor, np.ndarray, np.ndarray, (0,)))
    with pytest.raises(WeightsError, match=r"_reconstructor' \(for ndarray, ndarray; only for inert records\)"):
        load_pickle(path, SMPL_PICKLE)
    with fake_chumpy() as Ch:  # protocol 0 pickles chumpy through copyreg._reconstructor
        path = _write(tmp_path / "ch.pkl", Ch(np.ones(2)), 0)
    assert b"copy_reg\n_reconstructor" in path.read_bytes()
    np.testing.assert_array_equal(record_to_array(load_pickle(path, SMPL_PICKLE)), [1.0, 1.0])


def _csc_record(tmp_path, **changes):
    record = load_pickle(_write(tmp_path / "m.pkl", scipy.sparse.csc_matrix(np.eye(3))), SMPL_PICKLE)
    assert type(record) is CscRecord
    record.__dict__.update(changes)
    return record


@pytest.mark.parametrize("changes, words", [
    ({"indices": np.array([0, 1, 7])}, "inconsistent csc"),
    ({"indptr": np.array([0, 2, 1, 3])}, "inconsistent csc"),
    ({"data": np.array([1.0, 2.0])}, "inconsistent csc"),
    ({"_shape": (3, -3)}, "negative"),
    ({"_shape": (10 ** 6, 10 ** 6)}, "entries dense"),
    ({"_shape": (3,)}, "2-d shape"),
    ({"indices": np.array(["a", "b", "c"])}, "non-numeric"),
    ({"format": "csr", "indices": np.array([0, 1, 7])}, "inconsistent csc"),  # the record's class decides
])
def test_inconsistent_sparse_matrix_is_rejected(tmp_path, changes, words):
    np.testing.assert_array_equal(to_dense(_csc_record(tmp_path)), np.eye(3))
    with pytest.raises(RecordError, match=words):
        to_dense(_csc_record(tmp_path, **changes))


def test_chumpy_expression_without_value_is_rejected():
    with pytest.raises(RecordError, match="clean_ch.py"):
        record_to_array(ChumpyRecord())
