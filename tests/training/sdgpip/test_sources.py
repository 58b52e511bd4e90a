"""The SDGPip motion sources: AIST++ clips on the generated folder, beat-choreographer and EDGE clips on tiny wavs."""
from __future__ import annotations

import inspect
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from m2pdance.m2penc.audio.edge_slices import EDGEWindows
from m2pdance.m2penc.body.skeleton import forward_kinematics
from m2pdance.m2penc.errors import InputError
from m2pdance.training.sdgpip import shards, sources
from m2pdance.training.sdgpip.aist import AISTDataset
from m2pdance.training.sdgpip.sources import (
    EDGE_JUKEBOX_LAYER, KEY_PATTERN, AISTSource, BeatsSource, EDGESource, clip_seed, make_source, music_key,
)

from .aist_files import A, C, FRAMES, MUSIC_RATE, write_aist_folder
from .music_files import SR, click_track as _clicks

EDGE_FILE = Path("edge") / "m2pdance-tiny-edge.safetensors"


@pytest.fixture(scope="module")
def aist_root(tmp_path_factory) -> Path:
    return write_aist_folder(tmp_path_factory.mktemp("aist"))


@pytest.fixture(scope="module")
def beats_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("beats")
    _clicks(folder / "b song.wav", 3.0)
    _clicks(folder / "sub" / "a.wav", 2.0, bpm=100, pitch=660)
    (folder / "notes.txt").write_text("not music")
    _clicks(folder / ".hidden.wav", 1.0)
    _clicks(folder / ".cache" / "c.wav", 1.0)
    return folder


@pytest.fixture(scope="module")
def edge_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("edge_music")
    _clicks(folder / "long.wav", 12.0)
    _clicks(folder / "short.wav", 3.0)
    return folder


# -- AIST++ -----------------------------------------------------------------------------------------

def test_aist_clips_keys_frames_and_camera(aist_root):
    source = make_source("aist", aist_root, fps=15.0, size=64)
    assert isinstance(source, AISTSource) and source.items() == [A, C]
    dataset = AISTDataset(aist_root, "train")
    for item in source.items():
        (clip,) = list(source.clips(item))
        assert clip.key == f"aist-{item}" and KEY_PATTERN.fullmatch(clip.key)
        assert (clip.source, clip.split, clip.sequence, clip.music_offset, clip.seed) == ("aist", "train", item, 0.0, 0)
        assert clip.video is None and clip.start_bpm == dataset.sequence(item).start_bpm
        # 16 frames at 60 fps -> 4 at 15 fps (0.5 s of music covers 7 frames: the motion is shorter)
        assert clip.motion.num_frames == (FRAMES - 1) // 4 + 1 == 4 and clip.motion.fps == 15.0
        assert clip.motion.up_axis == "y" and clip.music["sample_rate"] == MUSIC_RATE
        np.testing.assert_allclose(clip.motion.trans, dataset.motion(item).trans[::4], atol=1e-6)
        # the unscaled motion through the clip camera lands where AIST++ projects the joints, in the crop
        cam, box = clip.camera, dataset.dancer_crop(item)
        assert (cam.width, cam.height) == (64, 64) and clip.meta["crop"] == [box.left, box.top, box.side]
        poses, trans = clip.motion.to_torch(dtype=torch.float64)
        ours = cam.to_screen(forward_kinematics(poses, trans)[0])[..., :2].double()
        theirs = dataset.projected_joints(item)[::4, :, :2].double()
        expected = (theirs - torch.tensor([box.left, box.top], dtype=torch.float64)) * 64 / box.side
        torch.testing.assert_close(ours, expected, atol=1e-3, rtol=0)
        assert clip.meta["smpl_scaling"] == dataset.scaling(item) and clip.meta["music_id"] in ("mBR0", "mHO5")
    facts = source.describe()
    assert (facts["source"], facts["split"], facts["fps"], facts["size"], facts["sequences"]) == \
        ("aist", "train", 15.0, 64, 2)


