"""Inputs several nodes share, declared once so their ranges, defaults and tooltips agree."""
from __future__ import annotations

from typing import Optional

from comfy_api.latest import io

from ..m2penc.device import DTYPE_NAMES
from ..m2penc.errors import InputError

#: Pixel sizes must be multiples of the VAE's downsampling factor.
SIZE_STEP = 8


def dtype_input() -> io.Combo.Input:
    return io.Combo.Input("dtype", options=list(DTYPE_NAMES), default="auto",
                          tooltip="auto = fp16 on CUDA (as Champ runs), fp32 on CPU.")


def size_inputs(default: int = 512) -> list[io.Int.Input]:
    return [io.Int.Input(name, default=default, min=64, max=2048, step=SIZE_STEP,
                         tooltip=f"Video {name} in pixels (multiple of {SIZE_STEP}).")
            for name in ("width", "height")]


def check_size(width: Optional[int], height: Optional[int]) -> bool | str:
    """``validate_inputs`` helper: True, or the message ComfyUI shows.

    A linked input arrives as ``None`` at validation (ComfyUI validates before the graph runs): it is
    checked in ``execute`` by :func:`require_size` instead.
    """
    if width is None or height is None:
        return True
    if width % SIZE_STEP or height % SIZE_STEP:
        return f"width and height must be multiples of {SIZE_STEP} (the VAE's scale), got {width}x{height}"
    return True


def require_size(width: int, height: int) -> None:
    """``execute`` side of :func:`check_size` (values from links are only known here): raises InputError."""
    problem = check_size(width, height)
    if problem is not True:
        raise InputError(problem)
