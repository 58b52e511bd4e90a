"""The AIST++ source on a tiny folder in the official layout (3 sequences, 16 frames; :mod:`.aist_files`)."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import InputError
from m2pdance.training.sdgpip import aist
from m2pdance.training.sdgpip.aist import AISTDataset
from m2pdance.training.sdgpip.aist_layout import parse_sequence_name, start_bpm

from .aist_files import A, B, C, C01, FRAMES, HEIGHT, SCALING, WIDTH, expected_screen, motion_data, write_aist_folder


@pytest.fixture(scope="module")
def aist_root(tmp_path_factory) -> Path:
    return write_aist_folder(tmp_path_factory.mktemp("aist"))


def test_sequences_and_ignore_list(aist_root):
    ds = AISTDataset(aist_root, "train")
    assert [s.name for s in ds] == [A, C] and len(ds) == 2 and ds.ignored == [B]
    seq = ds[1]
    assert (seq.genre, seq.situation, seq.dancer, seq.music_id, seq.choreography, seq.camera_setting) == \
        ("HO", "BM", "d19", "mHO5", "ch03", "setting1")
    assert seq.paths.motion == aist_root / "motions" / f"{C}.pkl" and seq.paths.music.name == "mHO5.wav"
    assert seq.paths.video is None and seq.start_bpm == 135.0
    assert [s.name for s in AISTDataset(aist_root, "test")] == [C]
    with pytest.raises(InputError, match=B):
        ds.sequence(B)


def test_start_bpm_and_names():
    assert [start_bpm(m) for m in ("mBR0", "mPO1", "mLO2", "mMH3", "mLH4", "mWA5", "mKR0", "mJS3", "mJB5")] == \
        [80, 90, 100, 110, 120, 130, 80, 110, 130]
    assert (start_bpm("mHO0"), start_bpm("mHO5")) == (110, 135)
    name = parse_sequence_name("gJB_sFM_c09_d08_mJB2_ch11")
    assert (name.genre, name.camera, name.music_id) == ("JB", "c09", "mJB2")
    for bad in ("gXX_sBM_cAll_d04_mBR0_ch01", "gBR_sBM_cAll_d04_mBR0", "gBR_sBM_cAll_d4_mBR0_ch01", "mBR0.wav"):
        with pytest.raises(InputError, match="not an AIST\\+\\+ sequence name") as err:
            parse_sequence_name(bad)
        assert repr(bad) in str(err.value)
    with pytest.raises(InputError, match="mZZ1"):
        start_bpm("mZZ1")


def test_motion_values(aist_root):
    ds = AISTDataset(aist_root, "train")
    data = motion_data(0, SCALING[A])
    motion = ds.motion(A)
    assert motion.num_frames == FRAMES and motion.fps == 60.0 and motion.up_axis == "y"
    np.testing.assert_allclose(motion.trans, data["smpl_trans"] / SCALING[A], rtol=1e-6)
    np.testing.assert_allclose(motion.poses.reshape(FRAMES, 72), data["smpl_poses"], rtol=1e-6, atol=1e-7)
    assert ds.scaling(A) == SCALING[A]
    music = ds.music(C)
    assert music["sample_rate"] == 22050 and tuple(music["waveform"].shape) == (1, 1, 11025)


def test_camera_mapping(aist_root):
    ds = AISTDataset(aist_root, "train")
    cam = ds.camera(A, "c01")                   # OpenCV's principal point (50, 40) is (50.5, 40.5) in the pack
    torch.testing.assert_close(cam.intrinsics, torch.tensor(C01["matrix"]) + torch.tensor([[0, 0, 0.5], [0, 0, 0.5],
                                                                                           [0, 0, 0]]))
    torch.testing.assert_close(cam.rotation, torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(cam.translation, torch.tensor([0.1, 0.2, 6.0]))
    # (1, 2, 3) m -> R p + t = (3.1, 2.2, 5.0) -> u = 100 * 3.1 / 5 + 50 = 112, v = 110 * 2.2 / 5 + 40 = 88.4 in
    # OpenCV's pixels (centres at integers); the pack's centres are at i + 0.5: (112.5, 88.9)
    torch.testing.assert_close(cam.to_screen(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([112.5, 88.9, 5.0]))
    c09 = ds.camera(C)                                                       # default view
    assert (c09.width, c09.height) == (WIDTH, HEIGHT)
    # (0.5, 1.2, 1.0) m -> (0.5, -0.2, 4.0) -> u = 120 * 0.5 / 4 + 128 = 143, v = 120 * -0.2 / 4 + 96 = 90, + 0.5
    torch.testing.assert_close(c09.to_screen(torch.tensor([0.5, 1.2, 1.0])), torch.tensor([143.5, 90.5, 4.0]))
    with pytest.raises(InputError, match="c05"):
        ds.camera(A, "c05")


def test_crop_covers_projected_joints(aist_root):
    ds = AISTDataset(aist_root, "train")
    for seed, name in ((0, A), (2, C)):
        expected = expected_screen(motion_data(seed, SCALING[name]))
        np.testing.assert_allclose(ds.projected_joints(name)[..., :2].numpy(), expected, atol=1e-3)
        box = ds.dancer_crop(name)
        assert box.side > 0 and 0 <= box.left and box.left + box.side <= WIDTH
        assert 0 <= box.top and box.top + box.side <= HEIGHT
        assert box.left < expected[..., 0].min() and expected[..., 0].max() < box.left + box.side
        assert box.top < expected[..., 1].min() and expected[..., 1].max() < box.top + box.side
        extent = max(np.ptp(expected[..., 0]), np.ptp(expected[..., 1]))
        assert box.side < 2.0 * extent                                       # tight-ish, not the whole image


def test_video_frames(aist_root):
    ds = AISTDataset(aist_root, "train", need_video=True)
    assert ds[0].paths.video == aist_root / "videos" / "gBR_sBM_c09_d04_mBR0_ch01.mp4"
    frames = list(ds.video_frames(A, size=32, fps=30))
    assert len(frames) == FRAMES // 2
    assert all(f.shape == (32, 32, 3) and f.dtype == np.uint8 for f in frames)
    # the box's grey, 100 + 9 * source frame: the median inside the box (bicubic resizing overshoots at
    # its edges, so a high percentile of the frame depends on where the box falls in the pixel grid)
    levels = [float(np.median(f[f.mean(-1) > 60])) for f in frames]
    np.testing.assert_allclose(levels, [100 + 18 * k for k in range(FRAMES // 2)], atol=6)
    with av.open(str(ds[0].paths.video)) as c:
        whole = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert (frames[0] > 60).mean() > 4 * (whole > 60).mean()                  # the crop is about the dancer
    assert len(list(ds.video_frames(A, size=16))) == FRAMES


def test_missing_items_one_error(aist_root, tmp_path):
    root = tmp_path / "partial"
    shutil.copytree(aist_root, root)
    (root / "motions" / f"{A}.pkl").unlink()
    (root / "motions" / f"{B}.pkl").unlink()                                 # ignored: not required
    (root / "music" / "mHO5.wav").unlink()
    (root / "cameras" / "setting1.json").unlink()
    (root / "videos" / f"{C.replace('cAll', 'c09')}.mp4").unlink()
    with pytest.raises(InputError) as err:
        AISTDataset(root, "train", need_video=True)
    message = str(err.value)
    for item in (f"{A}.pkl", "mHO5.wav", "setting1.json", "gHO_sBM_c09_d19_mHO5_ch03.mp4", "official AIST++ layout"):
        assert item in message
    assert f"{B}.pkl" not in message and "4 problem(s)" in message


def test_empty_folder_and_bad_split_line(tmp_path, aist_root):
    with pytest.raises(InputError) as err:
        AISTDataset(tmp_path, "val")
    message = str(err.value)
    for item in ("motions/", "cameras/", "music/", "crossmodal_val.txt", "ignore_list.txt"):
        assert item in message
    with pytest.raises(InputError, match="does not exist"):
        AISTDataset(tmp_path / "nowhere")
    with pytest.raises(InputError, match="split must be one of"):
        AISTDataset(aist_root, "validation")
    root = tmp_path / "badline"
    shutil.copytree(aist_root, root)
    (root / "splits" / "crossmodal_test.txt").write_text(f"{C}\ngBR_sBM_cAll_d04_mBR0\n")
    with pytest.raises(InputError, match="line 2 'gBR_sBM_cAll_d04_mBR0' is not an AIST"):
        AISTDataset(root, "test")


@pytest.fixture
def pickle_loads(monkeypatch) -> list[str]:
    """Names of the motion pickles AISTDataset reads, in order."""
    loads: list[str] = []
    real = aist.load_pickle

    def counting(path, rules):
        loads.append(Path(path).stem)
        return real(path, rules)

    monkeypatch.setattr(aist, "load_pickle", counting)
    return loads


def test_motion_pickle_is_read_once_per_clip(aist_root, pickle_loads):
    """A clip needs the motion, the scaling, the crop (joints) and the cropped video: one pickle read."""
    ds = AISTDataset(aist_root, "train", need_video=True)
    motion, scaling = ds.motion(A), ds.scaling(A)
    box, joints = ds.dancer_crop(A), ds.joints_world(A)
    frames = list(ds.video_frames(A, size=16))
    assert len(frames) == FRAMES and joints.shape == (FRAMES, 24, 3) and box.side > 0
    assert pickle_loads == [A]
    assert ds.motion(A) is motion and ds.scaling(A) == scaling == SCALING[A]
    for name in (C, A, C, A):                             # two sequences alternate inside the cache
        ds.motion(name)
    assert pickle_loads == [A, C]


def test_motion_cache_is_bounded_and_not_pickled(aist_root, pickle_loads, monkeypatch):
    monkeypatch.setattr(aist, "MOTION_CACHE_SIZE", 1)
    ds = AISTDataset(aist_root, "train")
    for name in (A, A, C, A):
        ds.motion(name)
    assert pickle_loads == [A, C, A] and list(ds._motions) == [A]
    clone = pickle.loads(pickle.dumps(ds))                # e.g. into a DataLoader worker
    assert list(clone._motions) == [] and list(ds._motions) == [A]
    np.testing.assert_array_equal(clone.motion(A).poses, ds.motion(A).poses)
    assert pickle_loads == [A, C, A, A]
