"""The small set of exceptions the core raises.

Every user-facing failure is one of these, with a message that names the value received,
what was expected, and what to do about it. ComfyUI shows the message verbatim, so it is the
whole user interface of an error. Internal invariants use ``assert``; user input never does.
"""
from __future__ import annotations

import copyreg
import importlib

#: The module name every error class shows. ComfyUI names a failing node's exception
#: ``f"{cls.__module__}.{cls.__qualname__}"``, and inside ComfyUI our modules have path-derived
#: names (``/x/custom_nodes/M2PDance.m2penc.errors``), so the UI would show a file path.
SHOWN_MODULE = "m2pdance"


class _ErrorType(type):
    """Metaclass of the project's errors: shown as ``m2pdance.<Name>``, pickled by where they live."""

    def __new__(mcs, name, bases, namespace, **kwargs):
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        cls._defined_in = namespace.get("__module__", __name__)
        cls.__module__ = SHOWN_MODULE
        return cls


def _error_class(module: str, qualname: str) -> type:
    """Unpickling helper: the class ``qualname`` from the module that defined it."""
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _reduce_error_type(cls: _ErrorType):
    return _error_class, (cls._defined_in, cls.__qualname__)


# ``m2pdance.<Name>`` is not importable, so classes (and instances, whose pickles name their class)
# are pickled through _error_class: DataLoader workers and multiprocessing still pass our errors on.
copyreg.pickle(_ErrorType, _reduce_error_type)


class M2PDanceError(Exception, metaclass=_ErrorType):
    """Base class of every error raised on purpose by m2pdance."""


class InputError(M2PDanceError, ValueError):
    """An argument is outside what the function supports (shape, range, size, format)."""


class AudioError(InputError):
    """Music that cannot be used: unreadable, empty, silent, too short or too long."""


class WeightsError(M2PDanceError):
    """A weights file that cannot be used."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A weights file is missing; the message names the file, the folder and how to get it."""


class WeightsMismatchError(WeightsError):
    """A weights file does not fit the module: missing/unexpected keys or wrong shapes."""


class GenerationCancelled(M2PDanceError):
    """The caller's cancel hook asked to stop; no output was written."""
