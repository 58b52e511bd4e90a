"""SMPL through smplx from a synthetic file in SMPL's exact layout: values, conventions, safety, errors."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from m2pdance.m2penc.body import SMPLBody, load_smpl, make_body
from m2pdance.m2penc.body.skeleton import PARENTS
from m2pdance.m2penc.body.smpl import SMPL_LANDMARKS
from m2pdance.m2penc.errors import InputError, WeightsError, WeightsMismatchError, WeightsNotFoundError

from .conftest import write_smpl_pickle


def numpy_smpl(arrays: dict, poses: np.ndarray, betas: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMPL written out in numpy (shape + pose blend shapes, LBS), with joint 0 moved to ``trans``."""
    v_shaped = arrays["v_template"] + arrays["shapedirs"][:, :, :10] @ betas
    rest = arrays["J_regressor"] @ v_shaped
    rot = Rotation.from_rotvec(poses).as_matrix()                                     # (24, 3, 3)
    pose_feature = (rot[1:] - np.eye(3)).reshape(-1)
    v_posed = v_shaped + (arrays["posedirs"].reshape(-1, 207) @ pose_feature).reshape(-1, 3)
    world = [np.eye(4) for _ in range(24)]
    for j in range(24):
        local = np.eye(4)
        local[:3, :3] = rot[j]
        local[:3, 3] = rest[j] - (rest[PARENTS[j]] if j else 0)
        world[j] = world[PARENTS[j]] @ local if j else local
    world = np.stack(world)
    joints = world[:, :3, 3]
    skin = world.copy()
    skin[:, :3, 3] -= (world[:, :3, :3] @ rest[:, :, None])[..., 0]                 # relative to rest
    blended = np.einsum("vj,jab->vab", arrays["weights"], skin)
    vertices = (blended[:, :3, :3] @ v_posed[:, :, None])[..., 0] + blended[:, :3, 3]
    shift = trans - joints[0]
    return vertices + shift, joints + shift


