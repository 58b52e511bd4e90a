"""How much RAM the prior needs, and a clear refusal when the machine lacks it.

Loading the 5B prior on a CPU machine that cannot hold it ends in the OOM killer, which
ComfyUI reports as a dead server. We estimate up front -- parameters of layers ``1..L`` (plus
embeddings) at their stored dtype, plus the pickle itself when it must be read whole, plus one
window of activations -- and raise :class:`JukeboxMemoryError` naming the numbers.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import torch

from ..errors import M2PDanceError
from .config import JukeboxConfig
from .files import PathLike
from .prior import TopLevelPrior

_GIB = 1024**3
#: Live (B=1, n_ctx, width)-sized activations in one block's forward, with headroom.
_ACTIVATION_COPIES = 8


class JukeboxMemoryError(M2PDanceError, MemoryError):
    """Not enough free RAM to load or run the Jukebox prior; the message says how much is needed."""


def prior_parameter_bytes(config: JukeboxConfig, layer: int) -> tuple[int, int]:
    """(parameter count, bytes at stored dtypes) of the prior truncated to ``layer``."""
    with torch.device("meta"):
        prior = TopLevelPrior(config, n_layers=layer, with_head=False)
    params = list(prior.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


def activation_bytes(config: JukeboxConfig, compute_dtype: torch.dtype) -> int:
    """Working memory of one context window through one block."""
    element = torch.tensor([], dtype=compute_dtype).element_size()
    return _ACTIVATION_COPIES * config.n_ctx * max(config.prior_width, 3 * config.attn_width) * element


def pickle_read_bytes(prior_path: Optional[PathLike]) -> int:
    """RAM taken just to read the file: its size for a legacy (non-zip) pickle, else 0."""
    if prior_path is None:
        return 0
    path = Path(prior_path)
    if path.suffix != ".safetensors" and path.is_file() and not zipfile.is_zipfile(path):
        return path.stat().st_size
    return 0


def required_bytes(config: JukeboxConfig, layer: int, compute_dtype: torch.dtype,
                   prior_path: Optional[PathLike] = None) -> int:
    """Memory needed to hold the prior up to ``layer`` and run one window; with ``prior_path``,
    also to read that file (a legacy pickle is read whole before unneeded layers are dropped)."""
    _, weights = prior_parameter_bytes(config, layer)
    return max(weights, pickle_read_bytes(prior_path)) + activation_bytes(config, compute_dtype)


def available_bytes() -> int:
    """Free RAM the OS can give us now (psutil, else /proc/meminfo ``MemAvailable``)."""
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    raise JukeboxMemoryError("cannot determine free RAM (no psutil and no /proc/meminfo)")


def check_memory(required: int, what: str, available: Optional[int] = None) -> None:
    """Raise :class:`JukeboxMemoryError` if ``required`` bytes exceed ``available`` (default: free RAM)."""
    free = available_bytes() if available is None else available
    if required > free:
        raise JukeboxMemoryError(
            f"{what} needs about {required / _GIB:.1f} GiB of RAM but only {free / _GIB:.1f} GiB is free. "
            "Use a lower layer (layer 36 needs about half of layer 72), a CUDA GPU, or convert the "
            "checkpoint once to safetensors with convert_jukebox_checkpoint(..., max_layer=L) so it "
            "is not read whole; or close other programs."
        )
