"""The small set of exceptions the core raises.

Every user-facing failure is one of these, with a message that names the value received,
what was expected, and what to do about it. ComfyUI shows the message verbatim, so it is the
whole user interface of an error. Internal invariants use ``assert``; user input never does.
"""
from __future__ import annotations


class M2PDanceError(Exception):
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
