"""Feature cache: hit/miss by key, no recomputation on a hit, stale and corrupt entries."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pdance.m2penc.audio import features as features_module
from m2pdance.m2penc.audio.cache import FeatureCache, audio_content_hash, cache_key, default_cache_dir
from m2pdance.m2penc.audio.features import extract_music_features

SR = 16000


@pytest.fixture
def song() -> dict:
    y = 0.1 * np.random.default_rng(3).standard_normal(SR * 3).astype(np.float32)
    return {"waveform": torch.from_numpy(y)[None, None], "sample_rate": SR}


@pytest.fixture
def counting(record_calls) -> list:
    """Count calls of the real feature computation (records the feature kind)."""
    return record_calls(features_module, "_compute", 1)


def test_hit_skips_computation(tmp_path, song, counting):
    cache = FeatureCache(tmp_path)
    first = extract_music_features(song, fps=15, cache=cache)
    again = extract_music_features(song, fps=15, cache=cache)
    assert len(counting) == 1
    torch.testing.assert_close(first.features, again.features, rtol=0, atol=0)
    assert (again.kind, again.fps, again.layer, again.source_hash) == (first.kind, 15.0, None, first.source_hash)


def test_each_key_part_misses(tmp_path, song, counting):
    cache = FeatureCache(tmp_path)
    extract_music_features(song, fps=15, cache=cache)
    extract_music_features(song, fps=30, cache=cache)
    extract_music_features(song, fps=15, start=0.5, cache=cache)
    extract_music_features(song, fps=15, duration=2.0, cache=cache)
    other = {"waveform": song["waveform"] * 0.5, "sample_rate": SR}
    extract_music_features(other, fps=15, cache=cache)
    assert len(counting) == 5
    assert len(list(tmp_path.glob("*.safetensors"))) == 5
    assert not list(tmp_path.glob("*.partial"))


def test_corrupt_entry_is_recomputed(tmp_path, song, counting):
    cache = FeatureCache(tmp_path)
    extract_music_features(song, cache=cache)
    (entry,) = tmp_path.glob("*.safetensors")
    entry.write_bytes(b"garbage")
    extract_music_features(song, cache=cache)
    assert len(counting) == 2


def test_key_mismatch_is_a_miss(tmp_path, song):
    cache = FeatureCache(tmp_path)
    music = extract_music_features(song)
    key = cache_key(music.source_hash, "baseline", None, 15, 0.0, None, {"start_bpm": None})
    cache.store(key, music)
    assert key in cache and cache.load(key) is not None
    other = dict(key, fps=30.0)
    cache.path_for(other).write_bytes(cache.path_for(key).read_bytes())
    assert cache.load(other) is None


def test_content_hash_depends_on_samples_and_rate(song):
    h = audio_content_hash(song)
    assert h == audio_content_hash({"waveform": song["waveform"].clone(), "sample_rate": SR})
    assert h != audio_content_hash({"waveform": song["waveform"], "sample_rate": SR + 1})
    changed = song["waveform"].clone()
    changed[0, 0, 100] += 1e-3
    assert h != audio_content_hash({"waveform": changed, "sample_rate": SR})


def test_default_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("M2PDANCE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("M2PDANCE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "m2pdance" / "music_features"
