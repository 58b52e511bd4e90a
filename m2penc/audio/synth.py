"""A small music synthesiser: songs with known beats, from a readable description (numpy only).

Why here: the demo recipe, the example song and the beat tests need music whose beats are known
exactly *and* found by the tracker the choreographer dances to (:func:`.rhythm.music_rhythm`,
librosa's spectral-flux onset envelope + dynamic-programming beat tracker at 15360 Hz). A song is
a :class:`SongSpec` (tempo, meter, style, optional drum pattern / bass line / chords, swing,
length, rate, seed); :func:`synth_song` renders it deterministically (one seeded generator) to
float32 stereo ``(2, S)`` in [-1, 1] with its ground-truth beat and downbeat times.

How the beats are made trackable (the onset envelope is the mean over 128 mel bands of the
positive dB change per frame, so what counts is how many bands jump and by how many dB):

* kicks and snares/claps on the beats carry a broadband attack (a 2-4 ms noise click, a pitch
  drop for the kick, a noise burst for the snare) that lights every mel band at once;
* hats are quiet and sit mostly above the 7.68 kHz Nyquist of the analysis rate (a real hat's
  sizzle), so they are heard but barely move the envelope; off-beat notes of bass and melody have
  soft attacks;
* a quiet continuous bed (the pad's sustained chord and a little "air" noise) keeps every band
  above silence, so small sounds between the beats make small dB jumps, not 60 dB ones.

Styles (:data:`STYLES`), each defined for 3 and 4 beats per bar: ``four_on_floor`` (kick every
beat, clap on the backbeats), ``breakbeat`` (kick 1 and 3 + a ghost on the "and", snare on the
backbeats), ``halftime`` (snare on 3, rim shots on 2 and 4), ``waltz`` (kick on 1, "pah" snares on
the other beats), ``latin`` (kick on every beat, a 3-2 son clave on a wood block), ``shuffle``
(backbeat groove with triplet-swung hats). A style's default pattern is :func:`style_pattern`;
``SongSpec.drums`` replaces it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from ..errors import InputError
from ..jukebox.music_input import peak_normalise

#: The drum sounds a :class:`Hit` may name.
DRUMS: tuple[str, ...] = ("kick", "ghost_kick", "snare", "clap", "rim", "hat", "open_hat", "shaker", "block")
#: The styles :func:`style_pattern` knows.
STYLES: tuple[str, ...] = ("four_on_floor", "breakbeat", "halftime", "waltz", "latin", "shuffle")
#: Beats per bar :func:`style_pattern` supports.
METERS: tuple[int, ...] = (3, 4)
#: Natural minor and major scales (semitones above the key's root).
SCALES = {"minor": (0, 2, 3, 5, 7, 8, 10), "major": (0, 2, 4, 5, 7, 9, 11)}
#: Peak level of the finished mix.
PEAK = 0.89
#: The closing crash lands on the last beat at least this many seconds before the end (seconds).
ENDING_BEAT_MARGIN = 0.15
#: Level of the closing stab.
ENDING_GAIN = 0.8
#: Swing each style uses when :attr:`SongSpec.swing` is ``None``.
STYLE_SWING = {"shuffle": 1.0}


@dataclass(frozen=True)
class Hit:
    """One drum hit in a bar: ``at`` beats after the downbeat (0 <= at < meter, or < 2 * meter for
    two-bar patterns), ``drum`` one of :data:`DRUMS`, ``gain`` 0..1."""

    at: float
    drum: str
    gain: float = 1.0


@dataclass(frozen=True)
class SongSpec:
    """A song to synthesise.

    Attributes:
        bpm: tempo, beats per minute (40..240).
        meter: beats per bar, 3 or 4.
        style: one of :data:`STYLES`; picks the default drum pattern and groove.
        drums: hits of one (or two) bars replacing the style's pattern; ``None`` = the style's.
        bars: pattern length in bars of ``drums`` (1 or 2).
        bass: scale degrees of the bass, one per beat over one bar (added to each bar's chord root);
            ``None`` = root on the downbeat, fifth / octave on the other beats.
        chords: scale degree of each bar's chord root, cycled (e.g. ``(0, 5, 3, 4)`` = i-VI-iv-v).
        key: MIDI note of the key's root (57 = A3); ``mode`` ``"minor"`` or ``"major"``.
        melody: play a seeded melody over the chords.
        swing: 0 straight .. 1 triplet feel for off-beat eighths; ``None`` = the style's default.
        seconds: length; ``sample_rate``: Hz; ``seed``: every random choice and noise sample.
        first_beat: time of the first downbeat in seconds, 0..1 (a short lead-in: librosa's onset
            envelope is blind to an attack in its first frames, so a beat at 0 s is never tracked).
    """

    bpm: float = 120.0
    meter: int = 4
    style: str = "four_on_floor"
    drums: Optional[tuple[Hit, ...]] = None
    bars: int = 1
    bass: Optional[tuple[int, ...]] = None
    chords: tuple[int, ...] = (0, 5, 3, 4)
    key: int = 57
    mode: str = "minor"
    melody: bool = True
    swing: Optional[float] = None
    seconds: float = 10.0
    sample_rate: int = 44_100
    seed: int = 0
    first_beat: float = 0.1

    def __post_init__(self):
        if not (40.0 <= float(self.bpm) <= 240.0):
            raise InputError(f"bpm must be in 40..240, got {self.bpm}")
        if self.meter not in METERS:
            raise InputError(f"meter must be one of {METERS} beats per bar, got {self.meter}")
        if self.style not in STYLES:
            raise InputError(f"style must be one of {STYLES}, got {self.style!r}")
        if self.mode not in SCALES:
            raise InputError(f"mode must be one of {tuple(SCALES)}, got {self.mode!r}")
        if self.bars not in (1, 2):
            raise InputError(f"bars must be 1 or 2, got {self.bars}")
        if not (0.0 < float(self.seconds) <= 600.0) or int(self.sample_rate) < 8000:
            raise InputError(f"need 0 < seconds <= 600 and sample_rate >= 8000, got {self.seconds}, {self.sample_rate}")
        if self.swing is not None and not (0.0 <= self.swing <= 1.0):
            raise InputError(f"swing must be in 0..1, got {self.swing}")
        if not (0.0 <= float(self.first_beat) <= 1.0):
            raise InputError(f"first_beat must be in 0..1 s, got {self.first_beat}")
        if not self.chords:
            raise InputError("chords needs at least one bar's root")
        for hit in self.drums or ():
            if hit.drum not in DRUMS or not (0 <= hit.at < self.bars * self.meter) or not (0 <= hit.gain <= 1):
                raise InputError(f"bad drum hit {hit} (drums {DRUMS}, 0 <= at < bars * meter, 0 <= gain <= 1)")

    @property
    def pattern(self) -> tuple[Hit, ...]:
        """The drum hits of one pattern (``bars`` bars): ``drums`` or the style's."""
        return self.drums if self.drums is not None else style_pattern(self.style, self.meter)[0]

    @property
    def pattern_bars(self) -> int:
        return self.bars if self.drums is not None else style_pattern(self.style, self.meter)[1]

    def to_json(self) -> dict:
        """Plain JSON-able fields (``drums`` as ``[at, drum, gain]`` lists, the pattern actually played)."""
        out = asdict(self)
        out["drums"] = [[h.at, h.drum, h.gain] for h in self.pattern]
        out["bars"] = self.pattern_bars
        out["chords"], out["bass"] = list(self.chords), (list(self.bass) if self.bass is not None else None)
        return out


@dataclass(frozen=True)
class Song:
    """A rendered song: float32 ``audio`` ``(2, S)`` in [-1, 1] at ``sample_rate`` and its ground truth.

    ``beat_times`` / ``downbeat_times``: seconds of every beat / first beat of each bar inside the song.
    """

    spec: SongSpec
    audio: np.ndarray
    sample_rate: int
    beat_times: np.ndarray
    downbeat_times: np.ndarray = field(repr=False)


def style_pattern(style: str, meter: int) -> tuple[tuple[Hit, ...], int]:
    """The default drum pattern of ``style`` in ``meter`` beats per bar: (hits, bars it spans).

    Every beat carries a kick, snare, clap or rim shot of similar weight (the tracker trims leading
    and trailing beats weaker than the song's typical beat); between the beats only quiet sounds
    play: ghost kicks (no click), ghost snares at low gain, hats, shaker, the clave's wood block.
    """
    if style not in STYLES or meter not in METERS:
        raise InputError(f"style must be one of {STYLES} and meter one of {METERS}, got {style!r}, {meter}")
    beats = range(meter)
    backbeats = (1, 3) if meter == 4 else (1, 2)
    hats = tuple(Hit(b + 0.5, "hat", 0.35) for b in beats) + tuple(Hit(b, "hat", 0.25) for b in beats)
    if style == "four_on_floor":
        return tuple(Hit(b, "kick", 1.0 if b == 0 else 0.9) for b in beats) \
            + tuple(Hit(b, "clap", 0.8) for b in backbeats) + hats + (Hit(meter - 0.5, "open_hat", 0.3),), 1
    if style == "breakbeat":                    # kick 1 (and 3), snare on the backbeats, ghosts between
        kicks = (Hit(0, "kick", 1.0), Hit(2, "kick", 0.9)) if meter == 4 else (Hit(0, "kick", 1.0),)
        return kicks + (Hit(meter - 1.5, "ghost_kick", 0.7),) \
            + tuple(Hit(b, "snare", 0.95) for b in backbeats) + (Hit(meter - 0.5, "snare", 0.12),) + hats, 1
    if style == "halftime":                     # the snare on 3 (on 2 in 3/4), rim shots on the other beats
        snare = meter // 2
        return (Hit(0, "kick", 1.0), Hit(snare, "snare", 1.0), Hit(snare + 0.5, "ghost_kick", 0.6)) \
            + tuple(Hit(b, "rim", 0.9) for b in beats if b not in (0, snare)) \
            + tuple(Hit(b, "hat", 0.3) for b in beats), 1
    if style == "waltz":                        # oom-pah-pah: kick on 1, snares on the other beats
        return (Hit(0, "kick", 1.0),) + tuple(Hit(b, "snare", 0.8) for b in range(1, meter)) \
            + tuple(Hit(b, "hat", 0.3) for b in beats) + tuple(Hit(b + 0.5, "hat", 0.2) for b in beats), 1
    if style == "latin":                        # kick on every beat, 3-2 son clave on a wood block, shaker
        clave = (0, 1.5, 3, 5, 6) if meter == 4 else (0, 1.5, 2.5, 4, 5)
        return tuple(Hit(b + bar * meter, "kick", 1.0 if b == 0 else 0.85) for bar in (0, 1) for b in beats) \
            + tuple(Hit(c, "block", 0.45) for c in clave) \
            + tuple(Hit(b + bar * meter + q, "shaker", 0.3 if q == 0 else 0.15)
                    for bar in (0, 1) for b in beats for q in (0, 0.25, 0.5, 0.75)), 2
    # shuffle: kick 1 and 3, snare on the backbeats, swung hats (swing 1 by default: triplet feel)
    kicks = (Hit(0, "kick", 1.0), Hit(2, "kick", 0.9)) if meter == 4 else (Hit(0, "kick", 1.0),)
    return kicks + tuple(Hit(b, "snare", 0.9) for b in backbeats) + (Hit(meter - 0.5, "ghost_kick", 0.5),) + hats, 1


# -- sounds -------------------------------------------------------------------------------------------

def _env(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-6)) * np.exp(-t / decay)


