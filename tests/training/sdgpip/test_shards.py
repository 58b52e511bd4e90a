"""SDGPip shards: round trips of every codec, byte-identical rebuilds, webdataset layout, streaming,
hostile files and crashes (tiny samples: N=5, 16 x 16 images, K=3 heatmaps on an 8 x 8 grid)."""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from m2pdance.m2penc.errors import InputError
from m2pdance.training.sdgpip import shards as shards_module
from m2pdance.training.sdgpip.shards import (FIELDS, KEY_MAX_LENGTH, KEY_PATTERN, SampleData, SDGPipShards,
                                             canonical_json, finished_shards, frame_member, read_shard_index,
                                             remove_stale_partials, sample_member, shard_path, stale_partials,
                                             write_shard)

N, H, W, K, G, C = 5, 16, 16, 3, 8, 4
BUILD = "build-test-1"


def make_sample(key: str, seed: int, *, source: str = "aist", split: str = "train", n: int = N) -> SampleData:
    """Random arrays for every field of the codec table; the video is smooth so JPEG stays close."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    video = np.stack([np.stack([x * 6 + y * 3 + 40 * c + 7 * f for c in range(3)], -1) for f in range(n)])
    fields = {
        "features": rng.normal(size=(n, 6)).astype(np.float32),
        "keypoints": rng.normal(size=(n, 18, 3)).astype(np.float32),
        "depth": rng.integers(0, 256, (n, H, W), dtype=np.uint8),
        "normal": rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8),
        "semantic": rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8),
        "skeleton": rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8),
        "heatmaps": rng.integers(0, 256, (n, K, G, G), dtype=np.uint8),
        "video": np.clip(video + 20 * seed, 0, 255).astype(np.uint8),
        "guidance": rng.normal(size=(n, C, G, G)).astype(np.float16),
    }
    meta = {"num_frames": n, "id": key, "source": source, "split": split, "fps": 30.0, "seed": seed}
    return SampleData(key=key, meta=meta, fields=fields)


def write_fixed_shard(folder: Path) -> Path:
    """The shard the determinism test writes in this process and in a fresh one."""
    samples = (make_sample(f"clip_{i:03d}", seed=i) for i in range(2))
    return write_shard(shard_path(folder, 0), samples, shard=0, build_id=BUILD).tar_path


def build(root: Path, layout: dict[int, list[SampleData]]) -> None:
    for shard, samples in layout.items():
        write_shard(shard_path(root, shard), samples, shard=shard, build_id=BUILD)


def expected(sample: SampleData, name: str, start: int = 0, stop: int = N) -> np.ndarray:
    ref = sample.fields[name][start:stop]
    return np.repeat(ref[..., None], 3, axis=-1) if name == "depth" else ref


def assert_same(sample: SampleData, arrays: dict[str, np.ndarray], start: int = 0, stop: int = N) -> None:
    for name, got in arrays.items():
        want = expected(sample, name, start, stop)
        assert got.shape == want.shape and got.dtype == want.dtype, name
        if name == "video":
            assert np.abs(got.astype(np.int32) - want).mean() < 3, name
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.fixture
def one_shard(tmp_path) -> tuple[Path, list[SampleData]]:
    samples = [make_sample("clip_a", 1), make_sample("clip_b", 2, split="test")]
    build(tmp_path, {0: samples})
    return tmp_path, samples


# ----- round trip ---------------------------------------------------------------------------

def test_round_trip_every_field(tmp_path):
    samples = [make_sample("clip_a", 1), make_sample("clip_b", 2, split="test")]
    seen = []
    index = write_shard(shard_path(tmp_path, 0), iter(samples), shard=0, build_id=BUILD, on_sample=seen.append)
    assert [s.key for s in seen] == ["clip_a", "clip_b"]
    assert read_shard_index(index.json_path) == index
    ds = SDGPipShards(tmp_path)
    assert len(ds) == 2
    assert [(r.shard, r.key, r.num_frames, r.meta["split"]) for r in ds.samples] == [
        (0, "clip_a", N, "train"), (0, "clip_b", N, "test")]
    for i, sample in enumerate(samples):
        full = ds.read(i, list(FIELDS))
        assert_same(sample, full)
        assert full["depth"].shape == (N, H, W, 3)
        assert (full["depth"][..., 0] == full["depth"][..., 2]).all()
        assert full["heatmaps"].shape == (N, K, G, G) and full["guidance"].dtype == np.float16
        window = ds.read(i, ["features", "depth", "heatmaps", "guidance", "video"], start=1, stop=4)
        assert_same(sample, window, 1, 4)
    gray = ds.read(0, "depth", 2, 3, gray_as_rgb=False)["depth"]
    np.testing.assert_array_equal(gray, samples[0].fields["depth"][2:3])
    with pytest.raises(InputError, match="frames"):
        ds.read(0, ["depth"], 3, 3)
    with pytest.raises(InputError, match="codec table"):
        ds.read(0, ["colour"])


def test_samples_with_different_fields_and_filters(tmp_path):
    full, small = make_sample("full", 1, source="aist"), make_sample("small", 2, source="edge", split="val")
    small = SampleData(small.key, small.meta, {k: small.fields[k] for k in ("features", "skeleton")})
    build(tmp_path, {0: [full], 3: [small]})
    ds = SDGPipShards(tmp_path, sources=["edge"])
    assert [(r.shard, r.key) for r in ds.samples] == [(3, "small")]
    assert_same(small, ds.read(0, ["skeleton", "features"]))
    with pytest.raises(InputError, match="has no fields"):
        ds.read(0, ["depth"])
    assert [r.key for r in SDGPipShards(tmp_path, splits=["train"]).samples] == ["full"]
    with pytest.raises(InputError, match="match sources"):
        SDGPipShards(tmp_path, sources=["aist"], splits=["val"])


def test_pickles_into_workers(one_shard):
    root, samples = one_shard
    ds = SDGPipShards(root)
    ds.read(0, ["features"])                     # a handle is open now
    clone = pickle.loads(pickle.dumps(ds))
    assert_same(samples[1], clone.read(1, ["depth", "features"]))
    ds.close()


# ----- determinism and layout ---------------------------------------------------------------

def test_byte_identical_in_any_process(tmp_path):
    first, second = write_fixed_shard(tmp_path / "a"), write_fixed_shard(tmp_path / "b")
    script = ("import importlib.util, sys\nfrom pathlib import Path\n"
              "spec = importlib.util.spec_from_file_location('shard_test_copy', sys.argv[1])\n"
              "module = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(module)\n"
              "module.write_fixed_shard(Path(sys.argv[2]))\n")
    subprocess.run([sys.executable, "-c", script, __file__, str(tmp_path / "c")], check=True, timeout=120)
    third = shard_path(tmp_path / "c", 0)
    for other in (second, third):
        assert other.read_bytes() == first.read_bytes()
        assert other.with_suffix(".json").read_bytes() == first.with_suffix(".json").read_bytes()


def test_webdataset_layout(one_shard):
    root, samples = one_shard
    tar_path = shard_path(root, 0)
    index = read_shard_index(tar_path.with_suffix(".json"))
    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
    want = []
    for s in samples:
        want += [f"{s.key}.json"] + [sample_member(s.key, f) for f in ("features", "keypoints")]
        want += [frame_member(s.key, f, name) for f in range(N)
                 for name in ("depth", "normal", "semantic", "skeleton", "heatmaps", "video", "guidance")]
    assert [m.name for m in members] == want
    assert all(m.isreg() and m.mtime == 0 and m.uid == m.gid == 0 and m.uname == m.gname == ""
               and m.mode == 0o644 for m in members)
    assert tar_path.read_bytes()[257:265] == b"ustar\x0000"          # POSIX USTAR magic + version
    groups = [m.name.split(".", 1)[0] for m in members]                # webdataset's grouping
    assert [g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]] == ["clip_a", "clip_b"]
    by_name = {m.name: (m.offset_data, m.size) for m in members}
    for entry in index.samples:
        assert entry.members["features"] == (by_name[f"{entry.key}.features.npy"],)
        assert entry.members["depth"] == tuple(by_name[frame_member(entry.key, f, "depth")] for f in range(N))
    with tarfile.open(tar_path) as tar:                                 # plain np.load reads the members
        features = np.load(io.BytesIO(tar.extractfile("clip_a.features.npy").read()), allow_pickle=False)
        meta = json.loads(tar.extractfile("clip_a.json").read())
    np.testing.assert_array_equal(features, samples[0].fields["features"])
    assert meta == samples[0].meta and index.tar_bytes == tar_path.stat().st_size


# ----- streaming ----------------------------------------------------------------------------

def test_stream_matches_random_access_and_shuffles_by_seed(tmp_path):
    layout = {s: [make_sample(f"s{s}_{i}", 10 * s + i, n=3, split="val" if (s, i) == (3, 1) else "train")
                  for i in range(2 if s % 2 else 1)] for s in range(5)}           # 7 samples in 5 shards
    build(tmp_path, layout)
    ds = SDGPipShards(tmp_path)
    by_key = {s.key: s for samples in layout.values() for s in samples}
    fields = ["depth", "features", "heatmaps", "guidance", "video"]
    streamed = list(ds.stream(fields))
    assert [ref.key for ref, _ in streamed] == [r.key for r in ds.samples]
    for i, (ref, arrays) in enumerate(streamed):
        assert sorted(arrays) == sorted(fields)
        assert_same(by_key[ref.key], arrays, 0, 3)
        for name, array in ds.read(i, fields).items():
            np.testing.assert_array_equal(arrays[name], array)

    def shard_order(**kwargs) -> list[int]:
        return list(dict.fromkeys(ref.shard for ref, _ in ds.stream(["features"], **kwargs)))

    assert shard_order() == [0, 1, 2, 3, 4]
    assert shard_order(seed=1) == shard_order(seed=1)
    assert sorted(shard_order(seed=1)) == [0, 1, 2, 3, 4]
    assert len({tuple(shard_order(seed=s)) for s in range(4)}) > 1
    parts = [shard_order(shard_ids=sorted(ds.shards)[r::2], seed=7) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == [0, 1, 2, 3, 4] and set(parts[0]).isdisjoint(parts[1])
    filtered = SDGPipShards(tmp_path, sources=["aist"], splits=["train"])
    assert [ref.key for ref, _ in filtered.stream("features")] == ["s0_0", "s1_0", "s1_1", "s2_0", "s3_0", "s4_0"]
    with pytest.raises(InputError, match="not shards"):
        list(ds.stream(["features"], shard_ids=[9]))


# ----- hostile files ------------------------------------------------------------------------

def patch_bytes(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def edit_index(root: Path, change) -> Path:
    path = shard_path(root, 0).with_suffix(".json")
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


def test_truncated_tar_names_both_files(one_shard):
    root, _ = one_shard
    tar_path = shard_path(root, 0)
    with open(tar_path, "r+b") as f:
        f.truncate(tar_path.stat().st_size - 4096)
    assert finished_shards(root) == {}
    with pytest.raises(InputError, match="rebuild this shard") as e:
        SDGPipShards(root)
    assert "shard-000000.tar" in str(e.value) and "shard-000000.json" in str(e.value)
    tar_path.unlink()
    with pytest.raises(InputError, match="is missing"):
        SDGPipShards(root)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["samples"][0]["members"]["depth"].__setitem__(1, [d["tar_bytes"] + 512, 10]), "inside the"),
    (lambda d: d["samples"][0]["meta"].__setitem__("num_frames", "5"), "num_frames"),
    (lambda d: d.__setitem__("tar_bytes", "81920"), "tar_bytes"),
    (lambda d: d.__setitem__("samples", {"clip_a": 1}), "'samples' must be a list"),
    (lambda d: d["samples"][1]["arrays"]["guidance"].__setitem__("shape", [5, 4, 8, 9]), "guidance"),
    (lambda d: d["samples"][1]["arrays"]["features"].__setitem__("dtype", "object"), "features"),
    (lambda d: d.__setitem__("tar_name", "../../etc/passwd"), "tar_name"),
    # member spans: N frames sharing one small PNG, frames out of order, fields out of order, samples swapped
    (lambda d: d["samples"][0]["members"].__setitem__("depth", [d["samples"][0]["members"]["depth"][0]] * N),
     "clip_a.00001.depth.png .*overlaps or precedes member clip_a.00000.guidance.npy"),
    (lambda d: d["samples"][1]["members"]["video"].reverse(), "clip_b.00000.guidance.npy .*overlaps or precedes "
     "member clip_b.00000.video.jpg"),
    (lambda d: d["samples"][0]["members"].__setitem__("features", d["samples"][0]["members"]["keypoints"]),
     "clip_a.keypoints.npy .*overlaps or precedes member clip_a.features.npy"),
    (lambda d: d["samples"][1]["members"]["guidance"].__setitem__(4, d["samples"][0]["members"]["guidance"][4]),
     "clip_b.00004.guidance.npy .*overlaps or precedes"),
    (lambda d: d["samples"].reverse(), r"samples\[1\]: member clip_a.features.npy .*earlier sample"),
    (lambda d: d["samples"][0]["members"]["features"][0].__setitem__(0, 512),
     "clip_a.features.npy has its data at byte 512, which overlaps or precedes member clip_a.json"),
])
def test_hostile_index_is_refused(one_shard, change, message):
    root, _ = one_shard
    json_path = edit_index(root, change)
    with pytest.raises(InputError, match=message) as e:
        read_shard_index(json_path)
    assert str(json_path) in str(e.value)
    with pytest.raises(InputError):
        SDGPipShards(root)
    assert finished_shards(root) == {}


def test_non_json_index(one_shard):
    root, _ = one_shard
    shard_path(root, 0).with_suffix(".json").write_bytes(b"\x00garbage{")
    with pytest.raises(InputError, match="not readable JSON.*rebuild this shard"):
        SDGPipShards(root)


def test_non_png_member_is_refused(one_shard):
    root, samples = one_shard
    index = read_shard_index(shard_path(root, 0).with_suffix(".json"))
    offset, size = index.samples[1].members["depth"][2]
    patch_bytes(index.tar_path, offset, b"GIF89a" + b"\x00" * (size - 6))
    ds = SDGPipShards(root)
    assert_same(samples[1], ds.read(1, ["depth"], 0, 2), 0, 2)        # other frames still read
    with pytest.raises(InputError, match="clip_b.00002.depth.png.*PNG") as e:
        ds.read(1, ["depth"])
    assert str(index.tar_path) in str(e.value)
    with pytest.raises(InputError, match="clip_b.00002.depth.png"):
        list(ds.stream(["depth"]))
    # a valid PNG of the wrong size is refused as well
    buf = io.BytesIO()
    from PIL import Image
    Image.new("L", (4, 4)).save(buf, format="PNG")
    patch_bytes(index.tar_path, offset, buf.getvalue())
    with pytest.raises(InputError, match="expected a 16x16 L PNG"):
        ds.read(1, ["depth"], 2, 3)


@pytest.mark.parametrize("name, frame", [("features", None), ("guidance", 3)])
def test_pickled_npy_is_refused(one_shard, name, frame):
    root, _ = one_shard
    index = read_shard_index(shard_path(root, 0).with_suffix(".json"))
    offset, size = index.samples[0].members[name][0 if frame is None else frame]
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}] * 40, dtype=object), allow_pickle=True)
    patch_bytes(index.tar_path, offset, buf.getvalue()[:size])
    ds = SDGPipShards(root)
    with pytest.raises(InputError, match="Python objects") as e:
        ds.read(0, [name])
    assert str(index.tar_path) in str(e.value)
    with pytest.raises(InputError, match="Python objects"):
        list(ds.stream([name]))


def test_swapped_members_are_refused_when_streaming(one_shard):
    root, _ = one_shard

    def swap_keys(doc: dict) -> None:            # spans still in order: only the tar's member names tell
        first, second = doc["samples"]
        first["key"], second["key"] = second["key"], first["key"]

    edit_index(root, swap_keys)
    with pytest.raises(InputError, match="expected member 'clip_b.json', found 'clip_a.json'"):
        list(SDGPipShards(root).stream(["features"]))


def test_member_spans_may_touch_but_not_overlap(one_shard):
    """The writer's own layout passes the span check exactly: every member right after the previous one."""
    root, _ = one_shard
    index = read_shard_index(shard_path(root, 0).with_suffix(".json"))
    spans = sorted(span for s in index.samples for ms in s.members.values() for span in ms)
    gaps = [b[0] - (-(-(a[0] + a[1]) // 512) * 512) for a, b in zip(spans, spans[1:])]
    assert min(gaps) == 512                                           # one header block, no slack


# ----- non-regular files: FIFOs and symlinks ------------------------------------------------

def finishes(call: Callable[[], Any], fifos: list[Path], seconds: float = 20.0) -> Any:
    """``call()``'s result or exception, failing the test (not hanging it) if it blocks on one of ``fifos``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as e:          # noqa: BLE001 - handed back to the test
            outcome["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():                   # unblock the reader (a writer opens and closes the FIFO), then fail
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        worker.join(5)
        pytest.fail(f"blocked for {seconds} s on a FIFO among {[f.name for f in fifos]}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")


@needs_fifo
def test_fifo_sidecar_is_refused_without_blocking(one_shard):
    root, _ = one_shard
    json_path = shard_path(root, 0).with_suffix(".json")
    json_path.unlink()
    os.mkfifo(json_path)
    assert finishes(lambda: finished_shards(root), [json_path]) == {}
    with pytest.raises(InputError, match="FIFO.*not a regular file") as e:
        finishes(lambda: SDGPipShards(root), [json_path])
    assert str(json_path) in str(e.value) and "rebuild this shard" in str(e.value)


@needs_fifo
def test_fifo_tar_is_refused_without_blocking(one_shard):
    root, _ = one_shard
    tar_path = shard_path(root, 0)
    tar_path.unlink()
    os.mkfifo(tar_path)
    with pytest.raises(InputError, match="FIFO.*not a regular file") as e:
        finishes(lambda: SDGPipShards(root), [tar_path])
    assert str(tar_path) in str(e.value)
    # a sidecar recording an empty tar (a FIFO's size is 0) must not make the hash check read the FIFO
    edit_index(root, lambda d: d.update(samples=[], tar_bytes=0))
    assert finishes(lambda: finished_shards(root, verify_sha256=True), [tar_path]) == {}


@pytest.mark.parametrize("which", ["json", "tar"])
def test_symlinked_sidecar_or_tar_is_refused(one_shard, tmp_path_factory, which):
    root, _ = one_shard
    path = shard_path(root, 0).with_suffix(f".{which}")
    outside = tmp_path_factory.mktemp("outside") / path.name
    shutil.move(path, outside)
    os.symlink(outside, path)                           # the same bytes, but outside the dataset folder
    assert finished_shards(root) == {} and finished_shards(root, verify_sha256=True) == {}
    with pytest.raises(InputError, match="symbolic link, not a regular file") as e:
        SDGPipShards(root)
    assert str(path) in str(e.value)


def test_a_folder_named_like_a_sidecar_is_refused(one_shard):
    root, _ = one_shard
    json_path = shard_path(root, 0).with_suffix(".json")
    json_path.unlink()
    json_path.mkdir()
    assert finished_shards(root) == {}
    with pytest.raises(InputError, match="a folder, not a regular file"):
        SDGPipShards(root)


@needs_fifo
def test_fifo_swapped_in_after_the_check_does_not_block(one_shard):
    """The open itself refuses a non-regular file (O_NONBLOCK + fstat), not only the lstat check before it."""
    root, _ = one_shard
    ds = SDGPipShards(root)
    tar_path = shard_path(root, 0)
    tar_path.unlink()
    os.mkfifo(tar_path)
    with pytest.raises(InputError, match="FIFO.*not a regular file"):
        finishes(lambda: ds.read(0, ["features"]), [tar_path])
    with pytest.raises(InputError, match="cannot open it"):
        finishes(lambda: list(ds.stream(["features"])), [tar_path])


# ----- shared names -------------------------------------------------------------------------

def test_canonical_json_and_key_rules():
    assert canonical_json({"b": [1, 2.5], "a": {"z": None, "y": "\u00e9"}}) == \
        rb'{"a":{"y":"\u00e9","z":null},"b":[1,2.5]}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    assert KEY_MAX_LENGTH == 80 and KEY_PATTERN.fullmatch("a" * 80) and not KEY_PATTERN.fullmatch("a" * 81)
    assert not hasattr(shards_module, "_is_int") and not hasattr(shards_module, "_sha256")


# ----- writing errors and crashes -----------------------------------------------------------

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _with(sample: SampleData, **fields) -> SampleData:
    return SampleData(sample.key, sample.meta, {**sample.fields, **fields})


@pytest.mark.parametrize("bad, message", [
    (SampleData("clip.a", {"num_frames": N}, {"features": np.zeros((N, 2), np.float32)}), "no dots"),
    (SampleData("x" * 81, {"num_frames": N}, {"features": np.zeros((N, 2), np.float32)}), "1-80 characters"),
    (_with(make_sample("clip_b", 2), depth=np.zeros((N, H, W), np.float32)), "depth.*uint8"),
    (_with(make_sample("clip_b", 2), features=np.zeros((N + 1, 6), np.float32)), "6 frames but.*5"),
    (_with(make_sample("clip_b", 2), heatmaps=np.zeros((N, K, G, G + 1), np.uint8)), "square"),
    (_with(make_sample("clip_b", 2), guidance=np.full((N, C, G, G), np.nan, np.float16)), "NaN"),
    (_with(make_sample("clip_b", 2), colour=np.zeros((N, H, W, 3), np.uint8)), "unknown fields"),
    (SampleData("clip_b", {"num_frames": 0}, {"features": np.zeros((0, 2), np.float32)}), "num_frames"),
    (SampleData("clip_b", {"num_frames": N, "t": {1, 2}}, {"features": np.zeros((N, 2), np.float32)}), "JSON"),
    (make_sample("clip_a", 3), "appears twice"),
])
def test_invalid_sample_leaves_nothing(tmp_path, bad, message):
    folder = shard_path(tmp_path, 0).parent
    with pytest.raises(InputError, match=message) as e:
        write_shard(shard_path(tmp_path, 0), [make_sample("clip_a", 1), bad], shard=0, build_id=BUILD)
    assert "shard-000000.tar" in str(e.value)
    assert leftovers(folder) == []


def test_shard_name_must_match_number(tmp_path):
    with pytest.raises(InputError, match="shard-000002.tar"):
        write_shard(tmp_path / "shards" / "shard-000001.tar", [make_sample("a", 1)], shard=2, build_id=BUILD)


def test_crash_mid_shard_leaves_no_shard(one_shard):
    root, samples = one_shard
    assert list(finished_shards(root)) == [0]

    def crashing():
        yield samples[0]
        raise RuntimeError("renderer died")

    with pytest.raises(RuntimeError, match="renderer died"):
        write_shard(shard_path(root, 1), crashing(), shard=1, build_id=BUILD)
    assert leftovers(root / "shards") == ["shard-000000.json", "shard-000000.tar"]
    # rebuilding a finished shard that crashes: the old index goes first, so it no longer counts
    with pytest.raises(RuntimeError):
        write_shard(shard_path(root, 0), crashing(), shard=0, build_id=BUILD)
    assert finished_shards(root) == {}
    with pytest.raises(InputError, match="interrupted"):
        SDGPipShards(root)


def test_stale_partials_are_removed(one_shard):
    root, _ = one_shard
    folder = root / "shards"
    stale = [folder / ".shard-000001.tar.k3j2h1.partial", folder / ".shard-000001.json.abc.partial"]
    other = folder / ".shard-000002.tar.zzz.partial"
    for p in stale + [other]:
        p.write_bytes(b"half a shard")
    assert stale_partials(shard_path(root, 1)) == sorted(stale)
    assert remove_stale_partials(shard_path(root, 1)) == sorted(stale)
    assert not any(p.exists() for p in stale) and other.exists()
    assert list(finished_shards(root)) == [0]


def test_finished_shards_and_missing_dataset(tmp_path):
    with pytest.raises(InputError, match="m2pdance-train sdgpip .* --out DIR"):
        SDGPipShards(tmp_path / "nowhere")
    with pytest.raises(InputError, match="m2pdance-train sdgpip .* --out DIR"):
        SDGPipShards(tmp_path)
    assert finished_shards(tmp_path) == {}
    build(tmp_path, {0: [make_sample("a", 1)], 1: [make_sample("b", 2)]})
    write_shard(shard_path(tmp_path, 2), [make_sample("c", 3)], shard=2, build_id="other-build")
    assert list(finished_shards(tmp_path, build_id=BUILD)) == [0, 1]
    assert list(finished_shards(tmp_path, verify_sha256=True)) == [0, 1, 2]
    with pytest.raises(InputError, match="other-build"):
        SDGPipShards(tmp_path)
    patch_bytes(shard_path(tmp_path, 1), 600, b"\xff")                 # same size, other bytes
    assert list(finished_shards(tmp_path, verify_sha256=True)) == [0, 2]
