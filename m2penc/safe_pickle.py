"""The one restricted unpickler: read pickled data files without running code from them.

``pickle.load`` calls whatever callable a file names, so a downloaded motion (AIST++, EDGE
output), SMPL model or checkpoint could run anything. Everything m2pdance unpickles goes through
:class:`SafeUnpickler`, whose ``find_class`` resolves only an allow-list; any other global is
refused *before* it is imported or called, so nothing from a refused file runs.

* The base allow-list (:func:`base_globals`) is what plain data needs: numpy arrays, dtypes and
  scalars as numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) pickle them at any protocol,
  builtin containers, ``collections.OrderedDict``, and ``_codecs.encode`` limited to latin-1 (how
  protocol 2 pickles ``bytes``). ``bytes``/``bytearray`` are built only from data, never from a
  size (``bytes(10**12)`` would fill memory); arrays likewise (``numpy.ndarray(shape)`` is
  refused, ``_reconstruct`` only makes numpy's empty placeholder). Arrays and scalars are built
  only with plain number/bool/string dtypes, re-made from their type string: an object dtype (or
  one whose pickled flags claim to hold objects) would make numpy read the file's bytes as
  object pointers, which crashes the process or worse.
* A reader adds the foreign classes its files hold through :attr:`PickleRules.records`: a mapping
  from ``(module, name)`` to a safe stand-in of our own, usually an :class:`InertRecord` subclass
  that keeps the object's pickled state as data and never runs the original class's code
  (SMPL's scipy sparse and chumpy arrays; later EDGE's normaliser records). Pickles made by
  ``copyreg._reconstructor`` are rebuilt only for those record classes.
* Persistent ids (a ``torch.save`` file's tensor storages) are refused unless the reader supplies
  :attr:`PickleRules.persistent_load`.

:func:`load_pickle` adds a size limit (:data:`MAX_PICKLE_BYTES`) and turns every failure into the
reader's error class (default :class:`~.errors.InputError`) naming the file, the refused global and
the fix, and saying that no code from the file was run. Python 2 pickles load (latin-1 strings,
``__builtin__``/``copy_reg`` module names).
"""
from __future__ import annotations

import builtins
import collections
import functools
import importlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Callable, Mapping, Optional, Union

from .errors import InputError, M2PDanceError

PathLike = Union[str, os.PathLike]
GlobalKey = tuple[str, str]
#: Largest pickle read (2 GiB): an hour of 60 fps SMPL motion is ~25 MB, a SMPL model ~250 MB.
MAX_PICKLE_BYTES = 2 * 1024 ** 3
#: Python 2 module names as protocol 0-2 pickles spell them.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
_CONTAINERS = ("dict", "list", "tuple", "set", "frozenset", "object")
#: Errors a truncated, corrupt or hostile-but-refused pickle raises while loading.
_UNREADABLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
               UnicodeDecodeError, MemoryError, OverflowError, RecursionError)


