"""The one check for a file name that must stay inside a folder (ComfyUI's input or a models folder).

Every file-name widget and command-line argument that names a file *inside* a folder goes through
:func:`safe_path`. It refuses, with an :class:`~.errors.InputError` that names the folder:

* empty names, absolute paths (``/etc/passwd``, ``C:\\x``, ``\\\\server\\share``) and ``..`` components
  (``/`` and ``\\`` both count as separators, so ``..\\x`` is refused on every platform);
* NUL and other control characters (C0, DEL, C1), which no file picker produces;
* names longer than :data:`MAX_NAME_CHARS` characters in total or with a component longer than
  :data:`MAX_COMPONENT_BYTES` UTF-8 bytes (the usual file-system limit, ``NAME_MAX``);
* names that resolve (through symlinks) outside the folder. A symlink whose target stays inside the
  folder is fine; a symlinked *folder root* is fine too (the check compares real paths).

It does not check that the file exists: callers say "not found" in their own words.
"""
from __future__ import annotations

import os
import re

from .errors import InputError

#: Longest name accepted, in characters (the relative name, sub-folders included).
MAX_NAME_CHARS = 1024
#: Longest single path component, in UTF-8 bytes (``NAME_MAX`` on Linux, macOS and Windows' NTFS).
MAX_COMPONENT_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def check_name(name: object, folder: str) -> str:
    """``name`` as a relative path with ``/`` separators, or an :class:`InputError` naming ``folder``.

    ``folder`` is how the folder is shown to the user (e.g. ``"ComfyUI's input folder (/x/input)"``).
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"no file name given: pick a file in {folder}")
    shown = name if len(name) <= 80 else name[:77] + "..."
    if _CONTROL.search(name):
        raise InputError(f"unsafe file name {shown!r}: it contains a NUL or control character; "
                         f"pick a file in {folder}")
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"file name too long ({len(name)} characters, at most {MAX_NAME_CHARS}): "
                         f"pick a file in {folder}")
    slashed = name.replace("\\", "/")
    if slashed.startswith("/") or os.path.isabs(name) or _DRIVE.match(name):
        raise InputError(f"unsafe file name {shown!r}: absolute paths are refused; "
                         f"give a name relative to {folder}")
    parts = slashed.split("/")
    if ".." in parts:
        raise InputError(f"unsafe file name {shown!r}: '..' would leave {folder}; pick a file inside it")
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise InputError(f"file name too long: a part of {shown!r} has more than {MAX_COMPONENT_BYTES} "
                             f"bytes; pick a file in {folder}")
    return "/".join(p for p in parts if p not in ("", "."))


def safe_path(name: object, root: str, folder: str = "") -> str:
    """The path of ``name`` inside the folder ``root``, after :func:`check_name`; symlinks that
    resolve outside ``root`` are refused. ``folder`` is the label for messages (default: ``root``)."""
    label = folder or f"the folder {root}"
    relative = check_name(name, label)
    real_root = os.path.realpath(root)
    path = os.path.join(root, *relative.split("/")) if relative else root
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise InputError(f"file {name!r} resolves outside {label} (a symlink points elsewhere); "
                         "refusing to read it")
    if not relative:
        raise InputError(f"no file name given: pick a file in {label}")
    return path
