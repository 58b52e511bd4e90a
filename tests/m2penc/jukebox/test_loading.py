"""Weights files: missing-file errors, safe reading of Jukebox-format pickles, conversion, RAM check."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import InputError, WeightsMismatchError, WeightsNotFoundError
from m2pdance.m2penc.jukebox import (JukeboxConfig, JukeboxMemoryError, convert_jukebox_checkpoint,
                                     extract_jukebox_features, load_jukebox, read_jukebox_state_dict)
from m2pdance.m2penc.jukebox.memory import check_memory, required_bytes
from m2pdance.m2penc.jukebox.prior import TopLevelPrior
from m2pdance.m2penc.jukebox.random_weights import randomize_, tiny_models

TINY = JukeboxConfig.preset("tiny")
GIB = 1024**3


def _save_like_openai(path, state: dict, legacy: bool) -> None:
    """Write a checkpoint shaped like OpenAI's: hps dict with numpy scalars, step, module. prefix."""
    checkpoint = {"hps": {"sr": 44100, "sample_length": np.int64(1048576), "lr": np.float64(1e-4),
                          "restore_prior": "x", "downs_t": (3, 2, 2)},
                  "model": {f"module.{k}": v for k, v in state.items()}, "step": 12345, "opt": None}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jukebox")
    vqvae, _ = tiny_models(1, seed=4)
    prior = randomize_(TopLevelPrior(TINY), seed=9)
    _save_like_openai(folder / "vqvae.pth.tar", vqvae.state_dict(), legacy=False)
    _save_like_openai(folder / "prior_level_2.pth.tar", prior.state_dict(), legacy=True)
    return folder, vqvae, prior


def test_missing_weights_name_the_file_url_and_folder(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        load_jukebox(tmp_path / "vqvae.pth.tar", tmp_path / "prior_level_2.pth.tar", layer=2, config=TINY)
    message = str(info.value)
    assert "vqvae.pth.tar" in message and "openaipublic.azureedge.net/jukebox/models/5b/vqvae.pth.tar" in message
    assert "models/jukebox" in message
    (tmp_path / "vqvae.pth.tar").write_bytes(b"")  # the VQ-VAE is there, the prior is not given
    with pytest.raises(WeightsNotFoundError, match="prior_level_2.pth.tar"):
        extract_jukebox_features(np.zeros(44100, np.float32), layer=2, vqvae_path=tmp_path, prior_path=None)


def test_openai_format_pickles_load_safely_and_give_the_same_features(tiny_files, make_music):
    folder, vqvae, prior = tiny_files
    layer = 4
    loaded = load_jukebox(folder / "vqvae.pth.tar", folder / "prior_level_2.pth.tar", layer=layer, config=TINY)
    assert loaded.max_layer == layer and "prior.x_out.weight" not in loaded.prior.state_dict()
    assert loaded.prior.prior.transformer._attn_mods[0].attn.c_attn.w.dtype == torch.float16
    tokens = loaded.tokens(make_music(2.0))
    from m2pdance.m2penc.jukebox.extractor import JukeboxFeatureExtractor
    expected = JukeboxFeatureExtractor(vqvae, prior).token_features(tokens, layer=layer)
    np.testing.assert_allclose(loaded.token_features(tokens), expected, atol=1e-6)
    via_function = extract_jukebox_features(make_music(2.0), layer=layer, fps=30.0, vqvae_path=folder,
                                            prior_path=folder, config=TINY)
    assert via_function.shape == (60, TINY.prior_width)


def test_convert_to_safetensors_keeps_only_needed_layers(tiny_files, tmp_path):
    folder, _, prior = tiny_files
    dst = convert_jukebox_checkpoint(folder / "prior_level_2.pth.tar", tmp_path / "prior_level_2.safetensors",
                                     max_layer=3)
    state = read_jukebox_state_dict(dst)
    assert not any(k.startswith("module.") for k in state) and "prior.x_out.weight" not in state
    assert {k.split(".")[3] for k in state if "_attn_mods" in k} == {"0", "1", "2"}
    torch.testing.assert_close(state["prior.pos_emb.pos_emb"], prior.state_dict()["prior.pos_emb.pos_emb"])
    assert load_jukebox(folder / "vqvae.pth.tar", dst, layer=3, config=TINY).max_layer == 3
    with pytest.raises(WeightsMismatchError, match=r"holds prior layers 1\.\.3 only, but layer 4 was requested"):
        load_jukebox(folder / "vqvae.pth.tar", dst, layer=4, config=TINY)
    assert list(tmp_path.glob("*.partial")) == []


def test_a_different_checkpoint_is_a_mismatch_not_a_partial_load(tiny_files, tmp_path):
    folder, _, prior = tiny_files
    state = dict(prior.state_dict())
    state["prior.prime_x_out.weight"] = torch.zeros(2, 2)  # e.g. a lyrics prior
    _save_like_openai(tmp_path / "prior_level_2.pth.tar", state, legacy=False)
    with pytest.raises(WeightsMismatchError, match="unexpected keys: prior.prime_x_out.weight"):
        load_jukebox(folder / "vqvae.pth.tar", tmp_path / "prior_level_2.pth.tar", layer=2, config=TINY)


def test_memory_check_refuses_with_the_needed_amount():
    config = JukeboxConfig.preset("5b")
    need_36 = required_bytes(config, 36, torch.float32)
    need_66 = required_bytes(config, 66, torch.float32)
    assert 4 * GIB < need_36 < 6.5 * GIB and 1.6 < need_66 / need_36 < 1.9
    with pytest.raises(JukeboxMemoryError, match=r"needs about \d+\.\d GiB of RAM but only 8\.0 GiB is free"):
        check_memory(need_66, "the Jukebox prior up to layer 66", available=8 * GIB)
    check_memory(need_36, "the Jukebox prior up to layer 36", available=8 * GIB)


def test_memory_estimate_counts_a_legacy_pickle_read_whole(tiny_files):
    folder, _, _ = tiny_files
    legacy = folder / "prior_level_2.pth.tar"
    assert required_bytes(TINY, 1, torch.float32, legacy) >= legacy.stat().st_size


def test_bad_arguments_are_input_errors(tiny_files):
    folder, _, _ = tiny_files
    with pytest.raises(InputError, match="layer must be an integer in 1..6"):
        load_jukebox(folder, folder, layer=7, config=TINY)
    extractor = load_jukebox(folder, folder, layer=2, config=TINY)
    with pytest.raises(InputError, match="only layers 1..2 were loaded"):
        extractor.extract(np.zeros(44100, np.float32), layer=3)
    with pytest.raises(InputError, match="mono"):
        extractor.extract(np.zeros((2, 44100), np.float32))
    with pytest.raises(InputError, match="backend"):
        extract_jukebox_features(np.zeros(44100, np.float32), backend="nope")
