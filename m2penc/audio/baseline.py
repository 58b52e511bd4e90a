"""EDGE's 35-d "baseline" music features, at the video frame rate (the CPU default).

EDGE (``data/audio_extraction/baseline_features.py``) computes, at ``sr = 30 * 512 = 15360`` Hz
with hop 512 (one row per 30 fps video frame): onset strength envelope (1), MFCC n=20 (20),
chroma CENS n_chroma=12 (12), onset-peak one-hot from ``onset_detect`` (1) and beat one-hot
from ``beat_track(start_bpm, tightness=100)`` (1).

Here the analysis rate stays EDGE's 15360 Hz for every fps and the hop becomes
``15360 / fps`` samples (512 at 30 fps, exactly EDGE; 1024 at the paper's 15 fps). Keeping the
rate fixed keeps the spectral content EDGE saw, and chroma CENS needs it: its 7-octave CQT
tops out at 4186 Hz, above the Nyquist limit of ``15 * 512 = 7680`` Hz audio.
Deviation from EDGE: when no ``start_bpm`` is given (EDGE takes it from AIST++ file names)
the tempo is estimated from the same onset envelope, not from a second 22.05 kHz load.
"""
from __future__ import annotations

import warnings

import librosa
import numpy as np

from ..errors import InputError
from .featureset import BASELINE_DIM, N_CHROMA, N_MFCC

#: Analysis sample rate (Hz): EDGE's 30 fps x 512-sample hop.
FEATURE_SAMPLE_RATE = 15360
#: EDGE's beat-tracker tightness (librosa's default is 100 as well; fixed here on purpose).
BEAT_TIGHTNESS = 100


def hop_length_for(fps: float) -> int:
    """Samples per video frame at :data:`FEATURE_SAMPLE_RATE`; fps must divide it exactly."""
    hop = FEATURE_SAMPLE_RATE / fps
    if fps <= 0 or hop != int(hop):
        supported = [f for f in (8, 10, 12, 15, 16, 20, 24, 30, 60) if FEATURE_SAMPLE_RATE % f == 0]
        raise InputError(
            f"fps {fps} does not divide the {FEATURE_SAMPLE_RATE} Hz feature rate into whole "
            f"samples per frame; use one of {supported}"
        )
    return int(hop)


def onset_envelope(y: np.ndarray, hop_length: int) -> np.ndarray:
    """Onset strength, one value per frame: ``(1 + S // hop,)`` for mono ``y`` at 15360 Hz."""
    return librosa.onset.onset_strength(y=y, sr=FEATURE_SAMPLE_RATE, hop_length=hop_length)


def beat_frames(envelope: np.ndarray, hop_length: int, start_bpm: float | None = None) -> np.ndarray:
    """Beat frame indices from an onset envelope (EDGE's ``beat_track`` call)."""
    if start_bpm is None:
        start_bpm = float(librosa.feature.tempo(onset_envelope=envelope, sr=FEATURE_SAMPLE_RATE,
                                                hop_length=hop_length)[0])
    _, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=FEATURE_SAMPLE_RATE,
                                       hop_length=hop_length, start_bpm=start_bpm,
                                       tightness=BEAT_TIGHTNESS)
    return np.asarray(beats, dtype=np.int64)


def chroma_cens(y: np.ndarray, hop_length: int) -> np.ndarray:
    """EDGE's chroma CENS ``(12, frames)``, without the two warnings librosa gives on ordinary music.

    librosa warns "Trying to estimate tuning from empty frequency set" when no spectral peak
    passes its pitch threshold (drums and bass, short clips; the tuning then is 0, as intended)
    and "n_fft=... is too large for input signal of length=..." from the lowest CQT octaves of a
    clip under ~3 s, which it zero-pads. Both results are what EDGE computed, so the values stay
    untouched and only these two messages are silenced, for this call only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty frequency set",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large for input signal of length=\d+",
                                category=UserWarning)
        return librosa.feature.chroma_cens(y=y, sr=FEATURE_SAMPLE_RATE, hop_length=hop_length, n_chroma=N_CHROMA)


def _one_hot(indices: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros(length, dtype=np.float32)
    out[indices[indices < length]] = 1.0
    return out


def baseline_features(y: np.ndarray, fps: float, num_frames: int, start_bpm: float | None = None) -> np.ndarray:
    """The 35 EDGE columns for mono float32 ``y`` sampled at :data:`FEATURE_SAMPLE_RATE`.

    Returns:
        float32 ``(num_frames, 35)``: [envelope, MFCC x20, chroma CENS x12, onset peak, beat].
    """
    hop = hop_length_for(fps)
    envelope = onset_envelope(y, hop)
    mfcc = librosa.feature.mfcc(y=y, sr=FEATURE_SAMPLE_RATE, n_mfcc=N_MFCC, hop_length=hop).T
    chroma = chroma_cens(y, hop).T
    peaks = librosa.onset.onset_detect(onset_envelope=envelope, sr=FEATURE_SAMPLE_RATE, hop_length=hop)
    frames = envelope.shape[0]
    columns = [envelope[:, None], mfcc[:frames], chroma[:frames],
               _one_hot(np.asarray(peaks), frames)[:, None],
               _one_hot(beat_frames(envelope, hop, start_bpm), frames)[:, None]]
    features = np.concatenate(columns, axis=1).astype(np.float32)
    assert features.shape[1] == BASELINE_DIM, features.shape
    if features.shape[0] < num_frames:
        raise InputError(f"music gave {features.shape[0]} feature frames, {num_frames} were needed")
    return features[:num_frames]
