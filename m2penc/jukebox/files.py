"""Where the Jukebox weights come from, and the error that says so.

The pack never downloads: the user fetches OpenAI's files once and puts them in ComfyUI's
``models/jukebox/`` folder (or anywhere, passing explicit paths). A converted ``.safetensors``
(see :func:`.checkpoint_io.convert_jukebox_checkpoint`) is accepted wherever a ``.pth.tar`` is.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ..errors import WeightsNotFoundError

PathLike = Union[str, os.PathLike]

VQVAE_FILENAME = "vqvae.pth.tar"
PRIOR_FILENAME = "prior_level_2.pth.tar"
#: OpenAI's public mirror of the ``5b`` model files (jukemirlib/jukebox-infer use the same).
REMOTE_PREFIX = "https://openaipublic.azureedge.net/jukebox/models/5b/"
#: Alternative mirror named by jukemirlib.
ALT_REMOTE_PREFIX = "https://storage.googleapis.com/jukebox-weights/"
COMFY_SUBFOLDER = "models/jukebox"
_SIZES = {VQVAE_FILENAME: "about 8 MB", PRIOR_FILENAME: "about 10 GB"}


def where_to_get(filename: str) -> str:
    """One sentence naming the download URL and the folder the file belongs in."""
    return (
        f"Download {filename} ({_SIZES.get(filename, 'size unknown')}) from {REMOTE_PREFIX}{filename} "
        f"(mirror: {ALT_REMOTE_PREFIX}{filename}) and put it in ComfyUI's {COMFY_SUBFOLDER}/ folder, "
        "or pass its path explicitly."
    )


def safetensors_name(filename: str) -> str:
    """``vqvae.pth.tar`` -> ``vqvae.safetensors``: the converted name a folder lookup also accepts."""
    return filename.removesuffix(".pth.tar") + ".safetensors"


def require_weights_file(path: Optional[PathLike], filename: str, what: str) -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise WeightsNotFoundError."""
    if path is None:
        raise WeightsNotFoundError(f"no {what} weights file was given (expected {filename}). {where_to_get(filename)}")
    path = Path(path).expanduser()
    if path.is_dir():
        candidates = [path / filename, path / safetensors_name(filename)]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise WeightsNotFoundError(
            f"{what} weights not found: the folder {path} holds neither {candidates[0].name} nor "
            f"{candidates[1].name}. {where_to_get(filename)}"
        )
    if not path.is_file():
        raise WeightsNotFoundError(f"{what} weights file not found: {path}. {where_to_get(filename)}")
    return path
