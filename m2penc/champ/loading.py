"""Shared helpers to build modules cheaply and fill them strictly from weights files.

Full-size modules are built on the ``meta`` device (no memory, no random init) and receive their
tensors from the file with ``load_strict(..., assign=True)``; only then are they moved to the
target device/dtype. Any tensor still on ``meta`` afterwards is an error, never a silent zero.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar, Union

import torch
from torch import nn

from ..checkpoint import PathLike, load_state_dict, load_strict
from ..errors import WeightsError, WeightsNotFoundError

M = TypeVar("M", bound=nn.Module)
#: Weight-file names tried, in order, inside a diffusers/transformers component folder.
FOLDER_WEIGHT_NAMES: tuple[str, ...] = (
    "diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.bin", "pytorch_model.bin",
)


def build_on_meta(factory: Callable[[], M]) -> M:
    """Construct a module without allocating or initialising its tensors."""
    with torch.device("meta"):
        return factory()


def finish_loading(module: M, state_dict: Mapping[str, torch.Tensor], source: str,
                   device: Union[str, torch.device], dtype: torch.dtype) -> M:
    """Strictly load ``state_dict`` (naming ``source`` on mismatch), then move and freeze the module."""
    load_strict(module, state_dict, source)
    still_meta = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if still_meta:
        raise WeightsError(f"{source}: tensors left uninitialised after loading: {still_meta[:10]}")
    return place(module, device, dtype)


def place(module: M, device: Union[str, torch.device], dtype: torch.dtype) -> M:
    """Move to ``device``/``dtype`` in inference mode.

    Calls ``nn.Module.to`` directly: diffusers' ``ModelMixin.to`` warns on every dtype cast
    about (here empty) fp32-only module lists, which would spam every load.
    """
    return nn.Module.to(module, device=device, dtype=dtype).eval().requires_grad_(False)


def find_weights(path: PathLike, stems: Sequence[str] = ()) -> Path:
    """Resolve a weights file: ``path`` itself, a known file inside a folder, or ``<folder>/<stem>.*``."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        names = [f"{s}{ext}" for s in stems for ext in (".safetensors", ".pth", ".pt", ".bin")]
        for name in [*names, *FOLDER_WEIGHT_NAMES]:
            if (path / name).is_file():
                return path / name
        raise WeightsNotFoundError(f"no weights file in {path}; expected one of {[*names, *FOLDER_WEIGHT_NAMES]}")
    raise WeightsNotFoundError(f"weights path not found: {path}")


def folder_config(path: PathLike) -> dict[str, Any]:
    """The ``config.json`` next to (or inside) a component path, or ``{}`` if there is none."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    return json.loads(config.read_text()) if config.is_file() else {}


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Safe read (safetensors or ``weights_only`` pickle) of one file."""
    return load_state_dict(path, map_location="cpu")
