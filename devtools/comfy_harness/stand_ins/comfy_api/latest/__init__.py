"""Stand-in for ``comfy_api.latest``: ``io``, ``ui``, ``ComfyExtension``, ``InputImpl``, ``Types``."""
from __future__ import annotations

from abc import ABC, abstractmethod
from fractions import Fraction
from typing import Any, NamedTuple, Optional

from . import _io as io
from . import _ui as ui


class ComfyExtension(ABC):
    """What ``comfy_entrypoint()`` returns: lists the pack's V3 node classes."""

    async def on_load(self) -> None:
        """Called once after the extension is created."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The node classes this extension registers."""


class _VideoComponents(NamedTuple):
    images: Any
    audio: Optional[dict]
    frame_rate: Fraction


class _VideoFromFile:
    """Stand-in for ``InputImpl.VideoFromFile``: a video that lives in a file."""

    def __init__(self, file):
        self._file = file

    def get_stream_source(self):
        """The path (or file object) the video reads from."""
        return self._file

    def get_dimensions(self) -> tuple[int, int]:
        """(width, height) of the first video stream."""
        import av

        with av.open(self._file) as container:
            stream = container.streams.video[0]
            return stream.width, stream.height

    def get_duration(self) -> float:
        """Duration of the container in seconds."""
        import av

        with av.open(self._file) as container:
            return float(container.duration / av.time_base)


class _VideoFromComponents:
    """Stand-in for ``InputImpl.VideoFromComponents``: a video held as frames, audio and a frame rate."""

    def __init__(self, components: _VideoComponents):
        self._components = components

    def get_components(self) -> _VideoComponents:
        """The frames ``(F, H, W, 3)``, the AUDIO dict (or ``None``) and the frame rate."""
        return self._components

    def get_dimensions(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        images = self._components.images
        return int(images.shape[2]), int(images.shape[1])

    def get_duration(self) -> float:
        """Frames / frame rate, in seconds."""
        return float(self._components.images.shape[0] / self._components.frame_rate)


class InputImpl:
    VideoFromFile = _VideoFromFile
    VideoFromComponents = _VideoFromComponents


class Types:
    VideoComponents = _VideoComponents


__all__ = ["ComfyExtension", "io", "ui", "InputImpl", "Types"]
