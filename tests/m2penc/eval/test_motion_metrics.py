"""EDGE's PFC, Bailando's kinetic/geometric features, FID and Div, the AIST++ ground truth."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from m2pdance.m2penc.body.skeleton import JOINT_NAMES, rest_joints
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval import motion_metrics as mm
from m2pdance.m2penc.motion import SMPLMotion, load_motion

DT = 1 / 30


def _rest(frames: int) -> np.ndarray:
    """``(F, 24, 3)`` SMPL's rest pose (y up), pelvis at the origin, repeated."""
    return np.repeat(rest_joints().double().numpy()[None], frames, axis=0)


def _j(name: str) -> int:
    return JOINT_NAMES.index(name)


# -- PFC ----------------------------------------------------------------------------------------
def test_pfc_by_hand_on_a_tiny_clip():
    """4 frames, z up: two root accelerations, the second twice the first (the first also points down,
    which EDGE clamps away); per-frame horizontal foot displacements chosen by hand."""
    j = np.zeros((4, 24, 3))
    a = 0.01
    j[:, 0, 0] = [0, 0, a, 4 * a]                 # root x: v = (0, a, 3a) / DT, acc = (a, 2a) / DT^2
    j[:, 0, 2] = [0, 0, -5 * a, -10 * a]          # root z: acc_z = (-5a, 0) / DT^2 -> clamped to 0
    j[:, 7, 0] = [0, 0, 0.1, 0.3]                 # left ankle:  steps 0.1, 0.2
    j[:, 7, 2] = [0, 0, 3.0, -2.0]                # (vertical motion is ignored)
    j[:, 10, 0] = [0, 0, 0.2, 0.25]               # left toes:   steps 0.2, 0.05 -> min L = 0.1, 0.05
    j[:, 8, 1] = [0, 0, 0.3, 0.7]                 # right ankle: steps 0.3, 0.4
    j[:, 11, 1] = [0, 0, 0.5, 0.6]                # right toes:  steps 0.5, 0.1  -> min R = 0.3, 0.1
    expected = np.mean([0.1 * 0.3 * 0.5, 0.05 * 0.1 * 1.0])
    assert mm.pfc_clip(j) == pytest.approx(expected, rel=1e-12)
    assert mm.pfc(j) == pytest.approx(1e4 * expected, rel=1e-12)
    assert mm.pfc([j, np.zeros((5, 24, 3))]) == pytest.approx(1e4 * expected / 2, rel=1e-12)  # still root: 0
    y_up = j[..., [0, 2, 1]]                      # the same clip with y as the up axis
    assert mm.pfc_clip(y_up, up_axis="y") == pytest.approx(expected, rel=1e-12)


def _swaying(frames: int = 90, feet: str = "slide") -> np.ndarray:
    """Rest pose, z up, at 30 fps; the root sways sideways (accelerating); feet slide with it or stay planted."""
    t = np.arange(frames) * DT
    j = _rest(frames)[..., [0, 2, 1]] * np.array([1, -1, 1])  # y up -> z up: (x, y, z) -> (x, -z, y)
    sway = 0.15 * np.sin(2 * np.pi * 1.5 * t)
    moved = j.copy()
    moved[..., 0] += sway[:, None]
    if feet == "planted":
        moved[:, list(mm.PFC_FOOT_JOINTS)] = j[:, list(mm.PFC_FOOT_JOINTS)]
    elif feet == "one planted":
        moved[:, [7, 10]] = j[:, [7, 10]]
    return moved


def test_pfc_penalises_feet_sliding_while_the_body_accelerates():
    sliding, planted, one = (mm.pfc(_swaying(feet=f)) for f in ("slide", "planted", "one planted"))
    assert sliding > 1.0 and planted == 0.0 and one == 0.0    # EDGE: one static foot is enough support


