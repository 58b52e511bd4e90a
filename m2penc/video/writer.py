"""Streaming video writer (PyAV): open, write frame batches, close -> the finished file's path.

Why streaming: a 3-minute dance at 512x512 is ~2700 frames, 2 GB as uint8; the sampler hands
over one decoded chunk at a time and the writer encodes it at once, so frames never pile up.

Why a temporary file: the output appears under its final name only when it is complete. The
writer encodes into ``.<name>.<random>.partial`` (a hidden temp folder for PNG sequences) next to
the target and renames it on :meth:`VideoWriter.close`; :meth:`VideoWriter.abort` (also run when
the ``with`` block raises, e.g. on cancel) deletes it. A failed or cancelled run leaves nothing.
The published file or folder gets the permissions any new file gets (``0o666``/``0o777`` minus
the umask), not the private ``0o600``/``0o700`` the temporary names are created with.

Audio is muxed in step with the video (see :mod:`.audio_track` for trimming/padding/offset): after
every frame batch the music up to the current video time is encoded, so the soundtrack ends
exactly where the last frame ends. Formats and codecs are listed in :mod:`.formats`.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import av
import numpy as np

from ..checkpoint import current_umask
from ..errors import InputError
from .audio_track import AudioTrack, audio_track_from_comfy
from .formats import PNG_PATTERN, VideoFormat, audio_rate_for, get_format
from .frames import FrameBatch, even_size, pad_to_even, to_uint8_frames
from .gif_palette import to_pal8_frame

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]


def _frame_rate(fps: float) -> Fraction:
    if not fps > 0:
        raise InputError(f"frame rate must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _target_path(path: PathLike, fmt: VideoFormat) -> Path:
    """The final path: the format's suffix is appended if missing; a different suffix is an error."""
    path = Path(path)
    if fmt.is_sequence or path.suffix.lower() == fmt.suffix:
        return path
    if path.suffix:
        raise InputError(
            f"output {path.name!r} does not end in {fmt.suffix!r} for format {fmt.name!r}; fix the name or the format"
        )
    return path.with_name(path.name + fmt.suffix)


