"""The output formats the writer supports, as data.

| format | container | video | pixels | audio |
|---|---|---|---|---|
| ``mp4``  | mp4 | H.264 (libx264), CRF | yuv420p (even size) | AAC |
| ``webm`` | webm | VP9 (libvpx-vp9), constant quality (CRF, bitrate 0) | yuv420p (even size) | Opus (48 kHz) |
| ``gif``  | gif | GIF, one adaptive 256-colour palette per frame | pal8 | none |
| ``png``  | folder of ``frame_00000.png`` | PNG | rgb24 | none |

yuv420p is what every player decodes (VHS's ``h264-mp4`` default too). GIF stores frame delays
in 1/100 s, so rates that do not divide 100 are approximated per frame (the average stays right).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import InputError

#: CRF defaults: 19 is VHS's h264-mp4 default (visually lossless-ish); 31 is libvpx-vp9's usual
#: constant-quality point for 480p-720p.
DEFAULT_CRF_H264 = 19
DEFAULT_CRF_VP9 = 31
#: PNG frames are named ``frame_00000.png``, ``frame_00001.png``, ...
PNG_PATTERN = "frame_%05d.png"


@dataclass(frozen=True)
class VideoFormat:
    """How one output format is encoded. ``audio_codec`` is ``None`` for formats without audio."""

    name: str
    container: str
    suffix: str
    video_codec: str
    pix_fmt: str
    needs_even_size: bool
    default_crf: Optional[int]
    audio_codec: Optional[str]
    audio_rates: tuple[int, ...] = ()
    is_sequence: bool = False


FORMATS: dict[str, VideoFormat] = {
    "mp4": VideoFormat("mp4", "mp4", ".mp4", "libx264", "yuv420p", True, DEFAULT_CRF_H264, "aac",
                       (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)),
    "webm": VideoFormat("webm", "webm", ".webm", "libvpx-vp9", "yuv420p", True, DEFAULT_CRF_VP9, "libopus",
                        (48000,)),
    "gif": VideoFormat("gif", "gif", ".gif", "gif", "pal8", False, None, None),
    "png": VideoFormat("png", "image2", "", "png", "rgb24", False, None, None, is_sequence=True),
}


def get_format(name: str) -> VideoFormat:
    """Look a format up by name (case-insensitive); unknown names list the supported ones."""
    key = name.lower().lstrip(".")
    if key not in FORMATS:
        raise InputError(f"unsupported video format {name!r}; supported formats: {', '.join(FORMATS)}")
    return FORMATS[key]


def audio_rate_for(fmt: VideoFormat, sample_rate: int) -> int:
    """The encoder sample rate: the music's own rate if the codec takes it, else the nearest above."""
    if fmt.audio_codec is None:
        raise InputError(f"format {fmt.name!r} cannot carry audio")
    if sample_rate in fmt.audio_rates:
        return sample_rate
    higher = [rate for rate in fmt.audio_rates if rate >= sample_rate]
    return min(higher) if higher else max(fmt.audio_rates)
