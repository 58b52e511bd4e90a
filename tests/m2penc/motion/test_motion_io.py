"""load_motion / save_motion: AIST++ and EDGE pickles, our .npz, atomic saves, and bad files."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.motion import SMPLMotion, io as motion_io, load_motion, save_motion


def _aist(frames=12, scaling=93.7, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    trans_m = rng.normal(0, 1, size=(frames, 3))
    data = {"smpl_loss": 1.25, "smpl_poses": rng.uniform(-2, 2, size=(frames, 72)).astype(dtype),
            "smpl_scaling": np.array([scaling]), "smpl_trans": (trans_m * scaling).astype(dtype)}
    return data, trans_m


def _dump(path, data, protocol=4):
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4])
def test_aist_pickle(tmp_path, protocol):
    data, trans_m = _aist()
    motion = load_motion(_dump(tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl", data, protocol))
    assert (motion.fps, motion.up_axis, motion.num_frames, motion.betas) == (60.0, "y", 12, None)
    np.testing.assert_allclose(motion.poses, data["smpl_poses"].reshape(12, 24, 3), rtol=1e-6)
    np.testing.assert_allclose(motion.trans, trans_m, rtol=1e-5, atol=1e-6)


def test_edge_pickle_is_z_up_30fps(tmp_path, make_motion):
    source = make_motion(frames=9, up_axis="z")
    data = {"smpl_poses": source.poses.reshape(9, 72), "smpl_trans": source.trans,
            "full_pose": np.zeros((9, 24, 3), np.float32)}
    motion = load_motion(_dump(tmp_path / "test_song.pkl", data))
    assert (motion.fps, motion.up_axis) == (30.0, "z")
    np.testing.assert_array_equal(motion.poses, source.poses)
    np.testing.assert_array_equal(motion.trans, source.trans)


@pytest.mark.parametrize("betas", [None, np.linspace(-1, 1, 10)])
def test_npz_round_trip_is_lossless(tmp_path, make_motion, betas):
    motion = make_motion(frames=7, fps=29.97, up_axis="z", betas=betas)
    path = save_motion(motion, tmp_path / "sub" / "dance.npz")
    assert path == tmp_path / "sub" / "dance.npz"
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"poses", "trans", "fps", "up_axis"} | ({"betas"} if betas is not None else set())
        assert data["up_axis"].dtype.kind == "U" and data["up_axis"].shape == ()
    back = load_motion(path)
    np.testing.assert_array_equal(back.poses, motion.poses)
    np.testing.assert_array_equal(back.trans, motion.trans)
    assert (back.fps, back.up_axis) == (29.97, "z")
    if betas is None:
        assert back.betas is None
    else:
        np.testing.assert_array_equal(back.betas, motion.betas)


def test_aist_to_npz_to_bvh_round_trip(tmp_path, rot_err):
    data, trans_m = _aist(frames=20, seed=5)
    motion = load_motion(_dump(tmp_path / "aist.pkl", data))
    via_npz = load_motion(save_motion(motion, tmp_path / "a.npz"))
    via_bvh = load_motion(save_motion(via_npz, tmp_path / "a.bvh"))
    assert via_bvh.fps == 60.0 and via_bvh.up_axis == "y"
    assert rot_err(via_bvh.poses, data["smpl_poses"].reshape(20, 24, 3)) < 1e-5
    np.testing.assert_allclose(via_bvh.trans, trans_m, atol=1e-6)


def test_save_is_atomic(tmp_path, make_motion, monkeypatch):
    path = tmp_path / "keep.npz"
    save_motion(make_motion(frames=3), path)
    before = path.read_bytes()

    def broken(motion, f):
        f.write(b"half a file")
        raise RuntimeError("disk full")
    monkeypatch.setitem(motion_io._WRITERS, ".npz", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_motion(make_motion(frames=5), path)
    assert path.read_bytes() == before
    with pytest.raises(RuntimeError):
        save_motion(make_motion(frames=5), tmp_path / "new.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz"]


def test_save_rejects_bad_targets(tmp_path, make_motion):
    with pytest.raises(InputError, match=r"out.pkl: cannot save motion files of type '.pkl'; supported: .npz, .bvh"):
        save_motion(make_motion(), tmp_path / "out.pkl")
    with pytest.raises(InputError, match="expects an SMPLMotion"):
        save_motion({"poses": 1}, tmp_path / "out.npz")


def _good_npz():
    return {"poses": np.zeros((4, 24, 3), np.float32), "trans": np.zeros((4, 3), np.float32),
            "fps": np.array(30.0), "up_axis": np.array("y")}


def _bad_pickles():
    good, _ = _aist(frames=4)
    yield "wrong_width.pkl", dict(good, smpl_poses=np.zeros((4, 69))), ["smpl_poses", "(N, 72)", "(4, 69)"]
    yield "nan.pkl", dict(good, smpl_poses=np.full((4, 72), np.nan)), ["smpl_poses has 288 NaN/inf", "frame 0, joint 0"]
    bad_trans = good["smpl_trans"].copy()
    bad_trans[2, 1] = np.inf
    yield "inf_trans.pkl", dict(good, smpl_trans=bad_trans), ["smpl_trans has 1 NaN/inf value(s), the first at frame 2"]
    yield "zero_frames.pkl", dict(good, smpl_poses=np.zeros((0, 72)), smpl_trans=np.zeros((0, 3))), ["0 frames"]
    yield "unknown_keys.pkl", {"poses": np.zeros((4, 72)), "trans": np.zeros((4, 3))}, \
        ["found keys ['poses', 'trans']", "smpl_scaling", "full_pose"]
    yield "a_list.pkl", [np.zeros(3)], ["holds a list"]
    yield "zero_scale.pkl", dict(good, smpl_scaling=np.array([0.0])), ["smpl_scaling", "positive"]
    yield "short_trans.pkl", dict(good, smpl_trans=np.zeros((3, 3))), ["smpl_trans", "(4, 3)", "(3, 3)"]
    yield "strings.pkl", dict(good, smpl_poses="walk"), ["smpl_poses", "numeric"]
    yield "edge_joints.pkl", {"smpl_poses": np.zeros((4, 72)), "smpl_trans": np.zeros((4, 3)),
                              "full_pose": np.zeros((4, 22, 3))}, ["full_pose", "(4, 24, 3)"]


@pytest.mark.parametrize("name, data, words", list(_bad_pickles()), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_pickles_name_the_file(tmp_path, name, data, words):
    with pytest.raises(InputError) as info:
        load_motion(_dump(tmp_path / name, data))
    for word in [name] + words:
        assert word in str(info.value)


def _bad_npz():
    good = _good_npz()
    yield "no_fps.npz", {k: v for k, v in good.items() if k != "fps"}, ["missing ['fps']"]
    yield "extra.npz", dict(good, mocap_framerate=np.array(60.0)), ["unknown ['mocap_framerate']"]
    yield "flat.npz", dict(good, poses=np.zeros((4, 72))), ["(N, 24, 3)", "reshape"]
    yield "inf.npz", dict(good, trans=np.full((4, 3), np.inf)), ["trans", "NaN/inf"]
    yield "objects.npz", dict(good, betas=np.array([None, 1], dtype=object)), ["allow_pickle=False"]
    yield "axis.npz", dict(good, up_axis=np.array(1.0)), ["up_axis", "string"]


@pytest.mark.parametrize("name, arrays, words", list(_bad_npz()), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_npz_name_the_file(tmp_path, name, arrays, words):
    np.savez(tmp_path / name, **arrays)
    with pytest.raises(InputError) as info:
        load_motion(tmp_path / name)
    for word in [name] + words:
        assert word in str(info.value)


def test_other_bad_files(tmp_path):
    (tmp_path / "noise.npz").write_bytes(b"\x00\x01 not a zip")
    (tmp_path / "motion.txt").write_text("hello")
    cases = [(tmp_path / "noise.npz", "noise.npz"), (tmp_path / "motion.txt", "motion.txt: cannot load"),
             (tmp_path / "missing.bvh", "missing.bvh"), (tmp_path / "missing.pkl", "not found")]
    for path, words in cases:
        with pytest.raises(InputError, match=words):
            load_motion(path)
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(InputError, match="single.npz: holds a single .npy array"):
        load_motion(tmp_path / "single.npz")
    assert isinstance(load_motion(save_motion(SMPLMotion(**{**_good_npz(), "fps": 30.0, "up_axis": "y"}),
                                              tmp_path / "ok.npz")), SMPLMotion)


def test_npz_size_is_checked_before_reading(tmp_path, monkeypatch):
    from m2pdance.m2penc.motion import npz as npz_module

    path = save_motion(SMPLMotion(**{**_good_npz(), "fps": 30.0, "up_axis": "y"}), tmp_path / "ok.npz")
    read = []
    monkeypatch.setattr(npz_module.np, "load", lambda *a, **k: read.append(a) or pytest.fail("np.load was called"))
    monkeypatch.setattr(npz_module, "MAX_NPZ_BYTES", 100)
    with pytest.raises(InputError, match=r"ok\.npz: its arrays declare \d+ bytes, more than the 100 a motion \.npz"):
        load_motion(path)
    # a bare .npy renamed .npz is refused before numpy allocates what its header claims
    header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }"
    (tmp_path / "claims.npz").write_bytes(header.ljust(128 - 1) + b"\n")
    with pytest.raises(InputError, match="claims.npz: holds a single .npy array"):
        load_motion(tmp_path / "claims.npz")
    assert not read
