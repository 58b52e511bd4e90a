"""Config as data: one frozen-dataclass pattern shared by every model in the pack.

A model's architecture is fully described by its config; the config travels inside the
weights file (see :mod:`.checkpoint`), so a file always knows what it expects. Each config
class declares named presets (``tiny`` for tests and benchmarks, plus the real sizes).

Usage::

    @dataclass(frozen=True)
    class FooConfig(ModelConfig):
        width: int = 320
        blocks: tuple[int, ...] = (320, 640)
        PRESETS: ClassVar[dict[str, dict]] = {"tiny": {"width": 8, "blocks": (8, 16)}}

    cfg = FooConfig.preset("tiny")
    FooConfig.from_json(cfg.to_json()) == cfg
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, ClassVar, TypeVar

from .errors import InputError

C = TypeVar("C", bound="ModelConfig")


def _tupleize(value: Any) -> Any:
    """JSON has no tuples; turn nested lists back into tuples so configs compare equal."""
    if isinstance(value, list):
        return tuple(_tupleize(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base class: a frozen dataclass with presets and a lossless JSON form."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def preset(cls: type[C], name: str, **overrides: Any) -> C:
        """Build the named preset, optionally overriding fields."""
        if name not in cls.PRESETS:
            raise InputError(
                f"{cls.__name__} has no preset {name!r}; available presets: {sorted(cls.PRESETS)}"
            )
        return cls.from_dict({**cls.PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build from a plain dict; unknown keys are an error (they usually mean a version skew)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(
                f"{cls.__name__} got unknown config keys {unknown}; known keys: {sorted(names)}. "
                "The weights file was probably written by a newer version of m2pdance."
            )
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in data.items():
            is_tuple = "tuple" in str(hints.get(key, ""))
            kwargs[key] = _tupleize(value) if is_tuple else value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), stable across runs, used as file metadata."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