class Refused(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list; ``what`` names it (nothing was called)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def refused_global(module: str, name: str, detail: str = "") -> Refused:
    """A :class:`Refused` naming the global as ``module.name`` (``detail``: why a helper refused)."""
    return Refused(f"the global '{module}.{name}'" + (f" ({detail})" if detail else ""))


class InertRecord:
    """Base of safe stand-ins: construction takes no action and the pickled state is kept verbatim.

    A subclass stands for a foreign class (``chumpy.ch.Ch``, ``scipy.sparse.csc_matrix``, ...); after
    loading, the original object's attributes are the record's attributes, plain data for our own
    code to check and convert.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> "InertRecord":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected {type(self).__name__} state of type {type(state).__name__}")
        self.__dict__.update(state)


@dataclass(frozen=True)
class PickleRules:
    """What one kind of file may hold, and how its errors read.

    Attributes:
        kind: the file's kind in messages ("motion pickle", "SMPL model file").
        holds: what such a file legitimately holds, in messages.
        fix: what the user should do, appended to every error message.
        error: the exception class raised (called with one message string).
        records: extra globals, ``(module, name)`` -> a safe stand-in of our own (an
            :class:`InertRecord` subclass, or a function that only builds data).
        persistent_load: resolves persistent ids (e.g. torch storages); ``None`` refuses them.
    """

    kind: str = "pickle"
    holds: str = "numpy arrays, numbers and plain containers"
    fix: str = ""
    error: type[Exception] = InputError
    records: Mapping[GlobalKey, Callable[..., Any]] = field(default_factory=dict)
    persistent_load: Optional[Callable[[Any], Any]] = None


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: only latin-1, only on text."""
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise refused_global("_codecs", "encode", f"{type(text).__name__} with encoding {encoding!r}; only latin-1")
    return text.encode("latin-1")


def _bytes_from_data(kind: type) -> Callable[..., Any]:
    """``bytes``/``bytearray`` as pickles call them: empty, from bytes, or from latin-1 text."""

    def build(data: Union[bytes, bytearray, str] = b"", encoding: Optional[str] = None) -> Any:
        if isinstance(data, str):
            data = _latin1_encode(data, encoding or "")
        elif not isinstance(data, (bytes, bytearray)) or encoding is not None:
            raise refused_global("builtins", kind.__name__, f"from {type(data).__name__}; only from bytes or text")
        return kind(data)

    return build


def _numpy_core(submodule: str) -> Any:
    """``numpy._core.<submodule>`` (numpy 2) or ``numpy.core.<submodule>`` (numpy 1)."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


#: dtype kinds an array or scalar in a pickle may have: bool, integers, floats, complex, bytes, text.
_PLAIN_KINDS = "biufcSU"


def _plain_dtype(dtype: Any) -> Any:
    """A fresh dtype equal to ``dtype`` if it is a plain number/bool/string type, else :class:`Refused`.

    Re-made from its type string, so nothing a pickle set on the original (``BUILD`` can set a
    dtype's flags, fields and sizes, even after an array uses it) reaches the array.
    """
    import numpy as np

    if not isinstance(dtype, np.dtype):
        raise Refused(f"a numpy array or scalar whose dtype is a {type(dtype).__name__}")
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None or dtype.kind not in _PLAIN_KINDS:
        raise Refused(f"a numpy array or scalar of dtype kind {dtype.kind!r} (only numbers, booleans and "
                      f"strings: object, record and raw-byte dtypes let a file forge object pointers)")
    return np.dtype(dtype.str)


@functools.lru_cache(maxsize=None)
def _array_type() -> type:
    """The ``numpy.ndarray`` a pickle gets: built only by ``_reconstruct``, filled by a checked ``__setstate__``."""
    import numpy as np

    class ndarray(np.ndarray):  # noqa: N801 - named as numpy's, for messages
        """Stand-in for ``numpy.ndarray`` while unpickling; :func:`read_pickle` returns plain arrays."""

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            raise refused_global("numpy", "ndarray", "called to allocate an array; arrays are built from their data")

        def __setstate__(self, state: Any) -> None:
            if not isinstance(state, tuple) or len(state) not in (4, 5):
                raise pickle.UnpicklingError(f"unexpected numpy array state {type(state).__name__}")
            *version, shape, dtype, fortran, data = state
            if not isinstance(data, (bytes, str)):
                raise Refused(f"a numpy array whose data is a {type(data).__name__} (only raw bytes)")
            super().__setstate__((*version, shape, _plain_dtype(dtype), fortran, data))

    ndarray.__qualname__ = "ndarray"
    return ndarray


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> Any:
    """numpy's ``_reconstruct`` as its pickles call it: the empty ``(0,)`` placeholder that BUILD fills."""
    array = _array_type()
    if cls is not array or not isinstance(shape, tuple) or shape != (0,):
        what = getattr(cls, "__qualname__", cls)
        raise refused_global("numpy.core.multiarray", "_reconstruct",
                             f"for {what} of shape {shape!r}; only numpy's (0,) placeholder")
    return _numpy_core("multiarray")._reconstruct(array, shape, typecode)


def _scalar(dtype: Any, *data: Any) -> Any:
    """numpy's ``scalar(dtype, bytes)`` with a plain dtype."""
    if len(data) > 1 or (data and not isinstance(data[0], (bytes, str))):
        raise refused_global("numpy.core.multiarray", "scalar", "only from a dtype and raw bytes")
    return _numpy_core("multiarray").scalar(_plain_dtype(dtype), *data)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any, *rest: Any) -> Any:
    """numpy's ``_frombuffer`` (protocol 5) with a plain dtype; the array refuses a later BUILD as above."""
    if not isinstance(buf, (bytes, bytearray)):
        raise refused_global("numpy.core.numeric", "_frombuffer", f"from a {type(buf).__name__}; only from bytes")
    return _numpy_core("numeric")._frombuffer(buf, _plain_dtype(dtype), shape, order, *rest).view(_array_type())


@functools.lru_cache(maxsize=None)
def base_globals() -> Mapping[GlobalKey, Any]:
    """The globals every reader allows: numpy arrays/dtypes/scalars, builtin containers, latin-1 bytes."""
    import numpy as np

    table: dict[GlobalKey, Any] = {
        ("numpy", "ndarray"): _array_type(),
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    table.update({("builtins", name): getattr(builtins, name) for name in _CONTAINERS})
    table.update({("builtins", kind.__name__): _bytes_from_data(kind) for kind in (bytes, bytearray)})
    for prefix in ("numpy.core", "numpy._core"):  # files name the path of the numpy that wrote them
        table[(f"{prefix}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{prefix}.multiarray", "scalar")] = _scalar
        table[(f"{prefix}.numeric", "_frombuffer")] = _frombuffer
    return MappingProxyType(table)


def _plain_arrays(value: Any, memo: dict[int, tuple[Any, Any]]) -> Any:
    """``value`` with the unpickler's array stand-ins turned into plain ``numpy.ndarray`` views, in place.

    ``memo``: ``id -> (original, replacement)`` (the original is kept alive so ids stay unique).
    """
    known = memo.get(id(value))
    if known is not None:
        return known[1]
    if isinstance(value, _array_type()):
        import numpy as np

        plain = value.view(np.ndarray)
        memo[id(value)] = (value, plain)
        return plain
    memo[id(value)] = (value, value)
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _plain_arrays(item, memo)
    elif isinstance(value, dict):
        for key, item in value.items():
            value[key] = _plain_arrays(item, memo)
    elif isinstance(value, InertRecord):
        _plain_arrays(value.__dict__, memo)
    elif type(value) is tuple:
        items = tuple(_plain_arrays(item, memo) for item in value)
        if any(a is not b for a, b in zip(items, value)):
            memo[id(value)] = (value, items)
            return items
    return value


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only the base allow-list and ``rules.records``; see the module docstring."""

    def __init__(self, file: BinaryIO, rules: PickleRules = PickleRules()) -> None:
        # latin-1 lets numpy arrays written by Python 2 load; text stays text.
        super().__init__(file, encoding="latin1")
        self.rules = rules
        self._record_classes = frozenset(
            value for value in rules.records.values() if isinstance(value, type) and issubclass(value, InertRecord))

    def find_class(self, module: str, name: str) -> Any:
        key = (_PY2_MODULES.get(module, module), name)
        if key == ("copyreg", "_reconstructor"):
            return self._reconstructor
        allowed = base_globals().get(key, self.rules.records.get(key))
        if allowed is None:
            raise refused_global(module, name)
        return allowed

    def _reconstructor(self, cls: Any, base: Any, state: Any) -> Any:
        """``copyreg._reconstructor`` (protocol 0/1 objects) limited to this reader's record classes."""
        if base is not object or cls not in self._record_classes:
            names = ", ".join(str(getattr(t, "__qualname__", t)) for t in (cls, base))
            raise refused_global("copyreg", "_reconstructor", f"for {names}; only for inert records")
        return object.__new__(cls)

    def persistent_load(self, pid: Any) -> Any:
        if self.rules.persistent_load is None:
            raise Refused("a reference to external storage (persistent id; a torch.save file?)")
        return self.rules.persistent_load(pid)


def read_pickle(file: BinaryIO, source: str, rules: PickleRules = PickleRules()) -> Any:
    """Unpickle the open ``file`` with :class:`SafeUnpickler`; ``source`` names it in errors.

    Raises:
        rules.error: a refused global or persistent id, or a truncated/corrupt pickle.
    """
    try:
        return _plain_arrays(SafeUnpickler(file, rules).load(), {})
    except M2PDanceError:  # raised on purpose by a rules.persistent_load hook: already explains itself
        raise
    except Refused as e:
        raise rules.error(_message(source, f"refused to load {e.what}: a {rules.kind} may only hold {rules.holds}, "
                                           f"and no code from the file was run", rules)) from None
    except _UNREADABLE as e:
        raise rules.error(_message(source, f"not a readable {rules.kind} ({type(e).__name__}: {e}); the file may "
                                           f"be truncated or not a pickle, and no code from the file was run",
                                   rules)) from e


def load_pickle(path: PathLike, rules: PickleRules = PickleRules()) -> Any:
    """The object in the pickle file at ``path``, read by :func:`read_pickle` after the size checks.

    Raises:
        rules.error: missing, empty, over :data:`MAX_PICKLE_BYTES`, unopenable, truncated, corrupt,
        or asking for a global outside the allow-list; the message names the file and the fix.
    """
    path = Path(path)
    _check_size(path, rules)
    try:
        file = open(path, "rb")
    except OSError as e:
        raise rules.error(_message(str(path), f"cannot open the {rules.kind} ({e.strerror or e})", rules)) from None
    with file:
        return read_pickle(file, str(path), rules)


def _check_size(path: Path, rules: PickleRules) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise rules.error(_message(str(path), f"{rules.kind} not found", rules)) from None
    if size == 0:
        raise rules.error(_message(str(path), f"the file is empty; expected a {rules.kind}", rules))
    if size > MAX_PICKLE_BYTES:
        raise rules.error(_message(str(path), f"{_human(size)} is larger than the {_human(MAX_PICKLE_BYTES)} a "
                                              f"{rules.kind} may be; it was not read", rules))


def _human(size: int) -> str:
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _message(source: str, problem: str, rules: PickleRules) -> str:
    return f"{source}: {problem}." + (f" {rules.fix}" if rules.fix else "")
