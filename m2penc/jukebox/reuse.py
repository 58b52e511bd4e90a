"""Keeping loaded Jukebox models between calls, in bounded memory.

Loading the 5B prior up to layer 66 reads several GB and takes tens of seconds, so a caller
extracting features for several songs should pay it once. Two ways, both supported by
:func:`..audio.features.extract_music_features`:

* hold a :class:`.extractor.JukeboxFeatureExtractor` yourself (from :func:`.extractor.load_jukebox`)
  and pass it in: explicit ownership, freed when you drop it. This is what a node graph does
  (the loader node's output is the model).
* an :class:`ExtractorCache`: a small LRU keyed by the weights files' identity (resolved path,
  size, mtime), the layer, device, dtype and an explicit config, so replacing a file on disk
  or asking for another precision loads afresh.

The cache is bounded on purpose: two 5B priors rarely fit in RAM, so the default holds one
model, and the least recently used entry is dropped *before* a new one is loaded, keeping the
peak at one model. Entries are keyed by the exact layer (a prior loaded to layer 66 is not
reused for layer 36) to keep the key obvious.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Optional, Union

import torch

from ..device import resolve_device, resolve_dtype
from ..errors import InputError
from .config import JukeboxConfig
from .extractor import DtypeLike, JukeboxFeatureExtractor, load_jukebox
from .files import PRIOR_FILENAME, VQVAE_FILENAME, PathLike, require_weights_file
from .self_describing import weights_fingerprint

log = logging.getLogger(__name__)

CacheKey = tuple[str, int, str, str, Optional[str]]


class ExtractorCache:
    """At most ``maxsize`` loaded extractors, least recently used dropped first."""

    def __init__(self, maxsize: int = 1) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise InputError(f"ExtractorCache maxsize must be an int >= 1, got {maxsize!r}")
        self.maxsize = maxsize
        self._entries: OrderedDict[CacheKey, JukeboxFeatureExtractor] = OrderedDict()

    @staticmethod
    def key_for(vqvae_path: Optional[PathLike], prior_path: Optional[PathLike], layer: int,
                device: Union[str, torch.device, None] = "cpu", dtype: DtypeLike = torch.float32,
                config: Optional[JukeboxConfig] = None) -> CacheKey:
        """(weights fingerprint, layer, device, dtype, config JSON); raises if a file is missing."""
        vqvae_file = require_weights_file(vqvae_path, VQVAE_FILENAME, "Jukebox VQ-VAE")
        prior_file = require_weights_file(prior_path, PRIOR_FILENAME, "Jukebox top-level prior")
        device_ = resolve_device(device)
        dtype_ = resolve_dtype(dtype, device_)
        return (weights_fingerprint(vqvae_file, prior_file), layer, str(device_), str(dtype_),
                None if config is None else config.to_json())

    def get(self, vqvae_path: Optional[PathLike], prior_path: Optional[PathLike], layer: int,
            device: Union[str, torch.device, None] = "cpu", dtype: DtypeLike = torch.float32,
            config: Optional[JukeboxConfig] = None) -> JukeboxFeatureExtractor:
        """The extractor for these files and settings, loading it (via :func:`load_jukebox`) on a miss."""
        key = self.key_for(vqvae_path, prior_path, layer, device, dtype, config)
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        while len(self._entries) >= self.maxsize:
            self._entries.popitem(last=False)  # free memory before loading the next model
        log.info("loading Jukebox models (layer %d, %s, %s)", layer, key[2], key[3])
        extractor = load_jukebox(vqvae_path, prior_path, layer, device, dtype, config)
        self._entries[key] = extractor
        return extractor

    def clear(self) -> None:
        """Drop every loaded model (the memory is freed once no caller holds them)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
