"""Stage 2-3 datasets over a small SDGPip build with video, written with ``write_shard`` directly.

The build: clip ``c0`` cut into two chunks (6 + 5 frames, joined again by the readers) in shard 0,
clip ``c1`` (7 frames) in shard 1; 64 x 64 frames. Feature rows are ``[clip, frame in clip, noise...]``
so windows can be checked row by row; every video frame has its own flat grey level.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from m2pdance.m2penc.encoder import M2PEncConfig
from m2pdance.m2penc.errors import InputError
from m2pdance.training.sdgpip.shards import SampleData, SDGPipShards, shard_path, write_shard
from m2pdance.training.sdgpip.targets import MAP_FIELDS
from m2pdance.training.stage2 import Stage2Module
from m2pdance.training.stage3 import Stage3Module
from m2pdance.training.datasets import SeededItems
from m2pdance.training.video_data import Stage2Pairs, Stage3Clips

from .test_stage2 import WIDTH, seeded_loss, tiny_parts

BUILD = "video-test"
S, D, C, G = 64, 35, WIDTH, 16          # frame side, feature width (baseline), stored guidance (tiny M2PEnc)
CLIPS = {"c0": [(0, 6), (6, 5)], "c1": [(0, 7)]}           # clip -> chunks (frame_start, frames)
MODEL = M2PEncConfig.preset("tiny", guidance_channels=WIDTH)


def _sample(clip: int, start: int, n: int, video: bool, guidance: bool) -> SampleData:
    rng = np.random.default_rng(100 * clip + start)
    frames = np.arange(start, start + n)
    fields = {"features": np.concatenate([np.stack([np.full(n, clip), frames], 1),
                                          rng.normal(size=(n, D - 2))], 1).astype(np.float32),
              "depth": rng.integers(0, 256, (n, S, S), dtype=np.uint8),
              **{m: rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8) for m in ("normal", "semantic", "skeleton")}}
    if video:
        fields["video"] = np.broadcast_to((20 + 8 * frames + 100 * clip).astype(np.uint8)[:, None, None, None],
                                          (n, S, S, 3)).copy()
    if guidance:
        fields["guidance"] = rng.normal(size=(n, C, G, G)).astype(np.float16)
    key = f"c{clip}_{start:03d}"
    meta = {"num_frames": n, "id": key, "clip": f"c{clip}", "frame_start": int(start), "source": "aist",
            "split": "train", "fps": 15.0, "feature_kind": "baseline", "size": S, "grid": S // 8}
    return SampleData(key=key, meta=meta, fields=fields)


def write_build(root: Path, video: bool = True, guidance: bool = False) -> Path:
    for shard, (name, chunks) in enumerate(CLIPS.items()):
        samples = [_sample(shard, start, n, video, guidance) for start, n in chunks]
        write_shard(shard_path(root, shard), samples, shard=shard, build_id=BUILD)
    (root / "index.json").write_text(json.dumps({"build_id": BUILD}))
    return root


def clip_arrays(root: Path, fields: tuple[str, ...]) -> list[dict[str, np.ndarray]]:
    """Per clip, the fields of its chunks read from the shards and concatenated (what a window must equal)."""
    data = SDGPipShards(root)
    out = []
    for name in CLIPS:
        parts = [data.read(i, list(fields)) for i, ref in enumerate(data.samples) if ref.meta["clip"] == name]
        out.append({f: np.concatenate([p[f] for p in parts]) for f in fields})
    return out


@pytest.fixture(scope="module")
def maps_build(tmp_path_factory) -> Path:
    return write_build(tmp_path_factory.mktemp("video_maps"))


@pytest.fixture(scope="module")
def guidance_build(tmp_path_factory) -> Path:
    return write_build(tmp_path_factory.mktemp("video_guidance"), guidance=True)


def _image(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).float() / 255


def test_stage2_pairs(maps_build: Path) -> None:
    ds = Stage2Pairs(maps_build, window_frames=4, seed=3, model=MODEL)
    clips = clip_arrays(maps_build, ("video",))
    assert len(ds) == 11 + 7
    for i in range(len(ds)):
        segment, target = ds.locate(i)
        item = ds[i]
        reference, frame = ds.reference_frame(i), int(item["frame"])
        n = len(clips[segment]["video"])
        assert reference != target and 0 <= reference < n
        assert torch.equal(item["target"], _image(clips[segment]["video"][target]))
        assert torch.equal(item["reference"], _image(clips[segment]["video"][reference]))
        assert not torch.equal(item["reference"], item["target"])
        features = item["features"]
        assert features.shape == (4, D) and item["frame"].dtype == torch.long
        assert torch.equal(features[:, 0], torch.full((4,), float(segment)))
        start = int(features[0, 1])
        assert torch.equal(features[:, 1], torch.arange(start, start + 4).float())      # consecutive, one clip
        assert int(features[frame, 1]) == target                                        # the target's row
        assert start == min(max(0, target - 2), n - 4) and frame == target - start      # centred, clamped
    again, other = Stage2Pairs(maps_build, 4, seed=3), Stage2Pairs(maps_build, 4, seed=4)
    refs = [ds.reference_frame(i) for i in range(len(ds))]
    assert refs == [again.reference_frame(i) for i in range(len(ds))]
    assert refs != [other.reference_frame(i) for i in range(len(ds))]
    assert all(torch.equal(a, b) for a, b in zip(ds[7].values(), again[7].values()))
    far = Stage2Pairs(maps_build, 4, seed=3, min_gap=5)
    for i in range(len(far)):
        segment, target = far.locate(i)
        n = len(clips[segment]["video"])
        possible = target >= 5 or target + 5 < n
        assert abs(far.reference_frame(i) - target) >= (5 if possible else 1)


def test_each_visit_of_an_item_draws_its_own_reference(maps_build: Path) -> None:
    """Training addresses items with the sample's seed: a new reference per visit, reproducible per seed."""
    pairs, clips = Stage2Pairs(maps_build, 4, seed=3), Stage3Clips(maps_build, 4, seed=3)
    for ds, item in ((pairs, 0), (clips, 1)):
        segment, first = ds.locate(item)
        draws = [ds.reference_frame(item, draw) for draw in range(40)]
        assert draws == [ds.reference_frame(item, draw) for draw in range(40)]
        assert len(set(draws)) >= 4                                  # the reference varies between visits
        keep_out = range(first, first + 1) if ds is pairs else range(first, first + 4)
        assert not set(draws) & set(keep_out)                        # never the target (stage 2) or in the clip
        seeded = SeededItems(ds)[(item, 17)]
        assert int(seeded["seed"]) == 17
        assert torch.equal(seeded["reference"], ds.seeded_item(item, 17)["reference"])
        segment_video = clip_arrays(maps_build, ("video",))[segment]["video"]
        assert torch.equal(seeded["reference"], _image(segment_video[ds.reference_frame(item, 17)]))


