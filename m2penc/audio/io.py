"""Music loading into ComfyUI's AUDIO layout, with the checks a user needs to see.

Why this file exists: every music feature (EDGE's 35-d set, Jukebox activations) starts from
the same decoded, validated waveform, and a bad input must fail here with a message that says
what was wrong and what to do, never later as a shape error inside librosa or the encoder.

* Decoding goes through PyAV (ffmpeg), so wav, flac, mp3, ogg/vorbis/opus, m4a/aac and the
  audio track of common video containers all work without an ffmpeg binary.
* Memory stays bounded for long files: frames are decoded one at a time, converted to float32
  and only the samples inside the requested ``start``/``duration`` window are kept. There is no
  float64 copy of the file and no full-file buffer when a window is requested.
* Hostile files fail early and never crash: up to :data:`MAX_CHANNELS` channels are decoded
  through packed float32 (PyAV's planar path segfaults from 8 channels on), more are refused
  before decoding; the length limit is checked on the header before decoding; a window whose
  first :data:`LEADING_SILENCE_SECONDS` are silent is refused as soon as they are decoded;
  PyAV errors on truncated or garbage files become :class:`AudioError` naming the file.
* The returned value is ComfyUI's AUDIO dict ``{"waveform": float32 [B, C, S], "sample_rate":
  int}`` with ``B = 1``; :func:`validate_audio` accepts such a dict coming from other nodes.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import av
import librosa
import numpy as np
import torch

from ..errors import AudioError

log = logging.getLogger(__name__)

AudioDict = dict[str, Any]
PathLike = Union[str, Path]

#: File extensions we hand to the decoder. Anything else is refused before opening the file.
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    ".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
    ".aif", ".aiff", ".wma", ".mp4", ".mov", ".mkv", ".webm",
)
#: Longest music accepted (seconds). Longer inputs are almost always a wrong file (a podcast,
#: a mix); an hour of 44.1 kHz stereo float32 is already 1.3 GB.
MAX_AUDIO_SECONDS = 3600.0
#: Peak amplitude below which music counts as silent (-80 dBFS).
SILENCE_PEAK = 1e-4
#: A requested window may end this much after the decoded end (container rounding, codec
#: priming) before it counts as "beyond the file".
END_TOLERANCE_SECONDS = 0.05
#: Shortest music accepted (seconds): less cannot hold a single video frame's worth of rhythm.
MIN_AUDIO_SECONDS = 0.1
#: Reading to the end, a file that decodes to less than this share of the length its header
#: declares is reported as truncated (headers of VBR mp3 are estimates, hence the slack).
TRUNCATED_SHARE = 0.5
#: Most channels accepted. Decoding converts to *packed* float32 (one interleaved plane): PyAV's
#: planar conversion crashes the interpreter from 8 channels on, and ffmpeg's resampler refuses
#: more than 64 channels. Music with more channels is refused before decoding.
MAX_CHANNELS = 64
#: Longest silent opening accepted (seconds). A file whose first this-many seconds (of the
#: requested window) are silent is refused as soon as they are decoded, not after decoding a
#: whole (possibly half-hour) silent file.
LEADING_SILENCE_SECONDS = 30.0
#: Resampler used everywhere; the same one ``librosa.load`` uses, so features match EDGE's.
RESAMPLE_TYPE = "soxr_hq"


# ----------------------------------------------------------------------------- validation

def _check_window(start: float, duration: Optional[float], max_seconds: float) -> None:
    """Reject negative/non-finite starts and empty or absurd durations before any decoding."""
    if not math.isfinite(start) or start < 0:
        raise AudioError(f"start must be a finite number of seconds >= 0, got {start!r}")
    if duration is None:
        return
    if not math.isfinite(duration) or duration <= 0:
        raise AudioError(
            f"duration must be > 0 seconds (or None for 'to the end of the file'), got {duration!r}"
        )
    if duration > max_seconds:
        raise AudioError(
            f"duration {duration:.1f} s exceeds the limit of {max_seconds:.0f} s "
            f"({max_seconds / 3600:.1f} h); trim the music to the part you want to dance to"
        )


def _check_path(path: Path) -> None:
    """File exists, is not empty and carries an audio/video extension."""
    if not path.exists():
        raise AudioError(f"music file not found: {path}")
    if not path.is_file():
        raise AudioError(f"music path is not a file: {path}")
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise AudioError(
            f"{path.name} is not an audio file (extension {path.suffix or '<none>'!r}); "
            f"supported extensions: {' '.join(SUPPORTED_EXTENSIONS)}"
        )
    if path.stat().st_size == 0:
        raise AudioError(f"music file is empty (0 bytes): {path}")


def check_not_silent(waveform: np.ndarray | torch.Tensor, what: str) -> None:
    """Raise :class:`AudioError` naming ``what`` when the peak amplitude is below -80 dBFS."""
    peak = float(np.abs(waveform).max()) if isinstance(waveform, np.ndarray) else float(waveform.abs().max())
    if peak < SILENCE_PEAK:
        raise AudioError(
            f"{what} is silent (peak amplitude {peak:.2e} < {SILENCE_PEAK:.0e}, i.e. below -80 dBFS); "
            "check the file and the start/duration window"
        )


def validate_audio(
    audio: Mapping[str, Any], allow_silent: bool = False, max_seconds: float = MAX_AUDIO_SECONDS
) -> AudioDict:
    """Check a ComfyUI AUDIO dict and return it with a CPU float32 contiguous waveform.

    Args:
        audio: ``{"waveform": Tensor [B, C, S], "sample_rate": int}``.
        allow_silent: accept an all-silent waveform (default: refuse it).
        max_seconds: longest accepted duration.

    Returns:
        A new dict ``{"waveform": float32 [B, C, S] (CPU), "sample_rate": int}``.
    """
    if not isinstance(audio, Mapping) or "waveform" not in audio or "sample_rate" not in audio:
        keys = sorted(audio) if isinstance(audio, Mapping) else type(audio).__name__
        raise AudioError(
            f"expected an AUDIO dict with keys 'waveform' and 'sample_rate', got {keys}"
        )
    waveform, sample_rate = audio["waveform"], audio["sample_rate"]
    if not isinstance(waveform, torch.Tensor) or not waveform.is_floating_point():
        got = f"a {waveform.dtype} tensor" if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise AudioError(f"AUDIO waveform must be a float torch tensor, got {got}")
    if waveform.ndim != 3:
        raise AudioError(
            f"AUDIO waveform must have shape [batch, channels, samples], got {tuple(waveform.shape)}"
        )
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"AUDIO sample_rate must be a positive int, got {sample_rate!r}")
    batch, channels, samples = waveform.shape
    if batch < 1 or channels < 1 or samples < 1:
        raise AudioError(f"AUDIO waveform is empty: shape {tuple(waveform.shape)}")
    if samples / sample_rate > max_seconds:
        raise AudioError(
            f"music is {samples / sample_rate:.0f} s long, above the limit of {max_seconds:.0f} s; trim it"
        )
    waveform = waveform.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if not torch.isfinite(waveform).all():
        raise AudioError("AUDIO waveform contains NaN or infinite samples")
    if not allow_silent:
        check_not_silent(waveform, "the music")
    return {"waveform": waveform, "sample_rate": int(sample_rate)}


# ----------------------------------------------------------------------------- helpers

def audio_duration(audio: Mapping[str, Any]) -> float:
    """Duration of an AUDIO dict in seconds."""
    return audio["waveform"].shape[-1] / audio["sample_rate"]


def to_mono(waveform: torch.Tensor) -> torch.Tensor:
    """Average the channels: ``[B, C, S] -> [B, 1, S]`` (what librosa and jukemirlib do)."""
    return waveform.mean(dim=1, keepdim=True) if waveform.shape[1] > 1 else waveform


def resample(waveform: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Resample along the last axis with soxr (librosa's default); float32 in, float32 out."""
    if orig_sr == target_sr:
        return waveform
    y = librosa.resample(waveform.numpy(), orig_sr=orig_sr, target_sr=target_sr,
                         res_type=RESAMPLE_TYPE, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))


