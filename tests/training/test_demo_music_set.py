"""The demo's music set: reproducible files, ground truth in the JSON, train and heldout disjoint."""
from __future__ import annotations

import json

import numpy as np
import soundfile

from m2pdance.training.demo.music_set import (HELDOUT, MUSIC_SET_FILE, TEMPO_RANGES, TRAIN, build_music_set,
                                              split_specs)


def test_the_set_is_byte_reproducible_and_lists_its_beats(tmp_path):
    kwargs = dict(seed=3, train_count=3, heldout_count=2, seconds=(4.0, 5.0))
    manifest = build_music_set(tmp_path / "a", **kwargs)
    build_music_set(tmp_path / "b", **kwargs)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 6 and MUSIC_SET_FILE in {str(f) for f in files}
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert json.loads((tmp_path / "a" / MUSIC_SET_FILE).read_text()) == manifest
    for split, count in ((TRAIN, 3), (HELDOUT, 2)):
        songs = manifest["splits"][split]["songs"]
        assert len(songs) == count
        for song in songs:
            audio, rate = soundfile.read(tmp_path / "a" / song["file"])
            spec = song["spec"]
            assert rate == spec["sample_rate"] and audio.shape == (round(spec["seconds"] * rate), 2)
            assert 4.0 <= spec["seconds"] <= 5.0 and song["file"].startswith(f"{split}/")
            beats = np.array(song["beat_times"])
            assert np.allclose(np.diff(beats), 60 / spec["bpm"], atol=1e-5) and beats[-1] < spec["seconds"]
            assert song["downbeat_times"] == song["beat_times"][::spec["meter"]]
    other = build_music_set(tmp_path / "c", **dict(kwargs, seed=4))
    assert other["splits"][TRAIN]["songs"][0]["spec"] != manifest["splits"][TRAIN]["songs"][0]["spec"]


def test_the_splits_share_no_tempo_and_no_pattern():
    train, heldout = split_specs(TRAIN, 40, seed=0), split_specs(HELDOUT, 40, seed=0)
    in_ranges = lambda bpm, split: any(lo <= bpm <= hi for lo, hi in TEMPO_RANGES[split])  # noqa: E731
    assert all(in_ranges(s.bpm, TRAIN) for s in train) and all(in_ranges(s.bpm, HELDOUT) for s in heldout)
    assert {s.bpm for s in train}.isdisjoint({s.bpm for s in heldout})
    assert max(s.bpm for s in train) < min(s.bpm for s in heldout if s.bpm > 110)
    assert min(s.bpm for s in train) > max(s.bpm for s in heldout if s.bpm < 110)
    pattern = lambda s: (s.meter, tuple((h.at, h.drum, h.gain) for h in s.pattern))  # noqa: E731
    assert {pattern(s) for s in train}.isdisjoint({pattern(s) for s in heldout})
    assert "latin" in {s.style for s in heldout} and "latin" not in {s.style for s in train}
    assert len({s.style for s in train}) >= 4 and len({(s.style, s.meter) for s in heldout}) >= 3
    assert split_specs(TRAIN, 5, seed=0) == train[:5] and split_specs(TRAIN, 5, seed=1) != train[:5]