def _one_pole_highpass(x: np.ndarray, sr: int, cutoff: float, order: int = 2) -> np.ndarray:
    """A cheap high-pass: ``x`` minus its one-pole low-pass, ``order`` times (vectorised via FFT)."""
    spectrum = np.fft.rfft(x, n=2 * len(x))
    freqs = np.fft.rfftfreq(2 * len(x), 1 / sr)
    ratio = (freqs / cutoff) ** 2
    gain = (ratio / (1 + ratio)) ** (order / 2)
    return np.fft.irfft(spectrum * gain)[:len(x)]


def _band(x: np.ndarray, sr: int, low: float, high: float) -> np.ndarray:
    """Band-limit ``x`` with gentle (2nd-order-like) FFT shelves."""
    spectrum = np.fft.rfft(x, n=2 * len(x))
    freqs = np.fft.rfftfreq(2 * len(x), 1 / sr)
    gain = np.ones_like(freqs)
    if low > 0:
        r = (freqs / low) ** 2
        gain *= r / (1 + r)
    if high < sr / 2:
        gain *= 1 / (1 + (freqs / high) ** 4)
    return np.fft.irfft(spectrum * gain)[:len(x)]


def _drum(name: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit (mono float64), rendered fresh (noise drawn from ``rng``)."""
    if name in ("kick", "ghost_kick"):
        n = int(0.35 * sr)
        t = np.arange(n) / sr
        freq = 48 + 110 * np.exp(-t / 0.03)                                 # pitch drop ~158 -> 48 Hz
        if name == "ghost_kick":                                            # a soft thump: no click, slower attack
            return 0.8 * np.sin(2 * np.pi * np.cumsum(48 + 40 * np.exp(-t / 0.03)) / sr) * _env(n, sr, 0.012, 0.12)
        body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * _env(n, sr, 0.001, 0.16)
        click = _band(rng.standard_normal(n), sr, 300, 9000) * np.exp(-t / 0.004)
        return 0.9 * body + 0.55 * click
    if name in ("snare", "clap"):
        n = int(0.25 * sr)
        t = np.arange(n) / sr
        noise = _band(rng.standard_normal(n), sr, 900, 9000)
        if name == "snare":
            tone = np.sin(2 * np.pi * 185 * t) * _env(n, sr, 0.001, 0.05)
            return 0.55 * noise * _env(n, sr, 0.001, 0.07) + 0.45 * tone
        bursts = sum(np.exp(-np.maximum(t - d, 0) / 0.006) * (t >= d) for d in (0.0, 0.011, 0.022))
        return 0.45 * noise * (0.5 * bursts + _env(n, sr, 0.022, 0.09) * (t >= 0.022))
    if name in ("rim", "block"):
        n = int(0.08 * sr)
        t = np.arange(n) / sr
        pitch = 1700.0 if name == "rim" else 950.0
        tone = np.sin(2 * np.pi * pitch * t) + 0.4 * np.sin(2 * np.pi * 2.7 * pitch * t)
        if name == "block":
            return 0.5 * tone * _env(n, sr, 0.0005, 0.03)
        click = _band(rng.standard_normal(n), sr, 300, 9000) * np.exp(-t / 0.006)   # a rim shot: stick crack
        return 0.4 * tone * _env(n, sr, 0.0005, 0.018) + 0.6 * click
    # hats and shaker: mostly above 7 kHz, soft-edged
    length = {"hat": 0.05, "open_hat": 0.3, "shaker": 0.06}[name]
    n = int(length * sr)
    noise = _one_pole_highpass(rng.standard_normal(n), sr, min(8500.0, 0.42 * sr), order=4)
    attack = 0.008 if name == "shaker" else 0.003
    return 0.5 * noise * _env(n, sr, attack, length / 4)


def _note_freq(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _tone(freq: float, n: int, sr: int, harmonics: tuple[float, ...], detune: float = 0.0) -> np.ndarray:
    t = np.arange(n) / sr
    f = freq * (1 + detune)
    return sum(a * np.sin(2 * np.pi * (k + 1) * f * t) for k, a in enumerate(harmonics) if (k + 1) * f < sr / 2)


def _add(out: np.ndarray, start: int, sound: np.ndarray, gain: float) -> None:
    if start >= out.shape[-1] or start + sound.shape[-1] <= 0:
        return
    lo = max(start, 0)
    hi = min(start + sound.shape[-1], out.shape[-1])
    out[..., lo:hi] += gain * sound[..., lo - start:hi - start]


# -- the song ------------------------------------------------------------------------------------------

def _swung(at: float, swing: float) -> float:
    """Delay off-beat eighths (x.5) toward the triplet position (x.667) by ``swing`` 0..1."""
    frac = at % 1.0
    return at + swing / 6 if abs(frac - 0.5) < 1e-9 else at


def synth_song(spec: SongSpec) -> Song:
    """Render ``spec``: drums, bass, chord pad and melody, mixed to stereo and peak-limited."""
    sr, rng = int(spec.sample_rate), np.random.default_rng(spec.seed)
    n = int(round(spec.seconds * sr))
    beat = 60.0 / float(spec.bpm)
    bar_len = spec.meter * beat
    swing = STYLE_SWING.get(spec.style, 0.0) if spec.swing is None else float(spec.swing)
    scale = SCALES[spec.mode]
    n_bars = int(np.ceil((spec.seconds - spec.first_beat) / bar_len)) + 1
    mix = np.zeros((2, n))

    def degree(d: int) -> float:                       # scale degree (any integer) -> semitones
        return 12 * (d // 7) + scale[d % 7]

    def at_time(bar: int, pos: float) -> int:
        return int(round((spec.first_beat + bar * bar_len + pos * beat) * sr))

    # drums
    pans = {"kick": 0.0, "snare": 0.05, "clap": -0.05, "rim": 0.2, "hat": 0.35, "open_hat": 0.35,
            "shaker": -0.4, "block": -0.3, "ghost_kick": 0.0}
    pattern, bars = spec.pattern, spec.pattern_bars
    cache: dict[str, list[np.ndarray]] = {}
    for name in sorted({h.drum for h in pattern} | {"kick", "clap"}):
        cache[name] = [_drum(name, sr, rng) for _ in range(4)]   # a few takes, cycled: human-ish variation
    for bar in range(0, n_bars, bars):
        for i, hit in enumerate(pattern):
            takes = cache[hit.drum]
            sound = takes[(bar + i) % len(takes)]
            pan = pans[hit.drum]
            gain = hit.gain * (1.0 + 0.02 * rng.standard_normal())
            _add(mix, at_time(bar, _swung(hit.at, swing)), np.stack([(1 - pan) * sound, (1 + pan) * sound]) / 2, gain)
    beats = spec.first_beat + beat * np.arange(int(np.ceil(spec.seconds / beat)) + 1)
    beats = beats[(beats >= 0) & (beats < spec.seconds)]
    # the song closes with a stab (kick + clap) on the last beat at least ENDING_BEAT_MARGIN before its end
    closing = beats[beats <= spec.seconds - ENDING_BEAT_MARGIN]
    if closing.size:
        for name in ("kick", "clap"):
            sound = cache[name][0]
            _add(mix, int(round(closing[-1] * sr)), np.stack([sound, sound]) / 2, ENDING_GAIN)

    # chords (pad) and bass, one chord per bar
    bass_line = spec.bass if spec.bass is not None else tuple([0] + [4 if b % 2 else 7 for b in range(1, spec.meter)])
    for bar in range(n_bars):
        root = spec.chords[bar % len(spec.chords)]
        start = at_time(bar, 0)
        pad_n = int(bar_len * sr) + int(0.25 * sr)
        pad = np.zeros((2, pad_n))
        env = _env(pad_n, sr, 0.12, 10.0) * np.clip((pad_n - np.arange(pad_n)) / (0.25 * sr), 0, 1)
        for k, d in enumerate((root, root + 2, root + 4)):
            f = _note_freq(spec.key - 12 + degree(d))
            for ch, det in enumerate((-0.003, 0.003)):
                pad[ch] += _tone(f, pad_n, sr, (1.0, 0.35, 0.2, 0.1), det * (1 + k)) * env
        _add(mix, start, pad, 0.05)
        for b in range(spec.meter):
            d = root + bass_line[b % len(bass_line)]
            f = _note_freq(spec.key - 24 + degree(d))
            m = int(beat * 0.9 * sr)
            note = _tone(f, m, sr, (1.0, 0.5, 0.25, 0.12)) * _env(m, sr, 0.004, 0.18 * beat / 0.5)
            _add(mix, at_time(bar, b), np.stack([note, note]), 0.28 if b == 0 else 0.22)

    # melody: chord tones and passing notes on beats and (softer) on off-beats
    if spec.melody:
        for bar in range(n_bars):
            root = spec.chords[bar % len(spec.chords)]
            positions = [b + h for b in range(spec.meter) for h in (0.0, 0.5) if h == 0 or rng.random() < 0.35]
            step = int(rng.integers(0, 3)) * 2
            for pos in positions:
                if rng.random() < 0.25:
                    continue                            # rests
                step = int(np.clip(step + rng.choice([-2, -1, 1, 2]), -2, 9))
                f = _note_freq(spec.key + 12 + degree(root + step))
                m = int(beat * (0.45 if pos % 1 else 0.9) * sr)
                note = _tone(f, m, sr, (1.0, 0.0, 0.11, 0.0, 0.04)) \
                    * _env(m, sr, 0.03, 0.3 * beat) * np.clip((m - np.arange(m)) / (0.02 * sr), 0, 1)
                pan = 0.15 * (1 if bar % 2 else -1)
                _add(mix, at_time(bar, _swung(pos, swing)), np.stack([(1 - pan) * note, (1 + pan) * note]),
                     0.09 if pos % 1 else 0.11)

    # a quiet bed of "air" so soft sounds between the beats make small onsets
    air = _band(rng.standard_normal(n), sr, 200, min(12000.0, 0.45 * sr))
    mix += 0.004 * np.stack([air, np.roll(air, sr // 50)])

    limited = np.tanh(1.2 * mix)                       # gentle saturation, then peak to PEAK
    scale_ = peak_normalise(limited.reshape(-1)).reshape(2, -1) * PEAK
    downbeats = beats[::spec.meter]
    return Song(spec, scale_.astype(np.float32), sr, beats, downbeats)