def test_stage3_clips_with_maps(maps_build: Path) -> None:
    ds = Stage3Clips(maps_build, num_frames=4, seed=0, model=MODEL)
    clips = clip_arrays(maps_build, ("video", *MAP_FIELDS))
    assert ds.needs_encoders and len(ds) == (11 - 4 + 1) + (7 - 4 + 1)
    for i in range(len(ds)):
        segment, start = ds.locate(i)
        item = ds[i]
        want = clips[segment]
        assert set(item) == {"reference", "frames", "features", "maps"}
        assert torch.equal(item["features"][:, 1], torch.arange(start, start + 4).float())    # consecutive frames
        assert torch.equal(item["frames"], torch.stack([_image(f) for f in want["video"][start:start + 4]]))
        maps = np.stack([want[name][start:start + 4] for name in MAP_FIELDS], axis=1)
        assert item["maps"].dtype == torch.uint8 and np.array_equal(item["maps"].numpy(), maps)
        reference = ds.reference_frame(i)
        assert not start <= reference < start + 4                          # outside the clip window
        assert torch.equal(item["reference"], _image(want["video"][reference]))
    # frames cross the chunk edge of clip c0 (chunks 0-5 and 6-10)
    assert torch.equal(ds[4]["features"][:, 1], torch.tensor([4.0, 5.0, 6.0, 7.0]))
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["frames"].shape == (2, 4, 3, S, S) and batch["maps"].shape == (2, 4, 4, S, S, 3)


def test_stage3_clips_with_stored_guidance_feed_the_modules(guidance_build: Path) -> None:
    ds = Stage3Clips(guidance_build, num_frames=4, model=MODEL)
    want = clip_arrays(guidance_build, ("guidance",))
    assert not ds.needs_encoders
    item = ds[5]
    segment, start = ds.locate(5)
    assert item["guidance"].dtype == torch.float32
    assert np.array_equal(item["guidance"].numpy(), want[segment]["guidance"][start:start + 4].astype(np.float32))

    champ, m2penc = tiny_parts()
    clips = next(iter(DataLoader(ds, batch_size=2)))
    with torch.no_grad():
        assert torch.isfinite(seeded_loss(Stage3Module(champ, m2penc), clips)["loss"])
        pairs = next(iter(DataLoader(Stage2Pairs(guidance_build, 8, model=MODEL), batch_size=2)))
        assert pairs["frame"].shape == (2,) and pairs["features"].shape == (2, 8, D)
        assert torch.isfinite(seeded_loss(Stage2Module(champ, m2penc), pairs)["loss"])


def test_stage2_pairs_serve_the_target_maps_for_champs_image_stage(guidance_build: Path) -> None:
    """``maps=True``: the target frame's four maps, even where the build also stores guidance."""
    ds = Stage2Pairs(guidance_build, window_frames=4, seed=3, maps=True)
    clips = clip_arrays(guidance_build, MAP_FIELDS)
    assert "maps" not in Stage2Pairs(guidance_build, 4)[0]
    for i in (0, 6, 12):
        segment, target = ds.locate(i)
        maps = ds[i]["maps"]
        assert maps.dtype == torch.uint8 and maps.shape == (4, S, S, 3)
        want = np.stack([clips[segment][name][target] for name in MAP_FIELDS])
        assert np.array_equal(maps.numpy(), np.broadcast_to(want.reshape(4, S, S, -1), (4, S, S, 3)))
    champ, _ = tiny_parts()
    batch = next(iter(DataLoader(ds, batch_size=2)))
    with torch.no_grad():
        module = Stage2Module(champ, None, guidance_encoders=champ.guidance_encoders)
        assert torch.isfinite(seeded_loss(module, batch)["loss"])


def test_refusals(tmp_path: Path, maps_build: Path) -> None:
    with pytest.raises(InputError, match="--source aist --video"):
        Stage2Pairs(write_build(tmp_path / "no_video", video=False), 4)
    with pytest.raises(InputError, match="does not fit the model"):
        Stage3Clips(maps_build, 4, model=M2PEncConfig.preset("tiny", guidance_channels=WIDTH, fps=30.0))
    with pytest.raises(InputError, match="has 12 frames"):
        Stage3Clips(maps_build, 12)
