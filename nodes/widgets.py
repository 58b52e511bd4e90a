"""Inputs several nodes share, declared once so their ranges, defaults and tooltips agree."""
from __future__ import annotations

from comfy_api.latest import io

from ..m2penc.device import DTYPE_NAMES

#: Pixel sizes must be multiples of the VAE's downsampling factor.
SIZE_STEP = 8


def dtype_input() -> io.Combo.Input:
    return io.Combo.Input("dtype", options=list(DTYPE_NAMES), default="auto",
                          tooltip="auto = fp16 on CUDA (as Champ runs), fp32 on CPU.")


def size_inputs(default: int = 512) -> list[io.Int.Input]:
    return [io.Int.Input(name, default=default, min=64, max=2048, step=SIZE_STEP,
                         tooltip=f"Video {name} in pixels (multiple of {SIZE_STEP}).")
            for name in ("width", "height")]


def check_size(width: int, height: int) -> bool | str:
    """``validate_inputs`` helper: True, or the message ComfyUI shows."""
    if width % SIZE_STEP or height % SIZE_STEP:
        return f"width and height must be multiples of {SIZE_STEP} (the VAE's scale), got {width}x{height}"
    return True
