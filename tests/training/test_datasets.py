"""Stage-1 shards: write/read round trip, windowing, step batches, and clear errors for bad data."""
from __future__ import annotations

import pickle

import pytest
import torch

from m2pdance.m2penc.encoder import M2PEncConfig
from m2pdance.m2penc.errors import InputError
from m2pdance.training.datasets import (Stage1Windows, batch_indices_for_step, read_shard_info, steps_per_epoch,
                                        write_shard)
from m2pdance.training.toy_data import make_toy_data

GRID, C_GUID, C_HEAT, D = 16, 8, 18, 35


def _arrays(frames: int, seed: int = 0, guidance_dtype: torch.dtype = torch.float16):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(frames, D, generator=g)
    guidance = torch.randn(frames, C_GUID, GRID, GRID, generator=g).to(guidance_dtype)
    heatmaps = torch.rand(frames, C_HEAT, GRID, GRID, generator=g)
    return features, guidance, heatmaps


def _shard(folder, name: str, frames: int, seed: int = 0, **kwargs):
    kwargs = {"fps": 15.0, "feature_kind": "baseline", **kwargs}
    return write_shard(folder / name, *_arrays(frames, seed), **kwargs)


def test_round_trip_windows_match_written_rows(tmp_path, tiny_model):
    arrays = [_arrays(12, seed=0), _arrays(10, seed=1)]
    for i, (f, g, h) in enumerate(arrays):
        write_shard(tmp_path / f"s{i}.safetensors", f, g, h, fps=15.0, feature_kind="baseline")
    info = read_shard_info(tmp_path / "s0.safetensors")
    assert (info.num_frames, info.feature_dim, info.fps, info.feature_kind) == (12, D, 15.0, "baseline")
    assert info.guidance_shape == (C_GUID, GRID, GRID) and info.heatmap_shape == (C_HEAT, GRID, GRID)

    data = Stage1Windows(tmp_path, sequence_length=4, model=tiny_model)
    assert len(data) == (12 - 4 + 1) + (10 - 4 + 1)
    assert data.locate(9) == (1, 0) and data.locate(15) == (1, 6)
    item = data[11]                                   # shard 1, frames 2..5
    f, g, h = arrays[1]
    assert torch.equal(item["features"], f[2:6])
    assert torch.equal(item["guidance"], g[2:6].float())      # float16 on disk, float32 out
    assert torch.equal(item["heatmaps"], h[2:6])
    assert all(t.dtype == torch.float32 for t in item.values())
    with pytest.raises(IndexError):
        data[len(data)]


def test_sequential_windows_do_not_overlap_or_cross_shards(tmp_path, tiny_model):
    _shard(tmp_path, "a.safetensors", 10)
    _shard(tmp_path, "b.safetensors", 9, seed=1)
    data = Stage1Windows(tmp_path, sequence_length=4, model=tiny_model)
    starts = [data.locate(i) for i in data.sequential_indices()]
    assert starts == [(0, 0), (0, 4), (1, 0), (1, 4)]
    assert steps_per_epoch(data, batch_size=3) == 2
    assert batch_indices_for_step(data, 1, 3, seed=0, sampling="sequential") == [
        data.sequential_indices()[i] for i in (3, 0, 1)]          # wraps around


def test_random_batches_depend_only_on_seed_and_step(toy_dir, tiny_model):
    data = Stage1Windows(toy_dir, sequence_length=8, model=tiny_model)
    a = batch_indices_for_step(data, 7, 16, seed=3, sampling="random")
    assert a == batch_indices_for_step(data, 7, 16, seed=3, sampling="random")
    assert a != batch_indices_for_step(data, 8, 16, seed=3, sampling="random")
    assert a != batch_indices_for_step(data, 7, 16, seed=4, sampling="random")
    assert all(0 <= i < len(data) for i in a)


def test_dataset_pickles_without_open_handles(toy_dir, tiny_model):
    data = Stage1Windows(toy_dir, sequence_length=8, model=tiny_model)
    first = data[0]
    clone = pickle.loads(pickle.dumps(data))          # what a DataLoader worker receives
    assert clone._handles == {} and torch.equal(clone[0]["guidance"], first["guidance"])


