"""M2PEnc weights files: self-describing safetensors (config + feature kind embedded).

A file written by :func:`save_m2penc` carries ``m2pdance.kind = "m2penc"`` and the model's
:class:`M2PEncConfig` JSON (see :mod:`..checkpoint`), so :func:`load_m2penc` rebuilds the exact
architecture from the file alone and can refuse a model trained on the other feature type
before any music is processed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional, Union

import torch

from ..checkpoint import load_state_dict, load_strict, read_config, save_model
from ..device import resolve_device, resolve_dtype
from ..errors import InputError
from .config import M2PEncConfig
from .model import M2PEnc

#: ``m2pdance.kind`` of M2PEnc weights files.
M2PENC_KIND = "m2penc"
FEATURE_KIND_KEY = "m2pdance.feature_kind"

PathLike = Union[str, os.PathLike]


def save_m2penc(model: M2PEnc, path: PathLike, provenance: Optional[Mapping[str, str]] = None,
                state_dict: Optional[Mapping[str, torch.Tensor]] = None) -> Path:
    """Write ``model`` (weights, config, feature kind) to a safetensors file atomically.

    Args:
        provenance: extra string metadata, e.g. how the weights were trained (``m2pdance.training``).
        state_dict: weights to write instead of the model's own (e.g. their EMA), same keys.
    """
    metadata = {FEATURE_KIND_KEY: model.config.feature_kind, **(provenance or {})}
    return save_model(path, state_dict if state_dict is not None else model.state_dict(), kind=M2PENC_KIND,
                      config_json=model.config.to_json(), extra_metadata=metadata)


def read_m2penc_config(path: PathLike) -> M2PEncConfig:
    """The :class:`M2PEncConfig` embedded in an M2PEnc weights file."""
    return M2PEncConfig.from_dict(read_config(path, M2PENC_KIND))


def load_m2penc(path: PathLike, device: Union[str, torch.device, None] = "cpu",
                dtype: Union[str, torch.dtype] = "fp32",
                feature_kind: Optional[str] = None) -> M2PEnc:
    """Build M2PEnc from a weights file (strict key/shape check) in eval mode.

    Args:
        path: a file written by :func:`save_m2penc`.
        device, dtype: where and in which precision the model lives.
        feature_kind: if given (``"jukebox"``/``"baseline"``), the file must have been trained
            on that kind of music features.
    """
    config = read_m2penc_config(path)
    if feature_kind is not None and feature_kind != config.feature_kind:
        raise InputError(
            f"{Path(path).name} is an M2PEnc trained on {config.feature_kind!r} music features "
            f"({config.in_dim}-d), but {feature_kind!r} features were given; extract "
            f"{config.feature_kind!r} features or pick the matching M2PEnc weights"
        )
    device_ = resolve_device(device)
    with torch.device("meta"):
        model = M2PEnc(config)
    load_strict(model, load_state_dict(path), source=str(path))
    return model.to(device=device_, dtype=resolve_dtype(dtype, device_)).eval()
