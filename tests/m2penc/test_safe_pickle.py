"""The one restricted unpickler: plain data loads at every protocol; anything that would run code is refused unrun."""
from __future__ import annotations

import builtins
import collections
import contextlib
import os
import pickle
import re
import subprocess
import sys
import types

import numpy as np
import pytest

from m2pdance.m2penc import safe_pickle
from m2pdance.m2penc.errors import InputError, WeightsError
from m2pdance.m2penc.motion import load_motion
from m2pdance.m2penc.safe_pickle import InertRecord, PickleRules, load_pickle

PROTOCOLS = list(range(pickle.HIGHEST_PROTOCOL + 1))


class _Reduce:
    """Pickles as ``target(*args)``."""

    def __init__(self, target, *args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


def _payloads(marker):
    """Every payload creates ``marker`` when a plain unpickler runs it."""
    quoted = repr(str(marker))
    return {
        "os.system": _Reduce(os.system, f"touch '{marker}'"),
        "eval": _Reduce(builtins.eval, f"open({quoted}, 'w').close()"),
        "exec": _Reduce(builtins.exec, f"open({quoted}, 'w').close()"),
        "subprocess": _Reduce(subprocess.call, ["touch", str(marker)]),
        "open": _Reduce(builtins.open, str(marker), "w"),
    }


def _write(path, obj, protocol=4):
    return _write_bytes(path, pickle.dumps(obj, protocol=protocol))


def _write_bytes(path, content):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_numpy_and_containers_round_trip_at_every_protocol(tmp_path, protocol):
    data = {"smpl_poses": np.arange(12, dtype=np.float32).reshape(2, 6), "f64": np.linspace(0, 1, 5),
            "u32": np.arange(6, dtype=np.uint32), "scalar": np.float64(2.5), "int": np.int64(-3),
            "empty": np.zeros((0, 3)), "text": np.array("y"), "raw": b"\xff\x00abc", "nothing": b"",
            "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "nested": [1, (2.0, "a"), {3}, frozenset()],
            "ordered": collections.OrderedDict(a=1), "buffer": bytearray(b"\x01\x02")}
    loaded = load_pickle(_write(tmp_path / "ok.pkl", data, protocol))
    assert loaded.keys() == data.keys()
    for key in ("smpl_poses", "f64", "u32", "empty", "fortran"):
        np.testing.assert_array_equal(loaded[key], data[key])
        assert loaded[key].dtype == data[key].dtype
    assert loaded["scalar"] == 2.5 and loaded["int"] == -3 and str(loaded["text"]) == "y"
    for key in ("raw", "nothing", "nested", "ordered", "buffer"):
        assert loaded[key] == data[key] and type(loaded[key]) is type(data[key])


#: The global each payload names, as the file spells it (protocols 0-2 use Python 2 names).
REFUSED = {"os.system": r"(posix|nt)\.system", "eval": r"(__builtin__|builtins)\.eval",
           "exec": r"(__builtin__|builtins)\.exec", "subprocess": r"(subprocess|commands)\.call", "open": r"io\.open"}


@pytest.mark.parametrize("payload", list(REFUSED))
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_code_in_a_pickle_is_refused_and_never_runs(tmp_path, payload, protocol):
    marker = tmp_path / "pwned"
    evil = {"smpl_poses": np.zeros((2, 72)), "smpl_trans": _payloads(marker)[payload]}
    path = _write(tmp_path / "evil.pkl", evil, protocol)
    with pytest.raises(InputError) as info:
        load_pickle(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused to load the global '") and "no code from the file was run" in message
    assert re.search(f"global '{REFUSED[payload]}'", message)
    assert not marker.exists()


@pytest.mark.parametrize("payload", list(REFUSED))
def test_the_payloads_are_real(tmp_path, payload):
    """Control: a plain unpickler does run each payload, so the refusals above mean something."""
    marker = tmp_path / "created"
    result = pickle.loads(pickle.dumps(_payloads(marker)[payload]))
    if hasattr(result, "close"):
        result.close()
    assert marker.exists()


def test_motion_loading_refuses_code_and_names_the_file(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil_motion.pkl", {"smpl_poses": _payloads(marker)["os.system"]}, 2)
    with pytest.raises(InputError, match=r"evil_motion\.pkl: refused to load the global '(posix|nt)\.system'.*"
                                         r"no code from the file was run.*np\.savez"):
        load_motion(path)
    assert not marker.exists()


def test_torch_tensors_and_other_classes_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match=r"tensor\.pkl: refused to load the global 'torch\."):
        load_pickle(_write(tmp_path / "tensor.pkl", {"smpl_poses": torch.zeros(2, 72)}))
    for legacy in (False, True):
        path = tmp_path / f"saved_{legacy}.pkl"
        torch.save({"smpl_poses": torch.zeros(2, 72)}, path, _use_new_zipfile_serialization=not legacy)
        with pytest.raises(InputError, match=f"saved_{legacy}.pkl"):
            load_motion(path)
    with pytest.raises(InputError, match=r"refused to load the global 'collections\.Counter'"):
        load_pickle(_write(tmp_path / "counter.pkl", collections.Counter("ab")))


def test_codecs_encode_only_latin1(tmp_path):
    # a protocol-2 pickle of bytes calls _codecs.encode(text, "latin1"); other codecs are refused
    path = _write(tmp_path / "codec.pkl", _Reduce(__import__("_codecs").encode, "abc", "rot13"), 2)
    with pytest.raises(InputError, match=r"codec\.pkl: refused to load the global '_codecs\.encode' .*'rot13'"):
        load_pickle(path)
    assert load_pickle(_write(tmp_path / "bytes.pkl", b"\xff\x00abc", 2)) == b"\xff\x00abc"


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_bytes_are_built_from_data_never_from_a_size(tmp_path, kind):
    with pytest.raises(InputError, match=rf"refused to load the global 'builtins\.{kind.__name__}' \(from int"):
        load_pickle(_write(tmp_path / "huge.pkl", _Reduce(kind, 10 ** 12), 4))
    with pytest.raises(InputError, match=r"'_codecs\.encode' \(str with encoding 'utf-16'"):
        load_pickle(_write(tmp_path / "utf16.pkl", _Reduce(kind, "ab", "utf-16"), 4))
    assert load_pickle(_write(tmp_path / "ok.pkl", _Reduce(kind, "\xffa", "latin-1"), 4)) == kind(b"\xffa")


def test_python2_pickles_load(tmp_path):
    # numpy array pickled by Python 2 / numpy 1.x (protocol 2): module numpy.core.multiarray, str data
    py2 = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87Rq\x03"
           b"(K\x01K\x02\x85cnumpy\ndtype\nq\x04U\x02f8K\x00K\x01\x87Rq\x05(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff"
           b"\xff\xff\xffK\x00tb\x89U\x10" + np.array([1.5, -2.0]).tobytes() + b"tb.")
    np.testing.assert_array_equal(load_pickle(_write_bytes(tmp_path / "py2.pkl", py2)), [1.5, -2.0])
    assert load_pickle(_write_bytes(tmp_path / "set.pkl", b"\x80\x02c__builtin__\nset\n]K\x01a\x85R.")) == {1}
    with pytest.raises(InputError, match=r"refused to load the global '__builtin__\.eval'"):
        load_pickle(_write_bytes(tmp_path / "eval.pkl", b"\x80\x02c__builtin__\neval\nX\x03\x00\x00\x001+1\x85R."))


@pytest.mark.parametrize("content, words", [
    (b"", ["empty.pkl", "the file is empty"]),
    (None, ["truncated.pkl", "truncated", "no code from the file was run"]),
    (b"this is not a pickle at all", ["garbage.pkl", "not a readable pickle", "no code from the file was run"]),
    (b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f", ["frame.pkl", "not a readable pickle"]),
])
def test_unreadable_pickles_are_wrapped(tmp_path, content, words):
    if content is None:
        content = pickle.dumps({"a": np.zeros(100)}, protocol=4)[:-40]
    with pytest.raises(InputError) as info:
        load_pickle(_write_bytes(tmp_path / words[0], content))
    for word in words:
        assert word in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"missing\.pkl: pickle not found"):
        load_pickle(tmp_path / "missing.pkl")


def test_size_limit(tmp_path, monkeypatch):
    path = _write(tmp_path / "big.pkl", {"a": np.zeros(1000)})
    monkeypatch.setattr(safe_pickle, "MAX_PICKLE_BYTES", 1000)
    with pytest.raises(InputError, match=r"big\.pkl: \d\.\d KiB is larger than the 1000 bytes a pickle may be; "
                                         r"it was not read"):
        load_pickle(path)
    monkeypatch.undo()
    assert safe_pickle.MAX_PICKLE_BYTES == 2 * 1024 ** 3


def test_caller_chosen_error_class_kind_and_fix(tmp_path):
    rules = PickleRules(kind="model file", holds="arrays", fix="Download it again.", error=WeightsError)
    with pytest.raises(WeightsError) as info:
        load_pickle(_write(tmp_path / "model.pkl", _Reduce(os.system, "true")), rules)
    assert str(info.value).endswith("a model file may only hold arrays, and no code from the file was run. "
                                    "Download it again.")
    with pytest.raises(WeightsError, match=r"model\.pkl: not a readable model file .* Download it again\.$"):
        load_pickle(_write_bytes(tmp_path / "model.pkl", b"garbage"), rules)


@contextlib.contextmanager
def _fake_class(package, module_name, class_name):
    """A class importable as ``package.module_name.class_name`` while the block runs (to pickle it)."""
    qualified = f"{package}.{module_name}"
    cls = type(class_name, (), {"__init__": lambda self, **state: self.__dict__.update(state)})
    cls.__module__ = qualified
    parent, module = types.ModuleType(package), types.ModuleType(qualified)
    setattr(module, class_name, cls)
    setattr(parent, module_name, module)
    saved = {name: sys.modules.get(name) for name in (package, qualified)}
    sys.modules.update({package: parent, qualified: module})
    try:
        yield cls
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


class ScalerRecord(InertRecord):
    """A stand-in for a foreign scaler class (what EDGE's checkpoint reader will map)."""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_records_map_foreign_classes_to_inert_stand_ins(tmp_path, protocol):
    with _fake_class("dataset", "scaler", "MinMaxScaler") as Scaler:
        path = _write(tmp_path / "scaler.pkl", {"scaler": Scaler(scale_=np.ones(3), feature_range=(-1, 1))}, protocol)
    with pytest.raises(InputError, match=r"refused to load the global 'dataset\.scaler\.MinMaxScaler'"):
        load_pickle(path)  # not without the record mapping
    rules = PickleRules(records={("dataset.scaler", "MinMaxScaler"): ScalerRecord})
    record = load_pickle(path, rules)["scaler"]
    assert type(record) is ScalerRecord and record.feature_range == (-1, 1)
    np.testing.assert_array_equal(record.scale_, np.ones(3))


def test_copyreg_reconstructor_builds_only_record_classes(tmp_path):
    import copyreg

    path = _write(tmp_path / "recon.pkl", _Reduce(copyreg._reconstructor, np.ndarray, np.ndarray, (0,)), 2)
    rules = PickleRules(records={("dataset.scaler", "MinMaxScaler"): ScalerRecord})
    with pytest.raises(InputError, match=r"refused to load the global 'copyreg\._reconstructor' \(for ndarray"):
        load_pickle(path, rules)
    path = _write(tmp_path / "recon_obj.pkl", _Reduce(copyreg._reconstructor, object, object, None), 2)
    with pytest.raises(InputError, match=r"_reconstructor' \(for object, object"):
        load_pickle(path, rules)


class _Persistent(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", obj.key) if isinstance(obj, _Stored) else None


class _Stored:
    def __init__(self, key):
        self.key = key


def test_persistent_ids_are_refused_unless_the_reader_resolves_them(tmp_path):
    path = tmp_path / "stored.pkl"
    with open(path, "wb") as f:
        _Persistent(f, protocol=2).dump({"weight": _Stored("0")})
    with pytest.raises(InputError, match=r"stored\.pkl: refused to load a reference to external storage"):
        load_pickle(path)
    rules = PickleRules(persistent_load=lambda pid: np.full(2, float(pid[1])))
    np.testing.assert_array_equal(load_pickle(path, rules)["weight"], [0.0, 0.0])


def _forged_pickles():
    """Pickles naming only allowed globals whose arrays would make numpy read file bytes as object pointers."""
    reconstruct = _numpy_reconstruct()
    forged_f8 = _State(np.dtype, ("f8", False, True), (3, "<", None, None, None, -1, -1, 63))  # flags: "holds objects"
    return {
        "object_list": _State(reconstruct, (np.ndarray, (0,), b"b"), (1, (1000,), np.dtype("O"), False, [1, 2])),
        "forged_flags": _State(reconstruct, (np.ndarray, (0,), b"b"), (1, (2,), forged_f8, False, b"\x01" * 16)),
        "void_flags": _State(reconstruct, (np.ndarray, (0,), b"b"),
                             (1, (2,), _State(np.dtype, ("V8", False, True), (3, "|", None, None, None, 8, 1, 63)),
                              False, b"\x01" * 16)),
    }


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _State:
    """Pickles as ``target(*args)`` followed by BUILD with ``state``."""

    def __init__(self, target, args, state):
        self.target, self.args, self.state = target, args, state

    def __reduce__(self):
        return self.target, self.args, self.state


@pytest.mark.parametrize("name", ["object_list", "forged_flags", "void_flags"])
def test_object_dtypes_are_refused_without_crashing(tmp_path, name):
    """numpy would dereference the file's bytes as PyObject pointers (a segfault in numpy 2.4); run in a child."""
    path = _write(tmp_path / f"{name}.pkl", {"smpl_poses": _forged_pickles()[name]}, 2)
    code = ("import sys\nfrom m2pdance.m2penc.safe_pickle import load_pickle\nfrom m2pdance.m2penc.errors import "
            "InputError\ntry:\n    load_pickle(sys.argv[1])\nexcept InputError as e:\n    print('REFUSED', e)\n"
            "else:\n    print('LOADED')\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the loader crashed (exit {done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.startswith("REFUSED") and "no code from the file was run" in done.stdout, done.stdout


def test_arrays_are_never_allocated_from_a_size(tmp_path):
    with pytest.raises(InputError, match=r"refused to load the global 'numpy\.ndarray' \(called to allocate"):
        load_pickle(_write(tmp_path / "alloc.pkl", {"a": _Reduce(np.ndarray, (10 ** 6, 72))}, 2))
    with pytest.raises(InputError, match=r"'numpy\.core\.multiarray\._reconstruct' \(for ndarray of shape \(1000000"):
        load_pickle(_write(tmp_path / "big.pkl", {"a": _Reduce(_numpy_reconstruct(), np.ndarray, (10 ** 6,), b"b")}, 2))


def test_loaded_arrays_are_plain_ndarrays(tmp_path):
    data = {"a": np.arange(3.0), "t": (np.zeros(2), 1), "l": [np.ones(1)]}
    for protocol in PROTOCOLS:
        loaded = load_pickle(_write(tmp_path / f"p{protocol}.pkl", data, protocol))
        arrays = [loaded["a"], loaded["t"][0], loaded["l"][0]]
        assert all(type(a) is np.ndarray for a in arrays), [type(a) for a in arrays]
        np.testing.assert_array_equal(loaded["t"][0], np.zeros(2))
