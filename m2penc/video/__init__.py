"""Video files: frames to mp4/webm/gif/PNG through PyAV, with the music muxed in.

* :class:`VideoWriter` -- the sink long-video sampling streams into; writes a temporary file and
  renames it when complete, so a failed or cancelled run leaves nothing behind.
* :mod:`.frames` (IMAGE batches -> uint8), :mod:`.formats` (containers and codecs as data),
  :mod:`.audio_track` (AUDIO -> the muxed track), :mod:`.gif_palette`.

Sampling itself lives in :mod:`..sampling`.
"""
from .formats import FORMATS, VideoFormat, get_format
from .writer import VideoWriter, open_video_writer

__all__ = ["FORMATS", "VideoFormat", "get_format", "VideoWriter", "open_video_writer"]