class VideoWriter:
    """Encode frames batch by batch into ``path``; use as a context manager.

    Args:
        path: output file (a folder for ``png``); the format's suffix is added if missing.
        fps: frames per second of the video.
        format: ``"mp4"``, ``"webm"``, ``"gif"`` or ``"png"`` (see :mod:`.formats`).
        crf: quality for mp4/webm (lower is better); the format's default if ``None``.
        audio: ComfyUI AUDIO dict ``{"waveform": [1, C, S] float32, "sample_rate": int}``, or ``None``.
        audio_start_s: where in the music the first frame was generated from.
    """

    def __init__(self, path: PathLike, fps: float, format: str = "mp4", *, crf: Optional[int] = None,
                 audio: Optional[Mapping[str, Any]] = None, audio_start_s: float = 0.0) -> None:
        self.format = get_format(format)
        self.path = _target_path(path, self.format)
        self.rate = _frame_rate(fps)
        self.crf = self.format.default_crf if crf is None else int(crf)
        self.audio = self._audio_track(audio, audio_start_s)
        self.frames_written = 0
        self._tmp: Optional[str] = None
        self._container: Optional[Any] = None
        self._video: Optional[Any] = None
        self._audio_stream: Optional[Any] = None
        self._audio_fed = 0
        self._size: Optional[tuple[int, int]] = None

    def _audio_track(self, audio: Optional[Mapping[str, Any]], start_s: float) -> Optional[AudioTrack]:
        if audio is None:
            return None
        if self.format.audio_codec is None:
            log.warning("format %r has no audio track; the music is not included", self.format.name)
            return None
        return audio_track_from_comfy(audio, start_s)

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> "VideoWriter":
        """Create the temporary output next to ``path``; nothing is written under ``path`` yet."""
        if self._tmp is not None:
            raise InputError("this VideoWriter is already open")
        if self.format.is_sequence and self.path.exists():
            raise InputError(f"output folder {self.path} already exists; choose a new name for the PNG sequence")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prefix, parent = f".{self.path.name}.", str(self.path.parent)
        if self.format.is_sequence:
            self._tmp = tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=parent)
            target = os.path.join(self._tmp, PNG_PATTERN)
        else:
            fd, self._tmp = tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=parent)
            os.close(fd)
            target = self._tmp
        try:
            options = {"start_number": "0"} if self.format.is_sequence else {}
            self._container = av.open(target, mode="w", format=self.format.container, options=options)
        except BaseException:
            self.abort()
            raise
        return self

    def close(self) -> Path:
        """Flush the encoders, finish the file and move it to ``path``; returns ``path``."""
        if self._container is None:
            raise InputError("VideoWriter.close() called on a writer that is not open")
        if self.frames_written == 0:
            self.abort()
            raise InputError("no frames were written; a video needs at least one frame")
        try:
            self._flush()
            self._container.close()
            self._container = None
            self._publish()
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; safe to call more than once."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception as e:  # the file is being deleted anyway; keep the original error
                log.debug("ignoring error while closing an aborted container: %s", e)
            self._container = None
        if self._tmp is not None:
            if os.path.isdir(self._tmp):
                shutil.rmtree(self._tmp, ignore_errors=True)
            elif os.path.exists(self._tmp):
                os.unlink(self._tmp)
            self._tmp = None

    def _publish(self) -> None:
        assert self._tmp is not None
        umask = current_umask()
        if self.format.is_sequence:
            os.chmod(self._tmp, 0o777 & ~umask)  # mkdtemp creates 0700; frames are made 0666 & ~umask
            os.rename(self._tmp, self.path)
        else:
            os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp creates 0600
            os.replace(self._tmp, self.path)
        self._tmp = None

    def __enter__(self) -> "VideoWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- frames ----------------------------------------------------------------------------
    def write(self, frames: FrameBatch) -> None:
        """Encode a batch ``(F, H, W, 3)``: float in [0, 1] (ComfyUI IMAGE) or uint8."""
        if self._container is None:
            raise InputError("VideoWriter.write() called before open() (or after close())")
        batch = to_uint8_frames(frames)
        self._check_size(batch.shape[1], batch.shape[2])
        if self.format.needs_even_size:
            batch = pad_to_even(batch)
        for image in batch:
            self._encode_frame(image)
        self._encode_audio_until_now()

    def _check_size(self, height: int, width: int) -> None:
        if self._size is None:
            self._size = (height, width)
            self._add_streams(height, width)
        elif self._size != (height, width):
            raise InputError(f"frame size changed from {self._size} to {(height, width)} (H, W); all frames must match")

    def _add_streams(self, height: int, width: int) -> None:
        if self.format.needs_even_size and (height % 2 or width % 2):
            log.info("%dx%d is odd; padding to %dx%d (edge pixels repeated) for %s",
                     width, height, *reversed(even_size(height, width)), self.format.pix_fmt)
            height, width = even_size(height, width)
        stream = self._container.add_stream(self.format.video_codec, rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, self.format.pix_fmt
        stream.options = self._codec_options()
        self._video = stream
        if self.audio is not None:
            rate = audio_rate_for(self.format, self.audio.sample_rate)
            codec, layout = self.format.audio_codec, self.audio.layout
            self._audio_stream = self._container.add_stream(codec, rate=rate, layout=layout)

    def _codec_options(self) -> dict[str, str]:
        if self.format.name == "mp4":
            return {"crf": str(self.crf), "preset": "medium"}
        if self.format.name == "webm":
            # constant-quality VP9 needs the bitrate at 0; row-mt + cpu-used 4 keep it usably fast
            return {"crf": str(self.crf), "b": "0", "row-mt": "1", "cpu-used": "4", "deadline": "good"}
        return {}

    def _encode_frame(self, image: np.ndarray) -> None:
        if self.format.name == "gif":
            frame = to_pal8_frame(image)
        else:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self.rate
        self._mux(self._video.encode(frame))
        self.frames_written += 1

    # -- audio -----------------------------------------------------------------------------
    def _encode_audio_until_now(self) -> None:
        """Encode the music up to the end of the last written frame."""
        if self._audio_stream is None:
            return
        rate = self.audio.sample_rate
        target = int(round(self.frames_written * rate / self.rate))
        if target <= self._audio_fed:
            return
        samples = self.audio.span(self._audio_fed, target)  # (C, n) float32
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=self.audio.layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, self._audio_fed, Fraction(1, rate)
        self._audio_fed = target
        self._mux(self._audio_stream.encode(frame))

    def _flush(self) -> None:
        if self._audio_stream is not None:
            self._mux(self._audio_stream.encode(None))
        self._mux(self._video.encode(None))

    def _mux(self, packets: list) -> None:
        for packet in packets:
            self._container.mux(packet)


def open_video_writer(path: PathLike, fps: float, format: str = "mp4", **kwargs: Any) -> VideoWriter:
    """A :class:`VideoWriter` already opened (for callers that manage ``close``/``abort`` themselves)."""
    return VideoWriter(path, fps, format, **kwargs).open()
