"""Reading OpenAI's Jukebox checkpoints safely, and converting them to safetensors once.

``vqvae.pth.tar`` and ``prior_level_2.pth.tar`` are pickles of ``{"hps": {...}, "model":
state_dict, "step": int, ...}``. They are read with ``torch.load(weights_only=True)``: no code is
ever run. The few non-tensor globals such files may reference (the ``hps`` dict, possibly as
``jukebox.hparams.Hyperparams``, and numpy scalars inside it) are allow-listed and mapped to
plain data. Some copies prefix every key with ``module.`` (DataParallel); it is stripped.

Reading a 10 GB pickle needs the whole file in RAM (zip-format files are memory-mapped
instead). :func:`convert_jukebox_checkpoint` writes a safetensors file, optionally keeping only
layers ``<= max_layer``, after which loading reads just the tensors the model needs.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..checkpoint import KIND_KEY, atomic_write
from ..errors import WeightsError
from .files import PathLike
from .self_describing import CONVERTED_KIND, MAX_LAYER_KEY

KeyFilter = Callable[[str], bool]
_LAYER_KEY = re.compile(r"^prior\.transformer\._attn_mods\.(\d+)\.")


def _numpy_scalar_constructor() -> Callable:
    try:  # numpy >= 2
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


def _safe_globals() -> list:
    """Pickle globals found in Jukebox checkpoints' metadata, mapped to harmless data types: the
    ``hps`` dict (possibly pickled as ``jukebox.hparams.Hyperparams``, a dict subclass) and numpy
    scalars inside it."""
    scalar = _numpy_scalar_constructor()
    allowed: list = [(dict, "jukebox.hparams.Hyperparams"), (scalar, "numpy.core.multiarray.scalar"),
                     (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    if dtypes is not None:
        allowed += [(getattr(dtypes, n), f"numpy.dtypes.{n}")
                    for n in ("Int64DType", "Int32DType", "Float64DType", "Float32DType", "BoolDType")]
    return allowed


def layer_of_key(key: str) -> Optional[int]:
    """0-based transformer layer index a prior key belongs to, or None."""
    match = _LAYER_KEY.match(key)
    return int(match.group(1)) if match else None


def keys_up_to_layer(max_layer: Optional[int]) -> KeyFilter:
    """Filter keeping everything except transformer layers beyond ``max_layer`` (1-based) and the
    logits head ``prior.x_out`` (not needed for features); ``None`` keeps all keys."""
    if max_layer is None:
        return lambda key: True

    def keep(key: str) -> bool:
        layer = layer_of_key(key)
        return (layer is None or layer < max_layer) and not key.startswith("prior.x_out.")

    return keep


def _strip_prefix(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _load_pickle(path: Path) -> object:
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except MemoryError:
        raise
    except Exception as e:
        raise WeightsError(
            f"could not read {path} safely ({type(e).__name__}: {str(e)[-400:]}). The file may be truncated "
            "(compare its size with the download page) or hold objects this loader refuses to unpickle."
        ) from e


def _model_state(obj: object, path: Path) -> dict:
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no Jukebox state dict (expected a 'model' mapping of tensors)")
    return state


def read_jukebox_state_dict(path: PathLike, keep: KeyFilter = lambda key: True) -> dict[str, torch.Tensor]:
    """Tensors of a Jukebox ``.pth.tar`` or converted ``.safetensors``, ``module.`` stripped,
    restricted to keys for which ``keep(key)`` is true (others are never materialised when the
    format allows it)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                return {_strip_prefix(k): f.get_tensor(k) for k in f.keys() if keep(_strip_prefix(k))}
        except Exception as e:
            raise WeightsError(f"could not read safetensors file {path}: {e}") from e
    state = _model_state(_load_pickle(path), path)
    return {_strip_prefix(k): v for k, v in state.items() if keep(_strip_prefix(k))}


def convert_jukebox_checkpoint(src: PathLike, dst: PathLike, max_layer: Optional[int] = None) -> Path:
    """Write ``src`` (``.pth.tar``) as safetensors at ``dst``; with ``max_layer`` keep only prior
    layers ``1..max_layer`` (and drop the logits head). Atomic: no partial file on failure."""
    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise WeightsError(f"destination must end in .safetensors, got {dst.name}")
    state = read_jukebox_state_dict(src, keys_up_to_layer(max_layer))
    tensors = {k: v.contiguous() for k, v in state.items()}
    meta = {KIND_KEY: CONVERTED_KIND, "source": src.name, MAX_LAYER_KEY: json.dumps(max_layer)}
    return atomic_write(dst, lambda tmp: save_file(tensors, tmp, metadata=meta))