def test_loads_with_smpl_topology_labels_and_landmarks(smpl_body, smpl_arrays):
    assert isinstance(smpl_body, SMPLBody)
    assert smpl_body.num_vertices == 6890 and tuple(smpl_body.faces.shape) == (13776, 3)
    assert torch.equal(smpl_body.faces, torch.from_numpy(smpl_arrays["f"].astype(np.int64)))
    assert smpl_body.landmarks == SMPL_LANDMARKS == {
        "nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583}
    assert torch.equal(smpl_body.part_labels, torch.from_numpy(smpl_arrays["weights"].argmax(1)))
    torch.testing.assert_close(smpl_body.lbs_weights.sum(1), torch.ones(6890))


def test_joint_zero_lands_exactly_on_trans(smpl_body):
    g = torch.Generator().manual_seed(1)
    poses, trans = 0.3 * torch.randn(4, 24, 3, generator=g), torch.randn(4, 3, generator=g)
    betas = torch.randn(4, 10, generator=g)
    for b in (betas, None):
        out = smpl_body(poses, trans, b)
        assert out.vertices.shape == (4, 6890, 3) and out.joints.shape == (4, 24, 3)
        torch.testing.assert_close(out.joints[:, 0], trans, atol=1e-6, rtol=0)


def test_rest_pose_is_the_template_moved_so_the_pelvis_is_at_trans(smpl_body, smpl_arrays):
    t = np.array([0.5, 1.0, -2.0])
    out = smpl_body(torch.zeros(1, 24, 3), torch.tensor(t[None], dtype=torch.float32))
    rest_joints = smpl_arrays["J_regressor"] @ smpl_arrays["v_template"]
    assert abs(rest_joints[0, 1]) > 0.2  # the file's rest pelvis is far from the origin ...
    expected = smpl_arrays["v_template"] - rest_joints[0] + t  # ... and is moved onto trans
    np.testing.assert_allclose(out.vertices[0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out.joints[0].numpy(), rest_joints - rest_joints[0] + t, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_numpy_smpl(smpl_body, smpl_arrays, dtype):
    rng = np.random.default_rng(3)
    poses, betas, trans = 0.5 * rng.normal(size=(24, 3)), rng.normal(size=10), rng.normal(size=3)
    expected_v, expected_j = numpy_smpl(smpl_arrays, poses, betas, trans)
    body = smpl_body if dtype == torch.float32 else load_smpl(smpl_body.source).to(dtype)
    out = body(*(torch.tensor(x[None], dtype=dtype) for x in (poses, trans, betas)))
    assert out.vertices.dtype == dtype
    np.testing.assert_allclose(out.vertices[0].double().numpy(), expected_v, atol=3e-5)
    np.testing.assert_allclose(out.joints[0].double().numpy(), expected_j, atol=3e-5)


def test_npz_and_folder_paths_load_the_same_model(smpl_body, smpl_arrays, smpl_file, tmp_path):
    np.savez(tmp_path / "SMPL_NEUTRAL.npz", **smpl_arrays)
    poses, trans = 0.2 * torch.ones(1, 24, 3), torch.zeros(1, 3)
    reference = smpl_body(poses, trans).vertices
    for source in (tmp_path / "SMPL_NEUTRAL.npz", tmp_path, smpl_file.parent):
        torch.testing.assert_close(load_smpl(source)(poses, trans).vertices, reference)
    body = make_body("smpl", smpl_path=smpl_file, dtype=torch.float64)
    assert body.lbs_weights.dtype == torch.float64 and body.faces.dtype == torch.long


def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": Payload()}, protocol=2))
    with pytest.raises(WeightsError, match=r"SMPL_NEUTRAL\.pkl: refused to load the global '(posix|os)\.system'.*"
                                           r"no code from the file was run"):
        load_smpl(path)
    assert not marker.exists()


def test_npz_with_pickled_objects_is_refused(tmp_path, smpl_arrays):
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, **{**smpl_arrays, "v_template": np.array([object()], dtype=object)})
    with pytest.raises(WeightsError, match="SMPL_NEUTRAL.npz"):
        load_smpl(path)


def test_wrong_shaped_key_names_the_key_expected_and_actual(tmp_path, smpl_arrays):
    path = write_smpl_pickle(tmp_path / "SMPL_NEUTRAL.pkl", {**smpl_arrays, "weights": smpl_arrays["weights"][:, :22]})
    with pytest.raises(WeightsMismatchError) as info:
        load_smpl(path)
    message = str(info.value)
    for part in (str(path), "'weights'", "(6890, 22)", "(6890, 24)", "smpl.is.tue.mpg.de"):
        assert part in message


def test_missing_keys_and_wrong_tree_are_named(tmp_path, smpl_arrays):
    arrays = {k: v for k, v in smpl_arrays.items() if k != "posedirs"}
    path = tmp_path / "missing.npz"
    np.savez(path, **arrays)
    with pytest.raises(WeightsMismatchError, match=r"missing SMPL keys \['posedirs'\]"):
        load_smpl(path)
    tree = smpl_arrays["kintree_table"].copy()
    tree[0, 5] = 1
    np.savez(path, **{**smpl_arrays, "kintree_table": tree})
    with pytest.raises(WeightsMismatchError, match="kintree_table parents"):
        load_smpl(path)


def test_missing_file_says_how_to_get_smpl(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        load_smpl(tmp_path / "SMPL_NEUTRAL.pkl")
    for part in ("SMPL_NEUTRAL.pkl", "smpl.is.tue.mpg.de", "models/smpl/SMPL_NEUTRAL.pkl",
                 "never bundles or downloads"):
        assert part in str(info.value)
    with pytest.raises(WeightsNotFoundError, match="no SMPL_NEUTRAL.pkl or .npz in"):
        load_smpl(tmp_path)


def test_make_body_kinds():
    assert type(make_body()).__name__ == "OpenBody"
    assert make_body("open", dtype=torch.float64).rest_vertices.dtype == torch.float64
    with pytest.raises(InputError, match="needs smpl_path"):
        make_body("smpl")
    with pytest.raises(InputError, match="'mesh'"):
        make_body("mesh")
    with pytest.raises(InputError, match="gender"):
        load_smpl("unused", gender="other")
