"""The dependency rules of ARCHITECTURE.md, checked from the import graph (``ast``, nothing imported).

* Between top-level parts: ``nodes -> m2penc <- training``. ``m2penc`` imports none of ``nodes``,
  ``training``, ``weights_manifest``, ``devtools``, ``cli`` or ComfyUI; ``training`` never imports
  ``nodes``; ``nodes`` never imports ``training`` or ``devtools``.
* Inside ``m2penc``: every module belongs to a layer (:data:`LAYERS`, lowest first) and imports only
  from its own layer's part or from lower layers. Foundation modules at the core's root form layer 0.

:func:`violations` returns one readable line per broken rule; the test suite asserts it is empty.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

#: Layers of the core, lowest first. A part may import its own modules and anything in a lower layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "progress", "device", "config", "timeline", "checkpoint", "safe_pickle", "reference_image",
     "safe_names"),
    ("sampling", "video", "body", "pose"),
    ("jukebox", "motion"),
    ("audio",),
    ("encoder", "render"),
    ("champ", "examples"),
    ("eval",),
    ("dance",),
)
#: Parts of the repository outside the core, and what each may not import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "m2penc": ("nodes", "training", "weights_manifest", "devtools", "cli", "comfy", "comfy_api", "folder_paths"),
    "training": ("nodes", "devtools"),
    "nodes": ("training", "devtools"),
    "weights_manifest": ("nodes", "training", "devtools"),
}
PACKAGE = "m2pdance"


def _layer_of(part: str) -> int:
    for index, parts in enumerate(LAYERS):
        if part in parts:
            return index
    raise KeyError(part)


def _module_name(root: Path, path: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return [PACKAGE] + (parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(root: Path, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, absolute dotted name split) of every import in ``path``; the pack's own names start with m2pdance."""
    module = _module_name(root, path)
    package = module if path.name == "__init__.py" else module[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            else:
                target = (node.module or "").split(".")
            if node.module is None or node.level:
                # ``from . import x`` / ``from .pkg import x``: x may be a submodule
                for alias in node.names:
                    yield node.lineno, target + [alias.name]
            else:
                yield node.lineno, target


def _top(name: list[str]) -> str:
    """The repository part an import lands in (``m2penc``, ``nodes``, ...) or the external package."""
    return name[1] if name[0] == PACKAGE and len(name) > 1 else name[0]


def violations(root: Path) -> list[str]:
    """Every broken rule in the source tree at ``root`` (the repository root), as ``file:line: message``."""
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in {".venv", "tests", "benchmarks", "scripts", "build"} or rel.parts[0].startswith("."):
            continue
        owner = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for line, name in _imports(root, path):
            target = _top(name)
            if target in FORBIDDEN.get(owner, ()):
                problems.append(f"{rel}:{line}: {owner} must not import {'.'.join(name)}")
            if owner == "m2penc" and target == "m2penc" and len(rel.parts) > 1 and len(name) > 2:
                problems.extend(_layer_problem(rel, line, name))
    return problems


def _layer_problem(rel: Path, line: int, name: list[str]) -> list[str]:
    here = rel.parts[1] if len(rel.parts) > 2 else Path(rel.parts[1]).stem
    there = name[2]
    if here == "__init__" or here == there:
        return []
    try:
        low, high = _layer_of(there), _layer_of(here)
    except KeyError as missing:
        return [f"{rel}:{line}: m2penc/{missing.args[0]} has no layer in devtools/import_rules.py LAYERS "
                "(add it, and a line to ARCHITECTURE.md)"]
    if low >= high and not (low == high == 0):
        return [f"{rel}:{line}: m2penc/{here} (layer {high}) must not import m2penc/{there} (layer {low}); "
                "lower layers never import higher ones or their neighbours"]
    return []