def test_aist_video_frames_align_with_the_camera(aist_root):
    source = make_source("aist", aist_root, fps=15.0, size=32, video=True)
    (clip,) = list(source.clips(A))
    frames = list(clip.video())
    assert len(frames) == clip.motion.num_frames == 4
    assert all(f.shape == (32, 32, 3) and f.dtype == np.uint8 for f in frames)
    # the box's grey, 100 + 9 * source frame: the median inside the box (bicubic resizing overshoots at
    # its edges, so a high percentile of the frame depends on where the box falls in the pixel grid)
    levels = [float(np.median(f[f.mean(-1) > 60])) for f in frames]
    np.testing.assert_allclose(levels, [100 + 36 * k for k in range(4)], atol=6)
    poses, trans = clip.motion.to_torch()
    screen = clip.camera.to_screen(forward_kinematics(poses, trans)[0])[..., :2].numpy()
    for frame, joints in zip(frames, screen):                       # the box drawn over the joints, seen in the crop
        rows, cols = np.nonzero(frame.mean(-1) > 60)
        np.testing.assert_allclose([cols.min(), cols.max() + 1, rows.min(), rows.max() + 1],
                                   [joints[:, 0].min(), joints[:, 0].max(), joints[:, 1].min(), joints[:, 1].max()],
                                   atol=1.5)


def test_aist_motion_is_cut_to_shorter_music(aist_root, tmp_path):
    root = shutil.copytree(aist_root, tmp_path / "aist")
    t = np.arange(2205) / MUSIC_RATE                                 # 0.1 s: 6 frames at 60 fps
    soundfile.write(root / "music" / "mBR0.wav", 0.3 * np.sin(2 * np.pi * 440 * t), MUSIC_RATE)
    (clip,) = list(make_source("aist", root, fps=60.0, size=64).clips(A))
    assert clip.motion.num_frames == 6 and clip.motion.fps == 60.0
    np.testing.assert_allclose(clip.motion.poses, AISTDataset(root).motion(A).poses[:6])


# -- beats --------------------------------------------------------------------------------------------

def test_beats_items_keys_and_determinism(beats_dir):
    source = make_source("beats", beats_dir, seed=5)
    assert isinstance(source, BeatsSource) and source.items() == ["b song.wav", "sub/a.wav"]
    first = list(source.clips("b song.wav"))
    again = list(make_source("beats", beats_dir, seed=5).clips("b song.wav"))
    other = list(make_source("beats", beats_dir, seed=6).clips("b song.wav"))
    assert len(first) == len(again) == len(other) == 1
    clip = first[0]
    assert clip.key == music_key("beats", "b song.wav") and clip.key.startswith("beats-b-song-")
    assert KEY_PATTERN.fullmatch(clip.key) and len(clip.key) == len("beats-b-song-") + 8
    assert (clip.source, clip.sequence, clip.camera, clip.music_offset, clip.video) == \
        ("beats", "b song.wav", None, 0.0, None)
    assert clip.seed == clip_seed(5, "beats", "b song.wav") == again[0].seed != other[0].seed
    np.testing.assert_array_equal(clip.motion.poses, again[0].motion.poses)
    np.testing.assert_array_equal(clip.motion.trans, again[0].motion.trans)
    assert not np.array_equal(clip.motion.poses, other[0].motion.poses)
    assert clip.motion.fps == 15.0 and clip.motion.num_frames == 45 and clip.motion.up_axis == "y"   # 3 s
    (short,) = list(source.clips("sub/a.wav"))
    assert short.motion.num_frames == 30 and short.key != clip.key                                 # 2 s
    facts = source.describe()
    assert (facts["seed"], facts["files"], facts["intensity"]) == (5, 2, 1.0)
    assert "max_joint_speed" not in facts                                  # the default: older builds keep their ids
    fast = make_source("beats", beats_dir, seed=5, variety="looped", max_joint_speed=8.0)
    assert fast.describe()["max_joint_speed"] == 8.0
    (looped,) = list(fast.clips("b song.wav"))
    (slow,) = list(make_source("beats", beats_dir, seed=5, variety="looped").clips("b song.wav"))
    assert not np.array_equal(looped.motion.poses, slow.motion.poses)     # the limit reaches the choreographer
    with pytest.raises(InputError, match="max_joint_speed"):
        make_source("beats", beats_dir, max_joint_speed=-1.0)


def test_clip_seed_is_stable_and_separates_parts():
    assert clip_seed(0, "beats", "a.wav") == clip_seed(0, "beats", "a.wav") == 3605137524800799683
    seeds = {clip_seed(0, "ab", "c"), clip_seed(0, "a", "bc"), clip_seed(1, "ab", "c"), clip_seed(0, "abc")}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)


