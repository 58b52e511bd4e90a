"""On-disk cache of music features, so a re-run with a new reference photo costs nothing.

Jukebox features take minutes per song on a GPU; the baseline set takes seconds. Both depend
only on the music, the extractor and the trim window, never on the photo or the diffusion
settings, so they are cached by exactly that key:
``(audio content hash, kind, layer, fps, start, duration, extra)``.

Entries are safetensors files (one tensor ``features``) whose metadata repeats the key; a file
whose metadata does not match its key, or that cannot be read, is treated as a miss and
rewritten. Writes are atomic (temporary file + rename), so an interrupted run never leaves a
half-written entry behind.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..checkpoint import atomic_write
from .featureset import MusicFeatures

log = logging.getLogger(__name__)

#: Bump when the feature computation changes, so old entries stop matching.
CACHE_FORMAT_VERSION = "1"
#: Environment variable that overrides the default cache folder.
CACHE_DIR_ENV = "M2PDANCE_CACHE_DIR"
_META_KEY = "m2pdance.music_features"
_TENSOR = "features"

PathLike = Union[str, os.PathLike]


def default_cache_dir() -> Path:
    """``$M2PDANCE_CACHE_DIR``, else ``$XDG_CACHE_HOME/m2pdance/music_features`` (``~/.cache``)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "m2pdance" / "music_features"


def audio_content_hash(audio: Mapping[str, Any]) -> str:
    """A 32-hex-digit BLAKE2b of an AUDIO dict's sample rate, shape and float32 samples."""
    waveform = audio["waveform"].detach().to("cpu", dtype=torch.float32).contiguous()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{int(audio['sample_rate'])}:{tuple(waveform.shape)}".encode())
    digest.update(memoryview(waveform.numpy()).cast("B"))
    return digest.hexdigest()


def cache_key(source_hash: str, kind: str, layer: Optional[int], fps: float, start: float,
              duration: Optional[float], extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The full identity of a feature computation, as a JSON-ready dict."""
    return {
        "version": CACHE_FORMAT_VERSION, "source_hash": source_hash, "kind": kind, "layer": layer,
        "fps": float(fps), "start": float(start),
        "duration": None if duration is None else float(duration), "extra": dict(extra or {}),
    }


class FeatureCache:
    """A folder of cached :class:`MusicFeatures`, one safetensors file per key."""

    def __init__(self, directory: Optional[PathLike] = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def path_for(self, key: Mapping[str, Any]) -> Path:
        """File that holds (or will hold) the entry for ``key``."""
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:40]
        return self.directory / f"{key['kind']}-{name}.safetensors"

    def load(self, key: Mapping[str, Any]) -> Optional[MusicFeatures]:
        """The cached features for ``key``, or ``None`` on a miss (absent, stale or unreadable)."""
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get(_META_KEY, "null"))
                tensor = f.get_tensor(_TENSOR)
        except Exception as e:  # a truncated or foreign file is a miss, and gets rewritten
            log.warning("ignoring unreadable music-feature cache entry %s: %s", path, e)
            return None
        if meta != json.loads(json.dumps(dict(key), sort_keys=True)):
            log.warning("ignoring music-feature cache entry %s: it belongs to another key", path)
            return None
        return MusicFeatures(features=tensor, fps=key["fps"], kind=key["kind"], layer=key["layer"],
                             source_hash=key["source_hash"], start_seconds=key["start"])

    def store(self, key: Mapping[str, Any], features: MusicFeatures) -> Path:
        """Write ``features`` under ``key`` atomically; returns the file path."""
        meta = {_META_KEY: json.dumps(dict(key), sort_keys=True)}
        tensors = {_TENSOR: features.features.detach().cpu().contiguous()}
        return atomic_write(self.path_for(key), lambda tmp: save_file(tensors, tmp, metadata=meta))

    def __contains__(self, key: Mapping[str, Any]) -> bool:
        return self.path_for(key).is_file()
