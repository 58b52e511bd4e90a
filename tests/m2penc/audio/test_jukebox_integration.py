"""End to end on real files: tiny self-describing Jukebox weights written to disk, loaded through
the same ``vqvae_path``/``prior_path`` as the 5B checkpoints by ``extract_music_features``, with
the feature cache and model reuse in play."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from m2pdance.m2penc.audio import jukebox_features as jf
from m2pdance.m2penc.audio.cache import FeatureCache
from m2pdance.m2penc.audio.features import extract_music_features
from m2pdance.m2penc.errors import InputError, WeightsMismatchError
from m2pdance.m2penc.jukebox import (JukeboxConfig, JukeboxFeatureExtractor, load_jukebox, save_jukebox_weights,
                                     write_tiny_jukebox)
from m2pdance.m2penc.jukebox import reuse as reuse_module
from m2pdance.m2penc.jukebox.random_weights import tiny_extractor, tiny_models

SR = 44100
SECONDS = 2.5
FPS = 15.0
LAYER = 4
TINY = JukeboxConfig.preset("tiny")
pytestmark = pytest.mark.usefixtures("jukebox_env")


def _music(seed: int) -> np.ndarray:
    """Mono 44.1 kHz float32 (S,): a chord pulsing at 2 Hz with noisy onsets."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * SECONDS)) / SR
    pulse = 0.5 * (1 + np.sign(np.sin(2 * np.pi * 2.0 * t)))
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    return (0.5 * chord * (0.4 + 0.6 * pulse) + 0.1 * rng.standard_normal(len(t)) * pulse).astype(np.float32)


def _audio(y: np.ndarray) -> dict:
    return {"waveform": torch.from_numpy(y)[None, None], "sample_rate": SR}


@pytest.fixture
def loads(record_calls) -> list:
    """Layers of every model load made on behalf of extract_music_features."""
    return record_calls(reuse_module, "load_jukebox", 2)


@pytest.fixture
def extractions(monkeypatch) -> list:
    """Number of frames of every JukeboxFeatureExtractor.extract call."""
    calls: list = []
    real = JukeboxFeatureExtractor.extract

    def extract(self, waveform, *args, **kwargs):
        result = real(self, waveform, *args, **kwargs)
        calls.append(len(result))
        return result

    monkeypatch.setattr(JukeboxFeatureExtractor, "extract", extract)
    return calls


def _jukebox(audio: dict, weights, **options):
    return extract_music_features(audio, kind="jukebox", fps=FPS, layer=options.pop("layer", LAYER),
                                  jukebox_backend="own", vqvae_path=weights[0], prior_path=weights[1], **options)


def test_tiny_files_give_direct_extraction_results_and_the_second_call_is_a_cache_hit(
        tiny_jukebox, tmp_path, loads, extractions):
    y = _music(seed=0)
    cache = FeatureCache(tmp_path / "features")
    music = _jukebox(_audio(y), tiny_jukebox, cache=cache)
    assert music.features.shape == (math.floor(SECONDS * FPS), TINY.prior_width) == (37, 16)
    assert (music.kind, music.layer, music.fps) == ("jukebox", LAYER, FPS)
    direct = load_jukebox(*tiny_jukebox, layer=LAYER).extract(y, fps=FPS, layer=LAYER)
    np.testing.assert_array_equal(music.features.numpy(), direct)
    assert float(music.features.std()) > 0.1  # real activations, not a constant
    jf.clear_loaded_jukebox()
    again = _jukebox(_audio(y), tiny_jukebox, cache=cache)
    torch.testing.assert_close(again.features, music.features, rtol=0, atol=0)
    assert loads == [LAYER] and extractions == [37, 37]  # the second call loaded and computed nothing
    assert len(list(cache.directory.glob("jukebox-*.safetensors"))) == 1


def test_models_are_loaded_once_for_many_songs_and_at_most_one_is_kept(tiny_jukebox, loads):
    first = _jukebox(_audio(_music(seed=1)), tiny_jukebox)
    second = _jukebox(_audio(_music(seed=2)), tiny_jukebox)
    assert loads == [LAYER] and not torch.equal(first.features, second.features)
    _jukebox(_audio(_music(seed=1)), tiny_jukebox, layer=2)
    assert loads == [LAYER, 2] and len(jf.LOADED) == 1


def test_features_of_different_weights_are_never_served_from_each_others_cache(tiny_jukebox, tmp_path):
    other = write_tiny_jukebox(tmp_path / "other", seed=1)
    cache = FeatureCache(tmp_path / "features")
    audio = _audio(_music(seed=0))
    ours, theirs = _jukebox(audio, tiny_jukebox, cache=cache), _jukebox(audio, other, cache=cache)
    assert not torch.equal(ours.features, theirs.features)
    assert len(list(cache.directory.glob("jukebox-*.safetensors"))) == 2


def test_a_caller_held_extractor_is_used_without_loading(tiny_jukebox, tmp_path, loads):
    y = _music(seed=0)
    extractor = load_jukebox(*tiny_jukebox, layer=LAYER)
    held = extract_music_features(_audio(y), kind="jukebox", fps=FPS, layer=LAYER, extractor=extractor)
    np.testing.assert_array_equal(held.features.numpy(), extractor.extract(y, fps=FPS, layer=LAYER))
    with pytest.raises(InputError, match=r"only layers 1\.\.4 were loaded"):
        extract_music_features(_audio(y), kind="jukebox", layer=5, extractor=extractor)
    with pytest.raises(InputError, match="built-in backend"):
        extract_music_features(_audio(y), kind="jukebox", layer=2, jukebox_backend="jukemirlib", extractor=extractor)
    cache = FeatureCache(tmp_path / "features")
    in_memory = tiny_extractor(layer=2, seed=5)  # no files: its features cannot be keyed, so not cached
    extract_music_features(_audio(y), kind="jukebox", fps=FPS, layer=2, extractor=in_memory, cache=cache)
    assert loads == [] and not cache.directory.exists()


def test_layers_beyond_what_a_file_holds_are_refused_before_loading(tiny_jukebox, tmp_path, loads):
    audio = _audio(_music(seed=0))
    with pytest.raises(InputError, match=r"layer must be an integer in 1\.\.6"):
        _jukebox(audio, tiny_jukebox, layer=TINY.prior_depth + 1)
    vqvae, prior = tiny_models(layer=3, seed=2)
    shallow = save_jukebox_weights(vqvae, prior, tmp_path / "vqvae.safetensors", tmp_path / "prior.safetensors")
    assert _jukebox(audio, shallow, layer=3).features.shape == (37, 16)
    with pytest.raises(WeightsMismatchError, match=r"holds prior layers 1\.\.3 only, but layer 4 was requested"):
        _jukebox(audio, shallow, layer=4)
    assert loads == [3]