def test_motion_pfc_poses_the_motion_z_up_at_30fps():
    frames = 120
    t = np.arange(frames) / 60.0
    trans = np.stack([0.2 * np.sin(2 * np.pi * t), 0.95 + 0.0 * t, 0.1 * t], axis=1)
    y_up = SMPLMotion(np.zeros((frames, 24, 3)), trans, fps=60.0, up_axis="y")
    joints = mm.motion_joints(y_up, "z", 30.0)
    assert joints.shape == (60, 24, 3)
    np.testing.assert_allclose(joints[:, 0], np.stack([trans[::2, 0], -trans[::2, 2], trans[::2, 1]], 1), atol=1e-6)
    value = mm.motion_pfc(y_up)
    assert value > 0 and value == pytest.approx(mm.pfc(joints), rel=1e-9)
    assert mm.motion_pfc(y_up.to_up_axis("z")) == pytest.approx(value, rel=1e-6)   # same dance, other frame


def test_pfc_refuses_bad_input():
    with pytest.raises(InputError, match="at least 3 frames"):
        mm.pfc(np.zeros((2, 24, 3)))
    with pytest.raises(InputError, match=r"\(frames, 24, 3\)"):
        mm.pfc(np.zeros((10, 22, 3)))
    with pytest.raises(InputError, match="NaN"):
        mm.pfc(np.full((10, 24, 3), np.nan))


# -- kinetic features ---------------------------------------------------------------------------
def _kinetic_reference(p: np.ndarray, frame_time: float, window: int, bailando_bug: bool) -> np.ndarray:
    """A plain loop over frames and windows, written from the definitions (y up)."""
    frames, joints = p.shape[:2]
    out = np.zeros((joints, 3))
    for j in range(joints):
        for i in range(1, frames):
            ks = [k for k in range(i - window, i + window + 1) if 1 <= k <= frames - 1]
            v = sum(p[k, j] - p[k - 1, j] for k in ks) / (len(ks) * frame_time)
            out[j, 0] += (v[0] ** 2 + v[2] ** 2) / (frames - 1)
            out[j, 1] += v[1] ** 2 / (frames - 1)
            ms = [m for m in range(i - window, i + window + 1) if 1 <= m <= frames - 2]
            acc = np.zeros(3)
            for m in ms:
                later = (p[m + 1, j] - p[m, j]) / frame_time
                earlier = p[m, j] - p[m - 1, j] / frame_time if bailando_bug else (p[m, j] - p[m - 1, j]) / frame_time
                acc += (later - earlier) / frame_time
            out[j, 2] += np.linalg.norm(acc / len(ms)) / (frames - 1)
    return out.reshape(-1)


def test_kinetic_energy_of_constant_velocity_is_closed_form():
    frames, v = 40, np.array([0.3, -0.4, 1.2])                  # m/s, y up
    p = _rest(frames)
    p[:, 5] += np.arange(frames)[:, None] / 60.0 * v             # right knee moves at constant velocity
    features = mm.kinetic_features(p, energy="corrected").reshape(24, 3)
    np.testing.assert_allclose(features[5], [v[0] ** 2 + v[2] ** 2, v[1] ** 2, 0.0], atol=1e-9)
    np.testing.assert_allclose(features[[0, 1, 23], :2], 0.0, atol=1e-12)
    # uniformly accelerated joint: the windowed acceleration is exact
    accel = np.array([0.0, -9.81, 2.0])
    q = _rest(frames)
    q[:, 3] += 0.5 * (np.arange(frames)[:, None] / 60.0) ** 2 * accel
    assert mm.kinetic_features(q, energy="corrected")[3 * 3 + 2] == pytest.approx(np.linalg.norm(accel), rel=1e-9)


def test_kinetic_energy_expenditure_keeps_bailandos_precedence():
    """Bailando's earlier velocity is ``p[m] - p[m-1] / dt``: a still joint at c scores |(1/dt - 1) c| / dt."""
    p = _rest(20)
    still = mm.kinetic_features(p).reshape(24, 3)
    expected = np.linalg.norm(p[0], axis=-1) * 59 * 60          # 3540 |c| at 60 fps
    np.testing.assert_allclose(still[:, 2], expected, rtol=1e-9)
    np.testing.assert_allclose(mm.kinetic_features(p, energy="corrected").reshape(24, 3)[:, 2], 0.0, atol=1e-9)


