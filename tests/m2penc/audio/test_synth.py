"""The music synthesiser: its beats are the beats the choreographer's tracker finds, and the dance lands on them.

Hit rate: a true beat is hit when :func:`music_rhythm` reports a beat within 50 ms of it (the
tracker's beats sit on a 1/60 s grid about 33 ms after the attack, so exactly 3 frames = 50 ms
counts); true beats in the last :data:`~m2pdance.m2penc.audio.synth.ENDING_BEAT_MARGIN` s are not
scored (no attack left to hear). Tempo octave errors fail through precision: at double tempo half
the tracked beats hit nothing, at half tempo half the true beats are missed.
"""
from __future__ import annotations

import numpy as np
import pytest

from m2pdance.m2penc.audio.rhythm import music_choreography, music_rhythm
from m2pdance.m2penc.audio.synth import (ENDING_BEAT_MARGIN, METERS, STYLES, Hit, SongSpec, style_pattern,
                                         synth_song)
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval.beat_alignment import beat_alignment_score, motion_beat_frames, music_beat_frames
from m2pdance.m2penc.examples import EXAMPLE_SAMPLE_RATE, synth_music
from m2pdance.m2penc.motion.choreography import joint_positions

SR = 22050
TOLERANCE = 0.05 + 1e-6
TEMPOS = (75, 90, 105, 120, 135, 150)
LENGTHS = (4, 6, 8, 10, 12, 20)


def hit_rates(true: np.ndarray, tracked: np.ndarray, seconds: float) -> tuple[float, float]:
    """(recall over scored true beats, precision over tracked beats)."""
    true = true[true <= seconds - ENDING_BEAT_MARGIN]
    if tracked.size == 0:
        return 0.0, 0.0
    distance = np.abs(true[:, None] - tracked[None, :])
    return float(np.mean(distance.min(axis=1) <= TOLERANCE)), float(np.mean(distance.min(axis=0) <= TOLERANCE))


def grid(style: str, meter: int) -> list[SongSpec]:
    """Three tempos per (style, meter) (the other three in the other meter), lengths cycling 4..20 s."""
    first = METERS.index(meter)
    return [SongSpec(bpm=TEMPOS[i], meter=meter, style=style, seconds=LENGTHS[(i + STYLES.index(style)) % len(LENGTHS)],
                     sample_rate=SR, seed=i) for i in range(first, len(TEMPOS), 2)]


@pytest.mark.parametrize("meter", METERS)
@pytest.mark.parametrize("style", STYLES)
def test_the_tracker_finds_the_true_beats(style: str, meter: int):
    for spec in grid(style, meter):
        song = synth_song(spec)
        rhythm = music_rhythm(song.audio, sample_rate=song.sample_rate)
        recall, precision = hit_rates(song.beat_times, rhythm.beat_times, spec.seconds)
        assert recall >= 0.9 and precision >= 0.9, (spec.bpm, spec.seconds, recall, precision, rhythm.tempo)
        assert rhythm.tempo == pytest.approx(spec.bpm, rel=0.04)


@pytest.mark.parametrize("seconds", [4, 5, 7, 10, 16, 30])
def test_the_example_song_is_tracked_on_its_kicks(seconds: float):
    audio = synth_music(seconds)
    assert audio.shape == (2, seconds * EXAMPLE_SAMPLE_RATE) and audio.dtype == np.float32
    kicks = 0.1 + 0.5 * np.arange(2 * seconds)                           # 120 BPM from 0.1 s
    rhythm = music_rhythm(audio, sample_rate=EXAMPLE_SAMPLE_RATE)
    recall, precision = hit_rates(kicks[kicks < seconds], rhythm.beat_times, seconds)
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)
    offbeat = ((rhythm.beat_times - 0.1) % 0.5)                          # ~0.033 s late, never near 0.25
    assert np.all((offbeat < 0.1) | (offbeat > 0.45))


def test_songs_are_deterministic_stereo_and_in_range():
    spec = SongSpec(bpm=97, meter=3, style="latin", seconds=3.0, sample_rate=SR, seed=5)
    a, b = synth_song(spec), synth_song(spec)
    assert a.audio.shape == (2, 3 * SR) and a.audio.dtype == np.float32
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.beat_times, b.beat_times)
    assert np.abs(a.audio).max() <= 1.0 and not np.allclose(a.audio[0], a.audio[1])
    other = synth_song(SongSpec(bpm=97, meter=3, style="latin", seconds=3.0, sample_rate=SR, seed=6))
    assert not np.array_equal(a.audio, other.audio)
    beat = 60 / 97
    assert np.allclose(np.diff(a.beat_times), beat) and a.beat_times[0] == pytest.approx(0.1)
    assert np.allclose(a.downbeat_times, a.beat_times[::3])
    assert np.array_equal(synth_music(2.0), synth_music(2.0))


def test_specs_are_checked_and_patterns_readable():
    for bad in (dict(meter=5), dict(style="polka"), dict(bpm=10), dict(swing=2.0), dict(first_beat=-1.0),
                dict(drums=(Hit(4.5, "kick"),)), dict(drums=(Hit(0, "cowbell"),))):
        with pytest.raises(InputError):
            SongSpec(**bad)
    for style in STYLES:
        for meter in METERS:
            hits, bars = style_pattern(style, meter)
            on_beats = {h.at % meter for h in hits if h.drum in ("kick", "snare", "clap", "rim") and h.gain >= 0.8}
            assert on_beats == set(range(meter)), (style, meter)              # every beat carries a hit
    custom = SongSpec(drums=(Hit(0, "kick"), Hit(1, "snare"), Hit(2, "kick"), Hit(3, "snare")), seconds=2.0,
                      sample_rate=SR)
    assert custom.to_json()["drums"][1] == [1, "snare", 1.0]
    assert synth_song(custom).audio.shape == (2, 2 * SR)


@pytest.mark.parametrize("style,meter,bpm", [("four_on_floor", 4, 120), ("waltz", 3, 90), ("latin", 4, 140)])
def test_the_choreography_lands_on_the_beats(style: str, meter: int, bpm: float):
    """BAS of the dance against its music is clearly above BAS against the music shifted by half a beat."""
    fps = 30
    song = synth_song(SongSpec(bpm=bpm, meter=meter, style=style, seconds=10.0, sample_rate=SR, seed=1))
    audio = {"waveform": __import__("torch").from_numpy(song.audio)[None], "sample_rate": SR}
    motion = music_choreography(audio, fps=fps, seed=0)
    dance = motion_beat_frames(joint_positions(motion.poses.astype(np.float64), motion.trans.astype(np.float64)))
    on = beat_alignment_score(music_beat_frames(audio, fps), dance)
    half = int(round(30 / bpm * SR))
    shifted = dict(audio, waveform=audio["waveform"].roll(half, dims=-1))
    off = beat_alignment_score(music_beat_frames(shifted, fps), dance)
    print(f"{style} {bpm} BPM: BAS {on:.2f}, half-beat shifted {off:.2f}")
    assert on >= 0.5 and on >= 2 * off, (on, off)
