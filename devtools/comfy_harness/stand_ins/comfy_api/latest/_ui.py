"""Stand-in for ``comfy_api.latest._ui``: what a node returns for the frontend to show."""
from __future__ import annotations

import os
import uuid

import numpy as np

from ._io import FolderType


class SavedResult(dict):
    """A file the frontend can fetch: ``{"filename", "subfolder", "type"}``."""

    def __init__(self, filename: str, subfolder: str, type: FolderType):
        super().__init__(filename=filename, subfolder=subfolder, type=type.value)

    @property
    def filename(self) -> str:
        return self["filename"]


class _UIOutput:
    def as_dict(self) -> dict:
        raise NotImplementedError


class PreviewVideo(_UIOutput):
    """Show saved video files (ComfyUI lists them under ``images`` with ``animated``)."""

    def __init__(self, values: list, **kwargs):
        self.values = values

    def as_dict(self) -> dict:
        return {"images": self.values, "animated": (True,)}


class PreviewText(_UIOutput):
    def __init__(self, value: str, **kwargs):
        self.value = value

    def as_dict(self) -> dict:
        return {"text": (self.value,)}


class PreviewImage(_UIOutput):
    """Write an IMAGE batch to the temp folder as PNGs and show them."""

    def __init__(self, image, animated: bool = False, cls=None, **kwargs):
        import folder_paths
        from PIL import Image

        out_dir = folder_paths.get_temp_directory()
        os.makedirs(out_dir, exist_ok=True)
        self.values = []
        for frame in image:
            name = f"preview_{uuid.uuid4().hex[:12]}.png"
            pixels = (frame.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(out_dir, name))
            self.values.append(SavedResult(name, "", FolderType.temp))
        self.animated = animated

    def as_dict(self) -> dict:
        return {"images": self.values, "animated": (self.animated,)}
