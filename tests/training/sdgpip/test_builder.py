"""The SDGPip builder end to end on CPU: 20 s of generated music -> beat-choreographer dances -> shards
-> stage 1 with on-the-fly guidance; resuming, kill -9, torchrun workers, the AIST++ and EDGE sources."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from m2pdance.m2penc.audio.features import extract_music_features
from m2pdance.m2penc.audio.io import load_audio
from m2pdance.m2penc.body import make_body
from m2pdance.m2penc.champ.models import load_guidance_encoders
from m2pdance.m2penc.champ.pose_guidance import encode_with
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.render.camera import PinholeCamera
from m2pdance.m2penc.render.keypoints import keypoints_to_grid_heatmaps
from m2pdance.m2penc.render.pose_maps import render_pose_maps
from m2pdance.training.cli import main as train_main
from m2pdance.training.config import Stage1Config
from m2pdance.training.guidance_targets import MAP_ORDER, GuidanceTargets
from m2pdance.training.sdgpip.builder import BUILD_FILE, INDEX_FILE, BuildConfig, run_build
from m2pdance.training.sdgpip.shards import SDGPipShards
from m2pdance.training.sdgpip.sources import BeatsSource
from m2pdance.training.sdgpip.windows import SDGPipWindows
from m2pdance.training.stage1 import run_stage1

from .aist_files import write_aist_folder
from .music_files import click_track

SIZE = 128                       # grid 16 = the tiny M2PEnc preset's
TRACKS = {"a song.wav": 12.0, "b.wav": 8.0}  # 20 s of music, two shards of one track each
FIELDS = ("features", "keypoints", "depth", "normal", "semantic", "skeleton", "heatmaps")
CHAMP = Path("champ") / "m2pdance-tiny"
EDGE = Path("edge") / "m2pdance-tiny-edge.safetensors"


def _config(music: Path, out: Path, **changes) -> BuildConfig:
    base = BuildConfig(source="beats", data=str(music), out=str(out), size=SIZE, items_per_shard=1, device="cpu")
    return replace(base, **changes)


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir()) if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("music")
    click_track(folder / "a song.wav", TRACKS["a song.wav"], bpm=120)
    click_track(folder / "b.wav", TRACKS["b.wav"], bpm=96, pitch=660)
    return folder


@pytest.fixture(scope="module")
def built(music, tmp_path_factory) -> tuple[BuildConfig, dict]:
    config = _config(music, tmp_path_factory.mktemp("sdgpip") / "beats")
    return config, run_build(config, show_progress=False)


def test_every_frame_has_its_targets(built, music):
    config, summary = built
    data = SDGPipShards(config.out)
    assert summary["complete"] and summary["this_run"]["shards_built"] == 2
    assert sum(s.num_frames for s in data.samples) == 300 == summary["dataset"]["frames"]   # 20 s at 15 fps
    body = make_body("open")
    source = BeatsSource(music, fps=15.0)
    for number, ref in enumerate(data.samples):
        meta = ref.meta
        arrays = data.read(number, FIELDS, gray_as_rgb=False)
        track = music / meta["sequence"]
        # features: the rows of the whole track's features, as M2PEnc sees them at inference
        whole = extract_music_features(load_audio(track), "baseline", 15.0).features.numpy()
        assert arrays["features"].shape == (ref.num_frames, 35)
        np.testing.assert_allclose(arrays["features"], whole[:ref.num_frames], rtol=0, atol=1e-5)
        # maps and keypoints: the renderer's output for the clip's motion and the recorded camera
        clip = next(iter(source.clips(meta["sequence"])))
        cam = meta["camera"]
        camera = PinholeCamera(cam["width"], cam["height"], cam["fx"], cam["fy"], cam["cx"], cam["cy"],
                               torch.tensor(cam["rotation"]), torch.tensor(cam["translation"]))
        poses, trans = clip.motion.to_torch()
        maps = render_pose_maps(body, poses, trans, camera, SIZE, SIZE, as_uint8=True)
        assert np.array_equal(arrays["depth"], maps["depth"][..., 0].numpy())
        for name in ("normal", "semantic", "skeleton"):
            assert np.array_equal(arrays[name], maps[name].numpy()), name
        np.testing.assert_array_equal(arrays["keypoints"], maps["keypoints"].numpy())
        assert (arrays["depth"] > 0).mean() > 0.02                        # a dancer is in every frame ...
        assert ((arrays["depth"] > 0).reshape(ref.num_frames, -1).any(1)).all()
        # heatmaps: 64-level Gaussians at the keypoints on the size/8 grid, quantised to uint8
        heat = keypoints_to_grid_heatmaps(maps["keypoints"], SIZE, SIZE, SIZE // 8)
        assert np.abs(arrays["heatmaps"].astype(np.float32) / 255 - heat.numpy()).max() <= 0.5 / 255 + 1e-6
        assert meta["music_offset"] == 0 and meta["fps"] == 15.0 and meta["grid"] == SIZE // 8


def test_index_lists_every_sample(built):
    config, _ = built
    index = json.loads((Path(config.out) / INDEX_FILE).read_text())
    assert index["totals"]["frames"] == 300 and index["totals"]["frames_per_source"] == {"beats": 300}
    rows = {row["sequence"]: row for row in index["samples"]}
    assert set(rows) == set(TRACKS)
    assert rows["a song.wav"]["num_frames"] == 180 and rows["b.wav"]["num_frames"] == 120
    assert {(r["source"], r["split"], r["fps"], r["frame_start"]) for r in rows.values()} == {("beats", "train", 15.0, 0)}


def test_rerun_is_a_noop(built):
    config, _ = built
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in Path(config.out).rglob("*") if p.is_file()}
    summary = run_build(config, show_progress=False)
    assert summary["this_run"]["shards_built"] == 0 and summary["this_run"]["shards_skipped"] == 2
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in Path(config.out).rglob("*") if p.is_file()}
    shards = {p: v for p, v in before.items() if p.parent.name == "shards"}
    assert all(after[p] == v for p, v in shards.items()) and set(after) == set(before)


def test_another_build_in_the_same_folder_is_refused(built):
    config, _ = built
    with pytest.raises(InputError, match="fps"):
        run_build(replace(config, fps=30.0), show_progress=False)
    assert json.loads((Path(config.out) / BUILD_FILE).read_text())["settings"]["fps"] == 15.0


def test_bad_settings_are_refused_before_any_work(music, tmp_path):
    for changes, words in (({"source": "tiktok"}, "--source"), ({"size": 100}, "multiple of 8"),
                           ({"store": "guidance"}, "--guidance-encoders"), ({"video": True}, "--video"),
                           ({"features": "jukebox"}, "--jukebox"), ({"max_joint_speed": 40.0}, "max_joint_speed"),
                           ({"source": "edge", "max_joint_speed": 8.0}, "--max-joint-speed")):
        with pytest.raises(InputError, match=words):
            _config(music, tmp_path / "x", **changes)
    # the speed limit is part of a beats build's identity, and absent at its default (older builds keep their ids)
    assert "max_joint_speed" not in _config(music, tmp_path / "x").identity()
    assert _config(music, tmp_path / "x", max_joint_speed=8.0).identity()["max_joint_speed"] == 8.0
    assert _config(music, tmp_path / "x", max_joint_speed=8).identity() == \
        _config(music, tmp_path / "x", max_joint_speed=8.0).identity()          # one build, however it is written
    with pytest.raises(InputError, match="nope"):
        run_build(_config(tmp_path / "nope", tmp_path / "y"), show_progress=False)
    assert not (tmp_path / "y").exists()


def test_stage1_trains_on_the_shards_with_guidance_computed_on_the_fly(built, smoke_models, tmp_path):
    config, _ = built
    encoders = load_guidance_encoders(smoke_models / CHAMP)
    windows = SDGPipWindows(config.out, 16)
    assert windows.needs_encoders and len(windows) == (180 - 15) + (120 - 15)
    item = windows[0]
    data = SDGPipShards(config.out)
    raw = data.read(windows.locate(0)[0], ("depth", "normal", "semantic", "skeleton"), 0, 16)
    for k, name in enumerate(("depth", "normal", "semantic", "skeleton")):
        assert torch.equal(item["maps"][:, k], torch.from_numpy(raw[name]))
    # the on-the-fly target is exactly the sum of Champ's encoders over the frame's four maps
    targets = GuidanceTargets(encoders)
    got = targets(item["maps"][None])[0]                                            # (16, C, 16, 16)
    direct = encode_with(encoders, {t: item["maps"][:, k].permute(0, 3, 1, 2) for k, t in enumerate(MAP_ORDER)})
    torch.testing.assert_close(got, direct[0].transpose(0, 1), rtol=0, atol=0)
    assert got.shape == (16, 32, SIZE // 8, SIZE // 8) and got.abs().sum() > 0

    stage1 = Stage1Config.preset("smoke", data_dir=config.out, output_dir=str(tmp_path / "run"), sequence_length=16,
                                 steps=25, lr=3e-3, log_every=100, checkpoint_every=0,
                                 model_overrides={"guidance_channels": targets.channels})
    with pytest.raises(InputError, match="guidance.encoders"):
        run_stage1(stage1)
    result = run_stage1(replace(stage1, guidance_encoders=str(smoke_models / CHAMP)))
    assert result.steps == 25 and result.final_loss < 0.6 * result.first_loss
    assert result.weights_path.is_file()


def test_training_refuses_unfinished_builds_and_filters_samples(built, tmp_path):
    import shutil

    config, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(config.out, copy)
    (copy / INDEX_FILE).unlink()
    with pytest.raises(InputError, match="not finished"):
        SDGPipWindows(copy, 16)
    with pytest.raises(InputError, match="no samples"):
        SDGPipWindows(config.out, 16, splits=["val"])
    assert len(SDGPipWindows(config.out, 16, sources=["beats"], splits=["train"])) == (180 - 15) + (120 - 15)


def test_stored_guidance_mode_matches_the_on_the_fly_targets(music, smoke_models, tmp_path):
    config = _config(music, tmp_path / "stored", store="guidance", guidance_encoders=str(smoke_models / CHAMP),
                     size=64, chunk_frames=50)
    run_build(config, show_progress=False)
    data = SDGPipShards(config.out)
    assert [s.num_frames for s in data.samples] == [50, 50, 50, 30, 50, 50, 20]     # 180 and 120 frames, chunked
    assert [s.meta["frame_start"] for s in data.samples] == [0, 50, 100, 150, 0, 50, 100]
    windows = SDGPipWindows(config.out, 8)
    assert windows.stored_guidance and not windows.needs_encoders
    assert len(windows) == (180 - 7) + (120 - 7)                     # chunks of a clip are joined again
    crossing = windows[46]                                             # frames 46..53 of the first clip
    first, second = data.read(0, ("features", "heatmaps"), 46, 50), data.read(1, ("features", "heatmaps"), 0, 4)
    assert torch.equal(crossing["features"], torch.from_numpy(np.concatenate([first["features"], second["features"]])))
    assert torch.equal(crossing["heatmaps"], torch.from_numpy(
        np.concatenate([first["heatmaps"], second["heatmaps"]])).float() / 255)
    raw = data.read(3, ("guidance", "depth", "normal", "semantic", "skeleton"), 0, 8)
    maps = torch.from_numpy(np.stack([raw[n] for n in ("depth", "normal", "semantic", "skeleton")], 1))[None]
    expected = GuidanceTargets(load_guidance_encoders(smoke_models / CHAMP))(maps)[0]
    torch.testing.assert_close(torch.from_numpy(raw["guidance"]).float(), expected, rtol=2e-3, atol=2e-3)


def _cli(*args: str, env: dict | None = None, launcher: list[str] | None = None) -> subprocess.Popen:
    command = [*(launcher or [sys.executable]), "-m", "m2pdance.training", "sdgpip", *args, "--no-progress"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _args(config: BuildConfig, out: Path) -> list[str]:
    return ["--source", config.source, "--data", config.data, "--out", str(out), "--size", str(config.size),
            "--items-per-shard", str(config.items_per_shard), "--device", "cpu"]


def test_kill_9_mid_shard_then_rerun_is_byte_identical(built, tmp_path):
    config, _ = built
    out = tmp_path / "killed"
    process = _cli(*_args(config, out))
    deadline = time.monotonic() + 120
    partial = []
    while time.monotonic() < deadline and process.poll() is None and not partial:   # kill while members are written
        found = list((out / "shards").glob(".shard-*.tar.*.partial")) if (out / "shards").is_dir() else []
        partial = [p for p in found if p.exists() and p.stat().st_size > 100_000]
        time.sleep(0.002)
    assert partial, "the build finished or failed before a shard was half written: " + process.communicate()[1][-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = partial[0].name.split(".")[1]                            # shard-00000N
    assert not (out / "shards" / f"{killed}.tar").exists()            # never a truncated shard
    rerun = _cli(*_args(config, out))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-3000:]
    assert "dataset: 2 shard(s)" in stdout
    assert _files(out) == _files(Path(config.out))                     # byte for byte
    assert not list((out / "shards").glob(".*partial"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_workers_build_the_same_shards_as_one(built, tmp_path):
    config, _ = built
    out = tmp_path / "two"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    process = _cli(*_args(config, out), launcher=launcher, env={"OMP_NUM_THREADS": "1"})
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert "2 worker(s)" in stdout and "dataset: 2 shard(s)" in stdout
    assert _files(out) == _files(Path(config.out))
    assert (out / INDEX_FILE).read_bytes() == (Path(config.out) / INDEX_FILE).read_bytes()


def test_aist_source_with_cropped_video(tmp_path):
    root = write_aist_folder(tmp_path / "aist")
    config = BuildConfig(source="aist", data=str(root), out=str(tmp_path / "out"), size=64, video=True,
                         device="cpu", chunk_frames=8)
    summary = run_build(config, show_progress=False)
    data = SDGPipShards(config.out)
    assert summary["complete"] and {s.meta["sequence"] for s in data.samples} == {
        "gBR_sBM_cAll_d04_mBR0_ch01", "gHO_sBM_cAll_d19_mHO5_ch03"}               # the ignored one is left out
    for number, ref in enumerate(data.samples):
        arrays = data.read(number, ("video", "depth"), gray_as_rgb=False)
        assert arrays["video"].shape == (ref.num_frames, 64, 64, 3) and ref.meta["camera"]["width"] == 64
        # the generated video paints a bright box over the dancer's joints: the rendered body is inside it
        body = arrays["depth"] > 0
        bright = arrays["video"].mean(-1) > 60
        assert body.any() and (bright[body]).mean() > 0.8


def test_edge_source_makes_seeded_five_second_slices(smoke_models, tmp_path):
    folder = tmp_path / "music"
    click_track(folder / "song.wav", 12.0)
    config = BuildConfig(source="edge", data=str(folder), out=str(tmp_path / "out"), size=64, device="cpu",
                         edge_checkpoint=str(smoke_models / EDGE))
    run_build(config, show_progress=False)
    data = SDGPipShards(config.out)
    assert [(s.num_frames, s.meta["music_offset"], s.meta["info"]["slice"]) for s in data.samples] == [
        (75, 0.0, 0), (75, 5.0, 1)]
    assert len({s.meta["seed"] for s in data.samples}) == 2
    whole = extract_music_features(load_audio(folder / "song.wav"), "baseline", 15.0).features.numpy()
    second = data.read(1, ("features",))["features"]
    np.testing.assert_allclose(second, whole[75:150], rtol=0, atol=1e-5)


def test_cli_reports_and_fails_clearly(music, tmp_path, capsys):
    assert train_main(["sdgpip", "--source", "beats", "--data", str(tmp_path / "missing"), "--out",
                       str(tmp_path / "o"), "--no-progress"]) == 1
    assert "missing" in capsys.readouterr().err
    assert train_main(["sdgpip", "--source", "edge", "--data", str(music), "--out", str(tmp_path / "o"),
                       "--edge-checkpoint", str(tmp_path / "none.safetensors"), "--no-progress"]) == 1
    assert "none.safetensors" in capsys.readouterr().err