@pytest.mark.parametrize("frames", [3, 4, 6, 31])
def test_kinetic_features_match_a_loop_over_the_windows(frames):
    p = np.cumsum(np.random.default_rng(frames).normal(scale=0.01, size=(frames, 24, 3)), axis=0)
    for bug in (True, False):
        ours = mm.kinetic_features(p, energy="bailando" if bug else "corrected")
        np.testing.assert_allclose(ours, _kinetic_reference(p, 1 / 60, 2, bug), rtol=1e-10, atol=1e-12)
    assert ours.shape == (72,)


# -- geometric features -------------------------------------------------------------------------
def test_geometric_features_fire_on_constructed_poses():
    frames = 31
    p = _rest(frames)
    base = mm.geometric_features(p)
    assert base.shape == (32,) and ((base >= 0) & (base <= 1)).all()
    fast = [12, 13, 21, 22, 31]                                 # fast(rwrist, lwrist, rankle, lankle, root)
    assert (base[fast] == 0).all()
    assert base[28] == 0                                        # upright: the spine is not horizontal
    moving = p.copy()
    moving[:, _j("rwrist"), 0] += 0.01 * np.arange(frames)      # 1.2 m/s > 2.5 hl = 0.64 m/s
    got = mm.geometric_features(moving)
    assert got[12] == 1.0 and got[13] == 0.0
    lifted = p.copy()
    lifted[frames // 2:, [_j("rankle"), _j("rtoes")], 1] += 0.4  # right foot raised > 1.2 hl for half the clip
    got = mm.geometric_features(lifted)
    assert got[16] == pytest.approx(16 / 30) and got[17] == 0.0       # frames 15..30 of t = 1..30
    lying = p[..., [1, 0, 2]]                                   # the body along x: spine horizontal
    assert mm.geometric_features(lying)[28] == 1.0


def test_geometric_constants_are_bailandos():
    assert len(mm.GEOMETRIC_FEATURES) == mm.GEOMETRIC_DIM == 32
    assert mm.HUMERUS_LENGTH == pytest.approx(0.25684, abs=1e-5)
    assert mm.SHOULDER_WIDTH == pytest.approx(0.39085, abs=1e-5)
    assert mm.HIP_WIDTH == pytest.approx(0.11925, abs=1e-5)


# -- FID and Div --------------------------------------------------------------------------------
def test_frechet_distance_closed_forms():
    a = np.random.default_rng(0).normal(size=(200, 3))
    assert mm.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert mm.frechet_distance(a, a + [3.0, 0.0, 4.0]) == pytest.approx(25.0, rel=1e-8)   # same covariance
    cov = np.cov(a, rowvar=False)
    assert mm.frechet_distance(a, 2 * a) == pytest.approx(np.mean(a, 0) @ np.mean(a, 0) + np.trace(cov), rel=1e-8)


def test_diversity_and_normalisation():
    assert mm.diversity(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 4.0]])) == pytest.approx(4.0)  # (5 + 3 + 4) / 3
    gt = np.array([[0.0, 10.0], [2.0, 10.0]])
    pred = np.array([[1.0, 10.0], [3.0, 11.0]])
    gt_n, pred_n = mm.normalize_features(gt, pred)             # by the ground truth's mean and std only
    np.testing.assert_allclose(gt_n, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(pred_n, [[0.0, 0.0], [2.0, 1e10]], rtol=1e-9)


def _dances(n: int, speed: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = _rest(90)
        p += np.cumsum(rng.normal(scale=0.004 * speed, size=p.shape), axis=0)
        out.append(p)
    return out


def test_fid_k_of_a_set_with_itself_is_zero_and_grows_for_another_set():
    dances = mm.feature_set([(f"d{i}", d) for i, d in enumerate(_dances(24, 1.0, 0))])
    faster = mm.feature_set([(f"f{i}", d) for i, d in enumerate(_dances(24, 2.0, 1))])
    same = mm.motion_quality(dances, dances)
    assert abs(same["fid_k"]) < 1e-3 and abs(same["fid_g"]) < 1e-3
    assert same["div_k"] == pytest.approx(same["div_k_gt"]) and same["div_k"] > 0
    other = mm.motion_quality(faster, dances)
    assert other["fid_k"] > 100 * max(abs(same["fid_k"]), 1e-3) and other["fid_k"] > 1.0
    assert set(other) == {"fid_k", "fid_g", "div_k", "div_g", "div_k_gt", "div_g_gt"}


def test_motion_features_zero_start_and_up_axis():
    frames = 30
    t = np.arange(frames) / 30.0
    poses = np.zeros((frames, 24, 3))
    poses[:, 18, 2] = 0.8 * np.sin(2 * np.pi * t)              # left elbow waves
    motion = SMPLMotion(poses, np.stack([0.3 * t, 0.9 + 0 * t, 5.0 + 0 * t], 1), fps=30.0)
    k, g = mm.motion_features(motion)
    k2, g2 = mm.motion_features(motion.to_up_axis("z"))
    np.testing.assert_allclose(k, k2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g, g2)
    far = SMPLMotion(poses, motion.trans + [10.0, 0.0, -7.0], fps=30.0)        # zero start: position-free
    np.testing.assert_allclose(mm.motion_features(far)[0], k, rtol=1e-6)
    cut_k, _ = mm.motion_features(motion, max_frames=20)                       # 20 of the 59 frames at 60 fps
    assert not np.allclose(cut_k, k)


# -- AIST++ ground truth ------------------------------------------------------------------------
def _write_aist(root, names):
    (root / "motions").mkdir(parents=True)
    (root / "splits").mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        frames = 40
        data = {"smpl_poses": rng.normal(scale=0.2, size=(frames, 72)),
                "smpl_trans": np.cumsum(rng.normal(scale=1.0, size=(frames, 3)), 0) + [0, 90, 0],
                "smpl_scaling": np.array([93.0]), "smpl_loss": 0.1}
        with open(root / "motions" / f"{name}.pkl", "wb") as f:
            pickle.dump(data, f)


def test_aist_ground_truth_stats_reads_the_folder_and_caches(tmp_path, monkeypatch):
    names = ["gBR_sBM_cAll_d04_mBR0_ch01", "gPO_sFM_cAll_d10_mPO1_ch02", "gHO_sBM_cAll_d19_mHO2_ch03"]
    root = tmp_path / "aist"
    _write_aist(root, names)
    with pytest.raises(InputError, match="ignore_list"):
        mm.aist_ground_truth_stats(root)
    (root / "ignore_list.txt").write_text(names[2] + "\n")
    (root / "splits" / "crossmodal_test.txt").write_text(names[1] + "\n" + names[2] + "\n")
    assert mm.aist_sequence_names(root, "all") == sorted(names[:2])
    assert mm.aist_sequence_names(root, "test") == [names[1]]
    with pytest.raises(InputError, match="crossmodal_val"):
        mm.aist_sequence_names(root, "val")

    cache = tmp_path / "gt_all.npz"
    gt = mm.aist_ground_truth_stats(root, "all", cache=cache)
    assert gt.names == tuple(sorted(names[:2])) and gt.kinetic.shape == (2, 72) and gt.geometric.shape == (2, 32)
    k, g = mm.motion_features(load_motion(root / "motions" / f"{gt.names[0]}.pkl"))
    np.testing.assert_allclose(gt.kinetic[0], k)
    np.testing.assert_allclose(gt.geometric[0], g)
    with np.load(cache, allow_pickle=False) as data:           # plain arrays, no pickles
        assert data["names"].dtype.kind == "U"

    def refuse(*_args, **_kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(mm, "load_motion", refuse)
    again = mm.aist_ground_truth_stats(root, "all", cache=cache)
    np.testing.assert_array_equal(again.kinetic, gt.kinetic)
    with pytest.raises(AssertionError, match="cache"):          # another split: recomputed
        mm.aist_ground_truth_stats(root, "test", cache=cache)


def test_feature_set_round_trip_and_checks(tmp_path):
    fs = mm.FeatureSet(("a", "b"), np.arange(144.0).reshape(2, 72), np.ones((2, 32)) / 2, "mine")
    back = mm.FeatureSet.load(fs.save(tmp_path / "f.npz"))
    assert back.names == ("a", "b") and back.source == "mine"
    np.testing.assert_array_equal(back.kinetic, fs.kinetic)
    with pytest.raises(InputError, match="kinetic"):
        mm.FeatureSet(("a",), np.zeros((1, 71)), np.zeros((1, 32)))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="bad.npz"):
        mm.FeatureSet.load(tmp_path / "bad.npz")
