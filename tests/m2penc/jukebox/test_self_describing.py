"""Self-describing Jukebox files (config in the metadata) and the bounded cache of loaded models."""
from __future__ import annotations

import os

import numpy as np
import pytest

from m2pdance.m2penc.errors import InputError, WeightsError, WeightsMismatchError
from m2pdance.m2penc.jukebox import (ExtractorCache, JukeboxConfig, config_for_files, load_jukebox,
                                     save_jukebox_weights, write_tiny_jukebox)
from m2pdance.m2penc.jukebox import reuse as reuse_module
from m2pdance.m2penc.jukebox.random_weights import tiny_extractor, tiny_models

TINY = JukeboxConfig.preset("tiny")


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    return write_tiny_jukebox(tmp_path_factory.mktemp("tiny"), seed=3)


def test_tiny_files_load_without_a_config_and_equal_the_in_memory_model(tiny_files, make_music):
    vqvae_path, prior_path = tiny_files
    assert (vqvae_path.name, prior_path.name) == ("vqvae.safetensors", "prior_level_2.safetensors")
    assert config_for_files(vqvae_path, prior_path) == TINY
    audio = make_music(2.0)
    from_folder = load_jukebox(vqvae_path.parent, prior_path.parent, layer=TINY.prior_depth)
    assert from_folder.config == TINY and from_folder.weights_id is not None
    expected = tiny_extractor(layer=TINY.prior_depth, seed=3).extract(audio, fps=30.0)
    np.testing.assert_array_equal(from_folder.extract(audio, fps=30.0), expected)


def test_explicit_config_wins_over_the_embedded_one(tiny_files):
    other = TINY.replace(prior_width=32)
    with pytest.raises(WeightsMismatchError, match="shape mismatches"):
        load_jukebox(*tiny_files, layer=2, config=other)


def test_files_in_the_wrong_slot_or_from_different_models_are_refused(tiny_files, tmp_path):
    vqvae_path, prior_path = tiny_files
    with pytest.raises(WeightsError, match="holds a 'jukebox.prior' model, but a 'jukebox.vqvae' file"):
        load_jukebox(prior_path, prior_path, layer=2)
    _, shallow_prior = write_tiny_jukebox(tmp_path, config=TINY.replace(prior_depth=2))
    with pytest.raises(WeightsMismatchError, match="different Jukebox architectures"):
        load_jukebox(vqvae_path, shallow_prior, layer=2)


def test_a_prior_saved_with_fewer_layers_says_how_many_it_holds(tmp_path):
    vqvae, prior = tiny_models(layer=3, seed=1)
    paths = save_jukebox_weights(vqvae, prior, tmp_path / "v.safetensors", tmp_path / "p.safetensors")
    assert load_jukebox(*paths, layer=3).max_layer == 3
    with pytest.raises(WeightsMismatchError, match=r"p\.safetensors holds prior layers 1\.\.3 only, but layer 4"):
        load_jukebox(*paths, layer=4)
    with pytest.raises(InputError, match=r"1\.\.6"):
        load_jukebox(*paths, layer=7)


def test_writer_refuses_other_formats_and_mismatched_configs(tmp_path):
    vqvae, prior = tiny_models(layer=1, seed=0)
    with pytest.raises(WeightsError, match="must end in .safetensors"):
        save_jukebox_weights(vqvae, prior, tmp_path / "vqvae.pth.tar", tmp_path / "p.safetensors")
    with pytest.raises(WeightsError, match="different JukeboxConfig"):
        save_jukebox_weights(vqvae, prior, tmp_path / "v.safetensors", tmp_path / "p.safetensors",
                             TINY.replace(prior_depth=2))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def counted_loads(record_calls) -> list:
    """Record every real model load made by ExtractorCache."""
    return record_calls(reuse_module, "load_jukebox", 2)


def test_extractor_cache_is_lru_bounded_and_keyed_by_file_identity(tiny_files, counted_loads):
    cache = ExtractorCache(maxsize=2)
    first = cache.get(*tiny_files, layer=1)
    assert cache.get(tiny_files[0].parent, tiny_files[1].parent, layer=1) is first  # same resolved files
    cache.get(*tiny_files, layer=2)
    cache.get(*tiny_files, layer=1)  # refreshes layer 1
    cache.get(*tiny_files, layer=3)  # evicts layer 2, the least recently used
    assert len(cache) == 2 and counted_loads == [1, 2, 3]
    assert cache.get(*tiny_files, layer=1) is first
    cache.get(*tiny_files, layer=2)
    assert counted_loads == [1, 2, 3, 2]
    stat = tiny_files[1].stat()
    os.utime(tiny_files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file was replaced
    assert cache.get(*tiny_files, layer=1) is not first and counted_loads[-1] == 1
    cache.get(*tiny_files, layer=1, dtype="bf16")
    assert counted_loads == [1, 2, 3, 2, 1, 1]
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(InputError, match="maxsize"):
        ExtractorCache(maxsize=0)


def test_named_tiny_files_sit_beside_real_ones_and_load_by_path(tmp_path, make_music):
    (tmp_path / "vqvae.pth.tar").write_bytes(b"a real checkpoint would be here")
    vqvae_path, prior_path = write_tiny_jukebox(tmp_path, seed=3, vqvae_name="tiny-vqvae.safetensors",
                                                prior_name="tiny-prior.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-prior.safetensors", "tiny-vqvae.safetensors",
                                                         "vqvae.pth.tar"]
    assert load_jukebox(vqvae_path, prior_path, layer=1).extract(make_music(1.0), fps=15.0).shape == (15, 16)