def trim_audio(audio: Mapping[str, Any], start: float = 0.0, duration: Optional[float] = None) -> AudioDict:
    """Cut ``[start, start + duration)`` seconds out of an in-memory AUDIO dict.

    ``duration=None`` keeps everything after ``start``. A window that starts or ends after the
    end of the music is an error (with the music's length in the message).
    """
    _check_window(start, duration, math.inf)
    sr = audio["sample_rate"]
    total = audio["waveform"].shape[-1]
    length = total / sr
    first = int(round(start * sr))
    if first >= total:
        raise AudioError(f"start {start:.2f} s is beyond the end of the music ({length:.2f} s long)")
    last = total if duration is None else first + int(round(duration * sr))
    if last > total + END_TOLERANCE_SECONDS * sr:
        raise AudioError(
            f"start {start:.2f} s + duration {duration:.2f} s runs past the end of the music "
            f"({length:.2f} s long); use a duration of at most {length - start:.2f} s or leave it empty"
        )
    return {"waveform": audio["waveform"][..., first:min(last, total)], "sample_rate": sr}


# ----------------------------------------------------------------------------- decoding

def _known_length(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> Optional[float]:
    """Length in seconds from the container header, or None if the format does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _check_window_against_length(path: Path, length: Optional[float], start: float,
                                 duration: Optional[float], max_seconds: float) -> None:
    """Fail before decoding when the header already shows the window cannot be served."""
    if length is None:
        return
    if start >= length:
        raise AudioError(f"start {start:.2f} s is beyond the end of {path.name} ({length:.2f} s long)")
    if duration is not None and start + duration > length + END_TOLERANCE_SECONDS:
        raise AudioError(
            f"start {start:.2f} s + duration {duration:.2f} s runs past the end of {path.name} "
            f"({length:.2f} s long); use a duration of at most {length - start:.2f} s or leave it empty"
        )
    if duration is None and length - start > max_seconds:
        raise AudioError(
            f"{path.name} is {length - start:.1f} s long from start {start:.1f} s, above the limit of "
            f"{max_seconds:.0f} s ({max_seconds / 3600:.2f} h); set a duration to load only a part of it"
        )


class _WindowCollector:
    """Keeps the float32 samples of decoded frames that fall inside ``[first, last)``.

    Positions are a running count of decoded samples, not frame timestamps: the decoders
    drop codec priming from the samples but not always from the timestamps (mp3 frames are
    stamped ~1105 samples late), so counting is the only sample-exact clock.
    """

    def __init__(self, sample_rate: int, start: float, duration: Optional[float], max_seconds: float,
                 path: Optional[Path] = None, allow_silent: bool = True):
        self.sample_rate = sample_rate
        self.path = path
        self.silence_samples = None if allow_silent else int(LEADING_SILENCE_SECONDS * sample_rate)
        self.peak = 0.0
        self.first = int(round(start * sample_rate))
        self.last = None if duration is None else self.first + int(round(duration * sample_rate))
        self.max_samples = int(max_seconds * sample_rate)
        self.chunks: list[np.ndarray] = []
        self.kept = 0
        self.next_pos = 0

    def add(self, frame: av.AudioFrame) -> bool:
        """Add one decoded frame (packed float32, as the converter makes it); returns False once
        past the window."""
        pos = self.next_pos
        if frame.samples <= 0:
            return True
        packed = frame.to_ndarray()  # packed float32: (1, n * C), channels interleaved
        channels = packed.size // frame.samples
        data = packed.reshape(frame.samples, channels).T  # (C, n)
        self.next_pos = pos + data.shape[-1]
        if self.last is not None and pos >= self.last:
            return False
        lo = max(self.first - pos, 0)
        hi = data.shape[-1] if self.last is None else min(self.last - pos, data.shape[-1])
        if hi > lo:
            self.chunks.append(np.array(data[:, lo:hi], dtype=np.float32, copy=True))
            self.kept += hi - lo
            if self.silence_samples is not None and self.peak < SILENCE_PEAK:
                self.peak = max(self.peak, float(np.abs(self.chunks[-1]).max()))
                if self.peak < SILENCE_PEAK and self.kept >= self.silence_samples:
                    name = self.path.name if self.path is not None else "the music"
                    raise AudioError(
                        f"{name} is silent for its first {self.kept / self.sample_rate:.0f} s from start "
                        f"{self.first / self.sample_rate:.2f} s (peak amplitude {self.peak:.2e} < "
                        f"{SILENCE_PEAK:.0e}, i.e. below -80 dBFS; at most {LEADING_SILENCE_SECONDS:.0f} s of "
                        "silence is accepted at the start); check the file, or set start past the silence"
                    )
            if self.kept > self.max_samples:
                raise AudioError(
                    f"music is longer than the limit of {self.max_samples / self.sample_rate:.0f} s "
                    f"({self.max_samples / self.sample_rate / 3600:.1f} h); set a duration to load a part of it"
                )
        return True


def _decode_window(path: Path, start: float, duration: Optional[float], max_seconds: float,
                   allow_silent: bool = True) -> tuple[np.ndarray, int, Optional[float]]:
    """Decode ``path`` and return (float32 [C, S] inside the window, sample rate, file length)."""
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise AudioError(f"could not open {path.name} as audio ({type(e).__name__}: {e}); "
                         "the file is unreadable or corrupt, or not an audio file") from e
    with container:
        if not container.streams.audio:
            raise AudioError(f"{path.name} has no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context is None:  # an unknown or corrupt codec tag: no decoder
            raise AudioError(f"{path.name}: its audio codec cannot be decoded; "
                             "the file is corrupt or uses an unusual codec: convert it to WAV, FLAC or MP3")
        sample_rate = stream.codec_context.sample_rate or stream.rate
        if not sample_rate:
            raise AudioError(f"{path.name}: the audio stream declares no sample rate; the file is corrupt")
        channels = stream.codec_context.channels
        if channels > MAX_CHANNELS:
            raise AudioError(
                f"{path.name} has {channels} audio channels, above the limit of {MAX_CHANNELS}; "
                "downmix it to stereo (or mono) in an audio editor first"
            )
        length = _known_length(container, stream)
        _check_window_against_length(path, length, start, duration, max_seconds)
        collector = _WindowCollector(sample_rate, start, duration, max_seconds, path, allow_silent)
        # Format-only conversion (same rate and layout) to PACKED float32: adds no delay, keeps
        # timestamps, and never goes through PyAV's planar to_ndarray, which crashes the
        # interpreter from 8 channels on.
        converter = av.AudioResampler(format="flt")
        try:
            # No container.seek(): after a seek some demuxers (mp3) report timestamps shifted by
            # the codec delay (~25 ms). Decoding from the start is exact and, since samples
            # before the window are dropped frame by frame, still memory-bounded.
            _drain(container, stream, converter, collector)
        except (av.FFmpegError, ValueError, OSError) as e:
            if isinstance(e, AudioError):
                raise
            raise AudioError(f"could not decode {path.name} ({type(e).__name__}: {e}); the file is "
                             "truncated or corrupt: re-export or re-download it") from e
    if not collector.chunks:
        if start > 0:
            raise AudioError(f"start {start:.2f} s is beyond the end of {path.name}"
                             + (f" ({length:.2f} s long)" if length else ""))
        raise AudioError(f"{path.name} contains no audio samples (empty or corrupt file)")
    return np.concatenate(collector.chunks, axis=1), sample_rate, length


def _drain(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
           converter: av.AudioResampler, collector: _WindowCollector) -> None:
    """Decode frame by frame until the collector says the window is complete."""
    for packet in container.demux(stream):
        for frame in packet.decode():
            for converted in converter.resample(frame):
                if not collector.add(converted):
                    return
    for converted in converter.resample(None):
        if not collector.add(converted):
            return


def _check_decoded_length(path: Path, got: float, length: Optional[float], start: float,
                          duration: Optional[float]) -> None:
    """Compare what was decoded with what was asked for and what the header promised."""
    if duration is not None and got + END_TOLERANCE_SECONDS < duration:
        raise AudioError(
            f"start {start:.2f} s + duration {duration:.2f} s runs past the end of {path.name}: only "
            f"{got:.2f} s of audio after the start; use a shorter duration or leave it empty"
        )
    if duration is None and length is not None and got < TRUNCATED_SHARE * (length - start):
        raise AudioError(
            f"{path.name} is truncated or corrupt: its header declares {length:.2f} s but only "
            f"{start + got:.2f} s could be decoded"
        )
    if got < MIN_AUDIO_SECONDS:
        raise AudioError(
            f"only {got:.3f} s of audio decoded from {path.name}; at least {MIN_AUDIO_SECONDS} s is needed"
        )


def load_audio(
    path: PathLike,
    start: float = 0.0,
    duration: Optional[float] = None,
    sample_rate: Optional[int] = None,
    mono: bool = False,
    max_seconds: float = MAX_AUDIO_SECONDS,
    allow_silent: bool = False,
) -> AudioDict:
    """Decode a music file into ComfyUI's AUDIO dict.

    Args:
        path: a wav/flac/mp3/ogg/opus/m4a/aac file (or a video file with an audio track).
        start: seconds to skip at the beginning.
        duration: seconds to keep after ``start``; ``None`` keeps the rest of the file.
        sample_rate: resample to this rate (Hz); ``None`` keeps the file's rate.
        mono: average the channels into one.
        max_seconds: longest window accepted (default one hour).
        allow_silent: accept a silent window instead of raising.

    Returns:
        ``{"waveform": float32 Tensor [1, C, S], "sample_rate": int}``.

    Raises:
        AudioError: missing, empty, non-audio, corrupt or silent file, a window beyond the
            end of the file, or a window longer than ``max_seconds``.
    """
    path = Path(path)
    _check_window(start, duration, max_seconds)
    _check_path(path)
    data, sr, length = _decode_window(path, start, duration, max_seconds, allow_silent)
    got = data.shape[1] / sr
    _check_decoded_length(path, got, length, start, duration)
    waveform = torch.from_numpy(data).unsqueeze(0)  # [1, C, S]
    if not torch.isfinite(waveform).all():
        raise AudioError(f"{path.name} decoded to NaN/infinite samples; the file is corrupt")
    if not allow_silent:
        check_not_silent(waveform, f"{path.name} (from {start:.2f} s)")
    if mono:
        waveform = to_mono(waveform)
    if sample_rate is not None and sample_rate != sr:
        waveform, sr = resample(waveform, sr, sample_rate), sample_rate
    log.debug("loaded %s: %.2f s at %d Hz, %d channel(s)", path.name, got, sr, waveform.shape[1])
    return {"waveform": waveform, "sample_rate": int(sr)}
