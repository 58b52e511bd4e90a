"""The music's rhythm for the beat choreographer: beats, tempo, onsets and energy per beat.

Why here: the choreographer (``m2penc.motion.choreography``, layer 2) must not know about audio,
and the beat tracker it should dance to already lives in this layer. :func:`music_rhythm` runs the
*same* tracker as EDGE's baseline features and the beat-alignment metric
(:func:`.baseline.onset_envelope` + :func:`.baseline.beat_frames` at the 15360 Hz feature rate),
at a fine :data:`RHYTHM_FPS` = 60 analysis frames per second (hop 256), so beat times are
resolved to ~17 ms whatever video frame rate the dance is rendered at. Like every librosa onset,
they sit ~30 ms after the attack (the spectral-flux latency); the metric's beats do the same, so
no correction is applied.

Energy per beat (0..1) mixes, half and half, loudness relative to the song's loudest beat and
absolute loudness (-40 dBFS -> 0, -10 dBFS -> 1), both from the RMS over the beat's cell (midway to
the neighbouring beats): quiet passages get smaller, calmer moves, loud ones bigger, livelier ones.
:func:`music_choreography` puts analysis and choreographer together (audio may import motion).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import librosa
import numpy as np
import torch

from ..errors import AudioError
from ..motion.choreography import MAX_JOINT_SPEED, check_joint_speed, choreograph
from ..motion.format import SMPLMotion
from ..timeline import DEFAULT_FPS, frame_count
from .baseline import FEATURE_SAMPLE_RATE, beat_frames, hop_length_for, onset_envelope
from .io import resample, to_mono, validate_audio

#: Analysis frames per second of the rhythm (hop 256 samples at 15360 Hz).
RHYTHM_FPS = 60
#: Absolute loudness mapped to energy 0 and 1 (dBFS of the per-beat RMS).
QUIET_DB, LOUD_DB = -40.0, -10.0
#: Relative loudness range: beats this many dB below the loudest beat get relative energy 0.
RELATIVE_RANGE_DB = 30.0

Music = Union[Mapping[str, Any], np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class Rhythm:
    """The rhythm of a piece of music.

    Attributes:
        beat_times: ``(K,)`` beat times in seconds, increasing.
        tempo: beats per minute (from the median beat interval; librosa's estimate if K < 2).
        energy_per_beat: ``(K,)`` in 0..1 (see the module docstring).
        onset_times: ``(M,)`` note onset times in seconds.
        duration: length of the music in seconds.
    """

    beat_times: np.ndarray
    tempo: float
    energy_per_beat: np.ndarray
    onset_times: np.ndarray
    duration: float


def _as_audio(music: Music, sample_rate: Optional[int]) -> dict:
    """An AUDIO dict (validated) from an AUDIO dict or a ``(S,)`` / ``(C, S)`` waveform plus ``sample_rate``."""
    if isinstance(music, Mapping):
        if sample_rate is not None:
            raise AudioError("sample_rate is only for raw waveforms; an AUDIO dict carries its own")
        return validate_audio(music)
    if sample_rate is None:
        raise AudioError("a raw waveform needs its sample_rate, e.g. music_rhythm(y, sample_rate=22050)")
    wave = torch.as_tensor(np.asarray(music, dtype=np.float32))
    if wave.ndim not in (1, 2):
        raise AudioError(f"a raw waveform must be (samples,) or (channels, samples), got shape {tuple(wave.shape)}")
    return validate_audio({"waveform": wave.reshape(1, -1, wave.shape[-1]), "sample_rate": sample_rate})


def _beat_cells(beat_times: np.ndarray, duration: float) -> np.ndarray:
    """``(K, 2)`` start/end seconds of each beat's cell: midway to the previous and next beat."""
    mids = (beat_times[1:] + beat_times[:-1]) / 2
    starts = np.concatenate([[max(0.0, beat_times[0] - (mids[0] - beat_times[0] if mids.size else 0.25))], mids])
    ends = np.concatenate([mids, [min(duration, beat_times[-1] + (beat_times[-1] - mids[-1] if mids.size else 0.25))]])
    return np.stack([starts, ends], axis=1)


def beat_energy(y: np.ndarray, beat_times: np.ndarray, duration: float) -> np.ndarray:
    """``(K,)`` energy 0..1 per beat of mono ``y`` at :data:`.baseline.FEATURE_SAMPLE_RATE`."""
    if beat_times.size == 0:
        return np.zeros(0)
    hop = hop_length_for(RHYTHM_FPS)
    rms = librosa.feature.rms(y=y, frame_length=4 * hop, hop_length=hop)[0]
    db = np.empty(beat_times.size)
    for k, (start, end) in enumerate(_beat_cells(beat_times, duration)):
        lo = int(start * RHYTHM_FPS)
        cell = rms[lo:max(lo + 1, int(np.ceil(end * RHYTHM_FPS)))]
        db[k] = 20 * np.log10(max(float(np.sqrt(np.mean(cell ** 2))) if cell.size else 0.0, 1e-6))
    relative = np.clip(1 - (db.max() - db) / RELATIVE_RANGE_DB, 0, 1)
    absolute = np.clip((db - QUIET_DB) / (LOUD_DB - QUIET_DB), 0, 1)
    return 0.5 * relative + 0.5 * absolute


def music_rhythm(music: Music, sample_rate: Optional[int] = None, start_bpm: Optional[float] = None) -> Rhythm:
    """Beats, tempo, onsets and per-beat energy of music.

    Args:
        music: ComfyUI AUDIO dict ``{"waveform": [B, C, S], "sample_rate"}`` (batch item 0 is used),
            or a raw ``(S,)`` / ``(C, S)`` waveform with ``sample_rate``.
        start_bpm: tempo prior for the beat tracker (default: estimated from the music).
    """
    audio = _as_audio(music, sample_rate)
    waveform, rate = audio["waveform"], audio["sample_rate"]
    duration = waveform.shape[-1] / rate
    y = resample(to_mono(waveform[:1])[0], rate, FEATURE_SAMPLE_RATE)[0].numpy()
    hop = hop_length_for(RHYTHM_FPS)
    envelope = onset_envelope(y, hop)
    beats = beat_frames(envelope, hop, start_bpm) / RHYTHM_FPS
    beats = beats[beats < duration]
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=FEATURE_SAMPLE_RATE, hop_length=hop) / RHYTHM_FPS
    if beats.size >= 2:
        tempo = 60.0 / float(np.median(np.diff(beats)))
    else:
        tempo = float(librosa.feature.tempo(onset_envelope=envelope, sr=FEATURE_SAMPLE_RATE, hop_length=hop)[0])
    return Rhythm(beat_times=beats.astype(np.float64), tempo=tempo, energy_per_beat=beat_energy(y, beats, duration),
                  onset_times=np.asarray(onsets, dtype=np.float64), duration=duration)


def music_choreography(music: Music, fps: float = DEFAULT_FPS, seed: int = 0, intensity: float = 1.0,
                       sample_rate: Optional[int] = None, variety: str = "seeded",
                       max_joint_speed: float = MAX_JOINT_SPEED) -> SMPLMotion:
    """A procedural beat-synchronous SMPL dance to ``music`` (:func:`music_rhythm` + ``choreograph``).

    The motion covers the music's whole frames, :func:`m2penc.timeline.frame_count`; ``variety``: how
    moves are chosen (``seeded``, ``by_level`` or ``looped``, :data:`~m2penc.motion.choreography.planner.VARIETIES`);
    ``max_joint_speed``: the choreographer's joint speed limit in m/s.
    """
    max_joint_speed = check_joint_speed(max_joint_speed)       # before the beat tracking
    audio = _as_audio(music, sample_rate)
    rhythm = music_rhythm(audio)
    frames = frame_count(audio["waveform"].shape[-1], audio["sample_rate"], fps)
    return choreograph(rhythm.beat_times, rhythm.duration, fps, energy=rhythm.energy_per_beat,
                       onsets=rhythm.onset_times, seed=seed, intensity=intensity, num_frames=frames, variety=variety,
                       max_joint_speed=max_joint_speed)