def test_toy_targets_are_a_function_of_the_features(tmp_path, tiny_model):
    make_toy_data(tmp_path / "a", tiny_model, num_shards=1, frames_per_shard=12, seed=0)
    make_toy_data(tmp_path / "b", tiny_model, num_shards=1, frames_per_shard=12, seed=1)
    a = Stage1Windows(tmp_path / "a", 12, tiny_model)[0]
    b = Stage1Windows(tmp_path / "b", 12, tiny_model)[0]
    assert not torch.equal(a["features"], b["features"])
    assert a["heatmaps"].amax(dim=(-1, -2)).min() > 0.5      # one blob per keypoint and frame
    from m2pdance.training.toy_data import toy_targets
    guidance, _ = toy_targets(b["features"], tiny_model)
    assert torch.allclose(guidance, b["guidance"], atol=1e-3)  # same fixed map for every seed


def test_empty_or_missing_folder(tmp_path, tiny_model):
    with pytest.raises(InputError, match="no .safetensors shards"):
        Stage1Windows(tmp_path, 4, tiny_model)
    with pytest.raises(InputError, match="not found"):
        Stage1Windows(tmp_path / "nope", 4, tiny_model)


def test_feature_kind_and_dim_must_match_the_model(tmp_path, tiny_model):
    _shard(tmp_path, "a.safetensors", 8)
    jukebox_model = M2PEncConfig.preset("tiny", feature_kind="jukebox", in_dim=4800)
    with pytest.raises(InputError, match=r"'baseline' features \(35-d\) but the model reads 'jukebox'"):
        Stage1Windows(tmp_path, 4, jukebox_model)


def test_map_shapes_and_fps_must_match_the_model(tmp_path, tiny_model):
    _shard(tmp_path, "a.safetensors", 8)
    with pytest.raises(InputError, match=r"guidance frames are \(8, 16, 16\).*\(320, 64, 64\)"):
        Stage1Windows(tmp_path, 4, M2PEncConfig.preset("paper_baseline"))
    with pytest.raises(InputError, match="30.0 fps"):
        Stage1Windows(tmp_path, 4, tiny_model.replace(fps=30.0))


def test_too_short_shard_is_named(tmp_path, tiny_model):
    _shard(tmp_path, "long.safetensors", 20)
    _shard(tmp_path, "short.safetensors", 5)
    with pytest.raises(InputError, match="short.safetensors has 5 frames, fewer than one 8-frame window"):
        Stage1Windows(tmp_path, 8, tiny_model)


def test_foreign_or_broken_files_are_refused(tmp_path, tiny_model):
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InputError, match="not a stage-1 shard"):
        Stage1Windows(tmp_path, 1, tiny_model)
    (tmp_path / "other.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable safetensors shard"):
        Stage1Windows(tmp_path, 1, tiny_model)


def test_mixed_formats_in_one_folder_are_refused(tmp_path):
    _shard(tmp_path, "a.safetensors", 8)
    _shard(tmp_path, "b.safetensors", 8, fps=30.0)
    with pytest.raises(InputError, match="disagree"):
        Stage1Windows(tmp_path, 4)


@pytest.mark.parametrize("change, message", [
    ({"features": torch.zeros(6, 34)}, r"features must be \(N, 35\)"),
    ({"guidance": torch.zeros(5, C_GUID, GRID, GRID)}, "same N"),
    ({"heatmaps": torch.zeros(6, C_HEAT, 8, 8)}, "share the grid"),
    ({"guidance": torch.zeros(6, C_GUID, GRID, GRID, dtype=torch.int32)}, "guidance must be one of"),
    ({"feature_kind": "mfcc"}, "feature_kind must be one of"),
    ({"fps": 0.0}, "fps must be > 0"),
])
def test_write_shard_validates(tmp_path, change, message):
    f, g, h = _arrays(6)
    kwargs = {"features": f, "guidance": g, "heatmaps": h, "fps": 15.0, "feature_kind": "baseline", **change}
    with pytest.raises(InputError, match=message):
        write_shard(tmp_path / "x.safetensors", **kwargs)
    assert not list(tmp_path.iterdir())               # nothing half-written
