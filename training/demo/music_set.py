"""The demo's music set: seeded songs from :mod:`m2penc.audio.synth`, in two disjoint splits.

``build_music_set(out_dir, seed, train_count, heldout_count, seconds)`` writes::

    out_dir/train/song_000_four_on_floor_112bpm.wav ...   (TRAIN)
    out_dir/heldout/song_000_latin_142bpm.wav ...         (HELDOUT)
    out_dir/music_set.json                                (MUSIC_SET_FILE, written last)

``music_set.json`` lists every file with its :class:`~m2penc.audio.synth.SongSpec` (as JSON) and its
ground-truth beat and downbeat times, so a run can score beat tracking and beat alignment against
the truth. The splits never share a tempo or a drum pattern:

* ``train``: tempos 90..130 BPM; patterns ``four_on_floor``, ``breakbeat``, ``halftime``, ``shuffle``
  in 4/4 and ``waltz`` in 3/4 (:data:`TRAIN_PATTERNS`);
* ``heldout``: tempos 75..85 and 135..150 BPM; the ``latin`` style (3-2 son clave, never in train) in
  4/4 and 3/4, and ``four_on_floor`` and ``shuffle`` in 3/4 (:data:`HELDOUT_PATTERNS`).

Everything (tempo, style, length, key, mode, chords, melody, drum takes) comes from
``np.random.default_rng([seed, split index, song index])``, so the same arguments give byte-identical
WAV files (16-bit PCM) and JSON. Files are written atomically (:func:`m2penc.checkpoint.atomic_write`);
the JSON goes last, so its presence marks a complete set.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Union

import numpy as np

from ...m2penc.audio.synth import SongSpec, synth_song
from ...m2penc.checkpoint import atomic_write
from ...m2penc.errors import InputError

MUSIC_SET_FILE = "music_set.json"
TRAIN, HELDOUT = "train", "heldout"
SPLITS: tuple[str, ...] = (TRAIN, HELDOUT)
#: The set's sample rate (Hz): enough for the 15.36 kHz feature rate, half the size of 44.1 kHz.
SAMPLE_RATE = 22_050
#: (style, meter) of each split; disjoint.
TRAIN_PATTERNS: tuple[tuple[str, int], ...] = (("four_on_floor", 4), ("breakbeat", 4), ("halftime", 4),
                                               ("shuffle", 4), ("waltz", 3))
HELDOUT_PATTERNS: tuple[tuple[str, int], ...] = (("latin", 4), ("latin", 3), ("four_on_floor", 3), ("shuffle", 3))
#: Tempo ranges (BPM, inclusive) of each split; disjoint.
TEMPO_RANGES: dict[str, tuple[tuple[float, float], ...]] = {TRAIN: ((90.0, 130.0),),
                                                            HELDOUT: ((75.0, 85.0), (135.0, 150.0))}
PATTERNS: dict[str, tuple[tuple[str, int], ...]] = {TRAIN: TRAIN_PATTERNS, HELDOUT: HELDOUT_PATTERNS}
#: Chord progressions (scale degrees of each bar's root) a song draws from.
PROGRESSIONS: tuple[tuple[int, ...], ...] = ((0, 5, 3, 4), (0, 3, 4, 4), (0, 4, 5, 3), (0, 0, 3, 4), (5, 3, 0, 4))

PathLike = Union[str, Path]


def split_specs(split: str, count: int, seed: int = 0, seconds: tuple[float, float] = (8.0, 12.0),
                sample_rate: int = SAMPLE_RATE) -> list[SongSpec]:
    """The ``count`` songs of ``split`` (``"train"`` or ``"heldout"``) for ``seed``, as specs.

    Patterns cycle through the split's list (every pattern appears once ``count`` reaches its size),
    tempos are drawn uniformly from the split's ranges (rounded to 0.5 BPM), lengths from ``seconds``
    (rounded to 0.1 s).
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InputError(f"count must be a whole number >= 0, got {count!r}")
    low, high = (float(s) for s in seconds)
    if not (1.0 <= low <= high <= 600.0):
        raise InputError(f"seconds must be a (min, max) range within 1..600 s, got {seconds!r}")
    patterns, ranges = PATTERNS[split], TEMPO_RANGES[split]
    offset = int(np.random.default_rng([seed, SPLITS.index(split)]).integers(len(patterns)))
    specs = []
    for index in range(count):
        rng = np.random.default_rng([seed, SPLITS.index(split), index])
        style, meter = patterns[(offset + index) % len(patterns)]
        lo, hi = ranges[int(rng.integers(len(ranges)))]
        specs.append(SongSpec(
            bpm=float(np.round(rng.uniform(lo, hi) * 2) / 2), meter=meter, style=style,
            chords=PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))], key=int(rng.integers(52, 61)),
            mode=("minor", "major")[int(rng.integers(2))], seconds=float(np.round(rng.uniform(low, high), 1)),
            sample_rate=int(sample_rate), seed=int(rng.integers(2 ** 31))))
    return specs


def song_name(index: int, spec: SongSpec) -> str:
    """The file name of song ``index``: ``song_007_breakbeat_112bpm.wav`` (3/4 songs end ``_3-4``)."""
    meter = "" if spec.meter == 4 else f"_{spec.meter}-4"
    return f"song_{index:03d}_{spec.style}_{int(round(spec.bpm))}bpm{meter}.wav"


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    import soundfile

    return atomic_write(path, lambda tmp: soundfile.write(tmp, audio.T, sample_rate, format="WAV", subtype="PCM_16"))


def build_music_set(out_dir: PathLike, seed: int = 0, train_count: int = 24, heldout_count: int = 6,
                    seconds: tuple[float, float] = (8.0, 12.0), sample_rate: int = SAMPLE_RATE) -> dict[str, Any]:
    """Write the demo's music set into ``out_dir`` and return what ``music_set.json`` holds.

    Args:
        out_dir: folder for ``train/``, ``heldout/`` and :data:`MUSIC_SET_FILE` (created; files of
            the same names are replaced, others left alone).
        seed: seeds every song; the same arguments give byte-identical files.
        train_count, heldout_count: songs per split.
        seconds: (min, max) song length in seconds.
        sample_rate: of the WAV files (16-bit PCM stereo).
    Returns:
        ``{"version", "seed", "sample_rate", "splits": {split: {"tempo_ranges", "patterns", "songs": [
        {"file" (relative to out_dir), "spec", "beat_times", "downbeat_times"}, ...]}}}``.
    """
    out = Path(out_dir)
    manifest: dict[str, Any] = {"version": 1, "seed": int(seed), "sample_rate": int(sample_rate), "splits": {}}
    for split, count in ((TRAIN, train_count), (HELDOUT, heldout_count)):
        songs = []
        for index, spec in enumerate(split_specs(split, count, seed, seconds, sample_rate)):
            song = synth_song(spec)
            rel = f"{split}/{song_name(index, spec)}"
            _write_wav(out / rel, song.audio, song.sample_rate)
            songs.append({"file": rel, "spec": spec.to_json(),
                          "beat_times": [round(float(t), 6) for t in song.beat_times],
                          "downbeat_times": [round(float(t), 6) for t in song.downbeat_times]})
        manifest["splits"][split] = {"tempo_ranges": [list(r) for r in TEMPO_RANGES[split]],
                                     "patterns": [list(p) for p in PATTERNS[split]], "songs": songs}
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    atomic_write(out / MUSIC_SET_FILE, lambda tmp: Path(tmp).write_text(text))
    return manifest
