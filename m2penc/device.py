"""Device and dtype resolution: always parameters, never hard-coded.

``"auto"`` means fp16 on CUDA (what Champ runs in), fp32 elsewhere; bf16 is offered where the
device supports it. Nodes take the device from ``comfy.model_management``; the CLI and tests
pass ``"cpu"``.
"""
from __future__ import annotations

from typing import Union

import torch

from .errors import InputError

DTYPE_NAMES: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
_BY_NAME = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    """``None``/``"auto"`` -> CUDA if available, else CPU; anything else as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(name: Union[str, torch.dtype], device: Union[str, torch.device]) -> torch.dtype:
    """Map a dtype name (``auto``/``fp32``/``fp16``/``bf16``) or a dtype to a ``torch.dtype``."""
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPE_NAMES:
        raise InputError(f"dtype must be one of {DTYPE_NAMES}, got {name!r}")
    if name == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return _BY_NAME[name]
