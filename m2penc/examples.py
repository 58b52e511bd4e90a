"""Synthetic example inputs (music and a reference photo) so every workflow runs as shipped.

Nothing here is a model: the music is a 120 BPM four-on-the-floor groove from the small synthesiser
``m2penc.audio.synth`` (drums, bass, chords, melody; its beats tracked on the kicks), the "photo"
the open body rendered in one of the demo set's clothes colour schemes (``m2penc.render.appearance``),
standing, framed as the demo's training frames. Both are deterministic, small, and written
atomically. The demo command, the pack's first load in ComfyUI and the tests place them in ComfyUI's
``input/`` folder under the names the example workflows use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import atomic_write

EXAMPLE_MUSIC = "m2pdance_example_music.wav"
EXAMPLE_REFERENCE = "m2pdance_example_dancer.png"
EXAMPLE_SAMPLE_RATE = 44_100  # Hz, Jukebox's rate
EXAMPLE_BPM = 120.0


def synth_music(seconds: float = 6.0, sample_rate: int = EXAMPLE_SAMPLE_RATE, bpm: float = EXAMPLE_BPM,
                seed: int = 0) -> np.ndarray:
    """A stereo four-on-the-floor groove, float32 ``(2, S)`` in [-1, 1], with a kick on every beat.

    Rendered by :func:`m2penc.audio.synth.synth_song` (kicks with a real attack on the beats, claps on
    2 and 4, quiet hats, bass, chord pad and melody; the first beat 0.1 s in), so the beat tracker
    the choreographer uses finds the kicks, not the off-beat hats, at every length.
    """
    from .audio.synth import SongSpec, synth_song

    return synth_song(SongSpec(bpm=bpm, meter=4, style="four_on_floor", seconds=seconds,
                               sample_rate=sample_rate, seed=seed)).audio


#: The example photo's colour scheme (:data:`~m2penc.render.appearance.COLOUR_SCHEMES`): one of the demo
#: set's training schemes, so the demo weights know its colours.
EXAMPLE_SCHEME = "red_jeans"


def synth_reference(size: int = 512, scheme: str = EXAMPLE_SCHEME) -> np.ndarray:
    """The example photo, uint8 ``(size, size, 3)``: the open body standing in ``scheme``'s clothes,
    3D-shaded and framed as the demo set's training frames are
    (:func:`~m2penc.render.appearance.reference_photo`)."""
    from .render.appearance import reference_photo

    return reference_photo(scheme, size).numpy()


def write_example_inputs(input_dir: str | Path, seconds: float = 6.0) -> tuple[Path, Path]:
    """Write the example music and reference image into ``input_dir`` (atomically)."""
    import soundfile
    from PIL import Image

    input_dir = Path(input_dir)
    music = atomic_write(input_dir / EXAMPLE_MUSIC, lambda tmp: soundfile.write(
        tmp, synth_music(seconds).T, EXAMPLE_SAMPLE_RATE, format="WAV", subtype="PCM_16"))
    ref = atomic_write(input_dir / EXAMPLE_REFERENCE,
                       lambda tmp: Image.fromarray(synth_reference()).save(tmp, format="PNG"))
    return music, ref
