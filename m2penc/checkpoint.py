"""Weights files: safe reading, self-describing safetensors writing, strict loading.

* ``.pth``/``.pt``/``.bin``/``.ckpt`` are read with ``torch.load(weights_only=True)``: no code is
  ever unpickled. ``.safetensors`` are memory-mapped.
* Files we write are safetensors whose metadata carries ``m2pdance.kind`` (which model) and
  ``m2pdance.config`` (its config JSON), so :func:`read_config` rebuilds the architecture from the
  file alone (whisper keeps its dims in the checkpoint the same way).
* :func:`load_strict` loads a state dict into a module and, on any mismatch, raises
  :class:`~.errors.WeightsMismatchError` listing missing, unexpected and mis-shaped keys and the
  file they came from. There is no silent partial load anywhere in the pack.
* Writes go to a temporary file in the target folder, are synced to disk and renamed on success
  (:func:`atomic_write`).
"""
from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .errors import WeightsError, WeightsMismatchError, WeightsNotFoundError

PathLike = Union[str, os.PathLike]
KIND_KEY = "m2pdance.kind"
CONFIG_KEY = "m2pdance.config"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
#: How many key names an error message lists before summarising.
_MAX_LISTED = 20


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path}")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|GLOBAL) ([\w.]+)")


def carries_code(error: BaseException) -> bool:
    """True if ``torch.load(weights_only=True)`` refused the file because its pickle needs code."""
    return isinstance(error, pickle.UnpicklingError) and "weights only load failed" in str(error).lower()


def _read_failure(path: Path, error: BaseException) -> str:
    """One short message (file, what is wrong, what to do) for a weights file torch could not read.

    torch's own text (ANSI codes, advice to set ``weights_only=False``) is not repeated.
    """
    if carries_code(error):
        found = _GLOBAL.search(_ANSI.sub("", str(error)))
        what = f" (it names {found.group(1)})" if found else ""
        return (f"{path.name}: this file holds Python objects besides tensors{what}, which would run code "
                "when loaded; M2PDance reads weights without running code and will not load it. Get the "
                "file from the source `m2pdance weights list` names, or a .safetensors version of it.")
    detail = _ANSI.sub("", str(error)).strip().splitlines()
    detail = (detail[0][:160] if detail else "")
    return (f"{path.name}: not a readable weights file ({type(error).__name__}{': ' + detail if detail else ''}); "
            "it may be truncated or corrupt: download it again and check it with `m2pdance weights verify`.")


def load_state_dict(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a pickled torch file, safely.

    A torch file holding ``{"state_dict": ...}`` (a common training-checkpoint wrapper) is
    unwrapped. Anything that is not a flat mapping of tensors is an error.
    """
    path = Path(path)
    _require_file(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path), device=str(map_location))
        if path.name.endswith(PICKLE_SUFFIXES):
            obj = torch.load(str(path), map_location=map_location, weights_only=True)
        else:
            raise WeightsError(
                f"{path.name}: unknown weights format {path.suffix!r}; use .safetensors or .pth"
            )
    except (WeightsError, MemoryError):
        raise
    except Exception as e:  # corrupt/truncated file, or a pickle that needs code
        raise WeightsError(_read_failure(path, e)) from e
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a flat mapping of tensors (a state dict)")
    return dict(obj)


def read_metadata(path: PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file (empty for other formats)."""
    path = Path(path)
    _require_file(path)
    if path.suffix != ".safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:
        raise WeightsError(f"could not read safetensors header of {path}: {e}") from e


def read_config(path: PathLike, expected_kind: str) -> dict[str, Any]:
    """The config dict embedded by :func:`save_model`; checks the file holds ``expected_kind``."""
    meta = read_metadata(path)
    kind = meta.get(KIND_KEY)
    if kind != expected_kind:
        found = f"a {kind!r} model" if kind else "no m2pdance metadata"
        raise WeightsError(
            f"{Path(path).name} holds {found}, but a {expected_kind!r} model was expected. "
            "Pick the right file for this slot (see `m2pdance weights list`)."
        )
    try:
        config = json.loads(meta[CONFIG_KEY])
    except (KeyError, ValueError) as e:  # a damaged header: the config is missing or not JSON
        config = e
    if not isinstance(config, dict):
        raise WeightsError(f"{Path(path).name}: its {CONFIG_KEY!r} metadata is missing or damaged; the file is "
                           "corrupt: download or export it again and check it with `m2pdance weights verify`.")
    return config


def atomic_write(path: PathLike, write_fn) -> Path:
    """Call ``write_fn(tmp_path)`` then rename onto ``path``; on failure remove the temp file.

    The temp file (``.{name}.*.partial`` in the target folder) is flushed to disk with
    ``os.fsync`` before the rename, and the folder after it (POSIX; ignored where a folder cannot
    be synced), so after a crash or power loss ``path`` is the old file or the complete new one,
    never a renamed file whose data had not reached the disk (zero-filled or short).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=str(path.parent))
    os.close(fd)
    try:
        write_fn(tmp)
        _fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)
    return path


def _fsync_file(path: str) -> None:
    """Flush ``path``'s data and metadata to disk (opened read-write: Windows syncs only writable handles)."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``): ComfyUI runs
    nodes in a worker thread, and ``os.umask(0)`` to read it would briefly make every other thread's new
    files world-writable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened or synced."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. EINVAL on file systems that do not support syncing a folder
        pass
    finally:
        os.close(fd)


def save_model(
    path: PathLike,
    state_dict: Mapping[str, torch.Tensor],
    kind: str,
    config_json: str,
    extra_metadata: Optional[Mapping[str, str]] = None,
) -> Path:
    """Write a self-describing safetensors file (atomically)."""
    meta = {KIND_KEY: kind, CONFIG_KEY: config_json, **(extra_metadata or {})}
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f", ... (+{more} more)" if more > 0 else "")


def compare_state_dict(
    expected: Mapping[str, tuple[int, ...]], given: Mapping[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[str]]:
    """Compare two key->shape maps: (missing, unexpected, shape mismatches as text)."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = sorted(
        f"{k}: file {tuple(given[k])} vs model {tuple(expected[k])}"
        for k in set(expected) & set(given)
        if tuple(expected[k]) != tuple(given[k])
    )
    return missing, unexpected, mismatched


def mismatch_message(source: str, missing: list[str], unexpected: list[str], mismatched: list[str]) -> str:
    """One readable paragraph per kind of mismatch, naming the file."""
    parts = [f"weights in {source} do not fit the model:"]
    if missing:
        parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches: {_listing(mismatched)}")
    parts.append("Check that the file is the one this slot expects (`m2pdance weights verify`).")
    return "\n".join(parts)


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module``; any missing/unexpected/mis-shaped key is an error."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing, unexpected, mismatched = compare_state_dict(expected, given)
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(mismatch_message(source, missing, unexpected, mismatched))
    module.load_state_dict(state_dict, strict=True, assign=any(p.is_meta for p in module.parameters()))