def test_music_folder_refuses_links_outside_and_control_characters(tmp_path, beats_dir):
    folder = shutil.copytree(beats_dir, tmp_path / "music")
    outside = _clicks(tmp_path / "elsewhere" / "x.wav", 1.0)
    os.symlink(outside, folder / "linked.wav")
    os.symlink(outside.parent, folder / "linked_dir")
    shutil.copy(outside, folder / "bad\nname.wav")
    with pytest.raises(InputError) as err:
        make_source("beats", folder)
    message = str(err.value)
    assert str(folder) in message and "'linked.wav'" in message and "linked_dir" in message
    assert "'bad\\nname.wav'" in message and "control characters" in message and "3 file(s)" in message
    inside = shutil.copytree(beats_dir, tmp_path / "inside")
    os.symlink(inside / "b song.wav", inside / "again.wav")                   # a link inside the folder is fine
    assert make_source("beats", inside).items() == ["again.wav", "b song.wav", "sub/a.wav"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")
def test_music_folder_refuses_fifos_and_other_non_regular_files(tmp_path, beats_dir):
    """A FIFO named *.wav would block decoding forever: the listing refuses it (and links to it) in one error."""
    folder = shutil.copytree(beats_dir, tmp_path / "music")
    os.mkfifo(folder / "pipe.wav")
    os.mkfifo(folder / "sub" / "pipe.mp3")
    os.symlink(folder / "pipe.wav", folder / "to_pipe.flac")                 # inside the folder, but to a FIFO
    (folder / "dir.wav").mkdir()                                             # a folder: searched, not a file
    os.mkfifo(folder / "notes.fifo")                                         # not a music extension: ignored
    with pytest.raises(InputError) as err:
        make_source("beats", folder)
    message = str(err.value)
    assert str(folder) in message and "3 file(s)" in message, message
    for name in ("'pipe.wav': a FIFO", "'sub/pipe.mp3': a FIFO", "'to_pipe.flac': a FIFO"):
        assert name in message, message
    assert "not a regular file" in message and "notes.fifo" not in message


def test_clip_keys_come_from_the_shards_module():
    """One definition of the key rule (shards.py); sources.py imports it rather than repeating it."""
    own = [line for line in inspect.getsource(sources).splitlines() if line.startswith(("KEY_PATTERN", "KEY_MAX"))]
    assert own == [] and sources.KEY_PATTERN is shards.KEY_PATTERN and sources.KEY_MAX_LENGTH == 80
    longest = f"{music_key('edge', 'x' * 200 + '.wav')}-s99999"
    assert KEY_PATTERN.fullmatch(longest)


# -- EDGE -----------------------------------------------------------------------------------------

def test_edge_slices_are_reproducible_one_by_one(edge_dir, smoke_models, caplog):
    checkpoint = smoke_models / EDGE_FILE
    source = make_source("edge", edge_dir, seed=3, edge_checkpoint=checkpoint)
    assert isinstance(source, EDGESource) and source.items() == ["long.wav", "short.wav"]
    clips = list(source.clips("long.wav"))                         # 12 s -> full 5-s slices at 0 and 5 s
    assert [c.key for c in clips] == [f"{music_key('edge', 'long.wav')}-s000", f"{music_key('edge', 'long.wav')}-s001"]
    assert [c.music_offset for c in clips] == [0.0, 5.0] and [c.meta["slice"] for c in clips] == [0, 1]
    for clip in clips:
        assert clip.motion.num_frames == 75 and clip.motion.fps == 15.0 and clip.motion.up_axis == "y"
        assert clip.camera is None and clip.music["waveform"].shape[-1] == 12 * SR        # the whole track
        assert clip.seed == clip_seed(3, "edge", "long.wav", str(clip.meta["slice"]))
    assert not np.array_equal(clips[0].motion.poses, clips[1].motion.poses)
    again = list(source.clips("long.wav"))
    for a, b in zip(clips, again):
        np.testing.assert_array_equal(a.motion.poses, b.motion.poses)
        np.testing.assert_array_equal(a.motion.trans, b.motion.trans)
    alone = make_source("edge", edge_dir, seed=3, edge_checkpoint=checkpoint).slice_clip("long.wav", 1)
    assert alone.key == clips[1].key
    np.testing.assert_array_equal(alone.motion.poses, clips[1].motion.poses)
    np.testing.assert_array_equal(alone.motion.trans, clips[1].motion.trans)
    with caplog.at_level(logging.WARNING):
        assert list(source.clips("short.wav")) == []
    assert "short.wav" in caplog.text and "shorter than one EDGE slice" in caplog.text
    facts = source.describe()
    assert (facts["slice_seconds"], facts["feature_kind"], facts["seed"]) == (5.0, "baseline", 3)
    assert len(facts["edge_sha256"]) == 64


# -- make_source errors ---------------------------------------------------------------------------

def test_make_source_errors_name_the_path(tmp_path, edge_dir):
    with pytest.raises(InputError, match="unknown source 'mocap'"):
        make_source("mocap", tmp_path)
    for source in ("aist", "beats", "edge"):
        with pytest.raises(InputError) as err:
            make_source(source, tmp_path / "nowhere", edge_checkpoint=tmp_path)
        assert str(tmp_path / "nowhere") in str(err.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no music here")
    with pytest.raises(InputError, match="holds no music files") as err:
        make_source("beats", tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value)
    missing = tmp_path / "models" / "edge.safetensors"
    with pytest.raises(InputError, match="does not exist") as err:
        make_source("edge", edge_dir, edge_checkpoint=missing)
    assert str(missing) in str(err.value)
    with pytest.raises(InputError, match="--edge-checkpoint FILE"):
        make_source("edge", edge_dir)
    with pytest.raises(InputError, match="only the aist source"):
        make_source("beats", edge_dir, video=True)


# -- EDGE's own Jukebox settings ------------------------------------------------------------------

def _builder_extract(folder: Path, layer: int = EDGE_JUKEBOX_LAYER) -> dict:
    """What the builder passes the edge source: Jukebox at EDGE's layer, whatever the student's layer."""
    return {"vqvae_path": folder, "prior_path": folder, "layer": layer, "device": torch.device("cpu"),
            "dtype": "fp32"}


@pytest.fixture(scope="module")
def jukebox_edge(tmp_path_factory) -> Path:
    """A tiny EDGE reading 4800-d Jukebox features (random weights), 1-s windows."""
    from m2pdance.m2penc.motion.edge import DanceDecoder, EDGEConfig, EDGEModelBundle, save_edge
    from m2pdance.m2penc.motion.edge.normalizer import MinMaxNormalizer

    config = EDGEConfig.preset("tiny", feature_kind="jukebox", cond_feature_dim=4800)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DanceDecoder(config)
    low = torch.full((config.nfeats,), -1.0)
    normalizer = MinMaxNormalizer.from_data_range(low, torch.ones(config.nfeats))
    return save_edge(EDGEModelBundle(model, normalizer, config), tmp_path_factory.mktemp("edge") / "juke.safetensors")


def test_edge_takes_the_builders_extract_settings_at_edges_layer(edge_dir, jukebox_edge, tmp_path, monkeypatch):
    assert EDGE_JUKEBOX_LAYER == 66
    seen: list[dict] = []

    def fake_windows(audio, kind, *, fps, window_frames, **extract):
        seen.append({"kind": kind, **extract})
        return EDGEWindows(torch.zeros(1, window_frames, 4800), (0,), window_frames)

    monkeypatch.setattr(sources, "edge_music_windows", fake_windows)
    extract = _builder_extract(tmp_path)
    source = make_source("edge", edge_dir, edge_checkpoint=jukebox_edge, edge_extract=extract)
    clip = source.slice_clip("short.wav", 0)
    assert clip.motion.num_frames == 15 and clip.meta["feature_kind"] == "jukebox"
    assert seen == [{"kind": "jukebox", **extract}]
    assert source.describe()["edge_extract"] == {"device": "cpu", "dtype": "fp32", "layer": 66,
                                                 "prior_path": str(tmp_path), "vqvae_path": str(tmp_path)}
    # without a layer EDGE's is used all the same; another layer (the student's) is refused up front
    no_layer = {k: v for k, v in extract.items() if k != "layer"}
    make_source("edge", edge_dir, edge_checkpoint=jukebox_edge, edge_extract=no_layer).slice_clip("short.wav", 0)
    assert seen[-1]["layer"] == 66
    with pytest.raises(InputError, match="edge_extract\\['layer'\\] is 36.*layer 66"):
        make_source("edge", edge_dir, edge_checkpoint=jukebox_edge, edge_extract=_builder_extract(tmp_path, 36))


def test_jukebox_edge_without_weights_names_the_cli_flag(edge_dir, jukebox_edge, smoke_models, tmp_path):
    for extract in (None, {"layer": 66, "device": "cpu", "dtype": "fp32"}):
        source = make_source("edge", edge_dir, edge_checkpoint=jukebox_edge, edge_extract=extract)
        with pytest.raises(InputError, match="--jukebox DIR \\(the Jukebox weights folder") as err:
            list(source.clips("short.wav"))
        assert str(jukebox_edge) in str(err.value) and "edge_extract" not in str(err.value)
    # a baseline EDGE takes the same settings and does not need them
    baseline = make_source("edge", edge_dir, edge_checkpoint=smoke_models / EDGE_FILE,
                           edge_extract=_builder_extract(tmp_path))
    assert baseline.slice_count(baseline._music("short.wav")) == 0
