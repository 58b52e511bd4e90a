"""The open body: a closed, outward mesh on SMPL's skeleton whose skinning poses it like SMPL parts."""
from __future__ import annotations

import math

import pytest
import torch

from m2pdance.m2penc.body import LANDMARK_NAMES, OpenBody
from m2pdance.m2penc.body.skeleton import NUM_JOINTS, rest_joints
from m2pdance.m2penc.errors import InputError


def _pose(batch: int = 1, **rotations: tuple[int, int, float]) -> torch.Tensor:
    """Zero poses with ``name=(joint, axis, angle)`` entries set."""
    poses = torch.zeros(batch, NUM_JOINTS, 3)
    for joint, axis, angle in rotations.values():
        poses[:, joint, axis] = angle
    return poses


def _edges(faces: torch.Tensor) -> torch.Tensor:
    return torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def test_needs_no_files_is_deterministic_and_small(open_body):
    again = OpenBody()
    assert torch.equal(again.rest_vertices, open_body.rest_vertices)
    assert torch.equal(again.faces, open_body.faces)
    assert 3000 <= open_body.num_vertices <= 6000
    assert open_body.faces.shape[0] < 12000
    coarse, fine = OpenBody(detail=0.5), OpenBody(detail=2.0)
    assert coarse.num_vertices < open_body.num_vertices < fine.num_vertices


@pytest.mark.parametrize("detail", [0.0, -1.0, 10.0, float("nan")])
def test_bad_detail_is_an_input_error(detail):
    with pytest.raises(InputError, match="detail"):
        OpenBody(detail=detail)


def test_mesh_is_closed_and_consistently_oriented(open_body):
    edges = _edges(open_body.faces)
    _, undirected = torch.unique(edges.sort(dim=1).values, dim=0, return_counts=True)
    assert torch.all(undirected == 2), "every edge must be shared by exactly two faces"
    _, directed = torch.unique(edges, dim=0, return_counts=True)
    assert torch.all(directed == 1), "neighbouring faces must traverse their shared edge in opposite directions"
    assert open_body.faces.min() >= 0 and open_body.faces.max() < open_body.num_vertices


def test_every_part_encloses_a_positive_volume(open_body):
    """Signed volume > 0 per closed part = normals point outwards (counter-clockwise from outside)."""
    v = open_body.rest_vertices.double()
    volumes = []
    for part in range(NUM_JOINTS):
        tri = v[open_body.faces[open_body.face_parts == part]]
        volumes.append(float((tri[:, 0] * torch.linalg.cross(tri[:, 1], tri[:, 2])).sum() / 6.0))
    assert min(volumes) > 0
    assert 0.04 < sum(volumes) < 0.12  # an adult is ~0.07 m^3; parts overlap at the joints
    assert volumes[0] == max(volumes)  # the pelvis/hips is the bulkiest part, the fingers small
    assert volumes[22] < 0.001 and volumes[23] < 0.001


def test_size_is_human(open_body):
    v = open_body.rest_vertices
    height = float(v[:, 1].max() - v[:, 1].min())
    assert 1.65 < height < 1.85
    assert -1.02 < float(v[:, 1].min()) < -0.95  # soles ~1 m below the pelvis
    assert 1.7 < float(v[:, 0].max() - v[:, 0].min()) < 1.9  # T-pose arm span incl. fingers


def test_weights_are_a_partition_of_unity_and_labels_are_their_argmax(open_body):
    w = open_body.lbs_weights
    assert w.shape == (open_body.num_vertices, NUM_JOINTS)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(w.shape[0]))
    assert torch.equal(open_body.part_labels, w.argmax(dim=1))
    # The owner keeps the largest weight: each vertex is labelled with the part it was built for.
    face_owner = torch.full((open_body.num_vertices,), -1)
    face_owner[open_body.faces.flatten()] = open_body.face_parts.repeat_interleave(3)
    assert torch.equal(open_body.part_labels, face_owner)
    # Blending exists: knees, elbows and so on share weight across joints.
    assert int((w.max(dim=1).values < 0.99).sum()) > 500


def test_rest_pose_reproduces_the_skeleton(open_body):
    out = open_body(torch.zeros(1, NUM_JOINTS, 3), torch.zeros(1, 3))
    torch.testing.assert_close(out.joints[0], rest_joints(), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.vertices[0], open_body.rest_vertices, atol=1e-6, rtol=0)


def test_identity_pose_with_translation_moves_everything_by_exactly_trans(open_body):
    t = torch.tensor([[0.3, -1.2, 2.5]])
    out = open_body(torch.zeros(1, NUM_JOINTS, 3), t)
    torch.testing.assert_close(out.vertices[0] - open_body.rest_vertices, t.expand(open_body.num_vertices, 3),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(out.joints[0, 0], t[0])


def test_raising_the_left_arm_moves_only_the_left_arm(open_body):
    rest = open_body.rest_vertices
    out = open_body(_pose(shoulder=(16, 2, 1.0)), torch.zeros(1, 3))   # +z turns +x (left) towards +y
    moved = out.vertices[0] - rest
    labels = open_body.part_labels
    for part in (18, 20, 22):
        assert moved[labels == part, 1].min() > 0.15, f"part {part} should rise"
    assert moved[labels == 16, 1].mean() > 0.05
    far = torch.linalg.vector_norm(rest - rest_joints()[16], dim=1) > 0.1
    assert moved[far & (labels == 16), 1].min() > 0
    assert torch.equal(out.vertices[0, rest[:, 0] < 0], rest[rest[:, 0] < 0]), "right side must not move"
    untouched = ~torch.isin(labels, torch.tensor([13, 16, 18, 20, 22]))
    torch.testing.assert_close(moved[untouched], torch.zeros_like(moved[untouched]), atol=1e-6, rtol=0)


def test_part_labels_follow_body_regions(open_body):
    v, labels, j = open_body.rest_vertices, open_body.part_labels, rest_joints()

    def near(point: torch.Tensor, radius: float) -> torch.Tensor:
        return labels[torch.linalg.vector_norm(v - point, dim=1) < radius]

    assert set(near(j[22], 0.05).tolist()) <= {20, 22} and len(near(j[22], 0.05))
    assert set(near(j[23], 0.05).tolist()) <= {21, 23} and len(near(j[23], 0.05))
    assert set(labels[v[:, 1] > j[15, 1] + 0.06].tolist()) == {15}
    assert set(near((j[4] + j[7]) / 2, 0.08).tolist()) == {4}      # left calf
    right_thigh = (torch.linalg.vector_norm(v - (j[2] + j[5]) / 2, dim=1) < 0.1) & (v[:, 0] < -0.03)
    assert set(labels[right_thigh].tolist()) == {2}  # (the inner thighs overlap at the crotch)
    assert set(near((j[16] + j[18]) / 2, 0.06).tolist()) == {16}   # left upper arm
    assert set(near((j[19] + j[21]) / 2, 0.05).tolist()) == {19}   # right forearm
    assert set(labels[v[:, 1] < -0.97].tolist()) <= {7, 8, 10, 11}  # soles
    assert set(labels.tolist()) == set(range(NUM_JOINTS))


def test_landmarks_sit_on_the_face(open_body):
    assert set(open_body.landmarks) == set(LANDMARK_NAMES)
    idx = {k: open_body.landmarks[k] for k in LANDMARK_NAMES}
    assert len(set(idx.values())) == 5
    p = {k: open_body.rest_vertices[i] for k, i in idx.items()}
    assert all(int(open_body.part_labels[i]) == 15 for i in idx.values())
    head = open_body.rest_vertices[open_body.part_labels == 15]
    assert float(p["nose"][2]) > float(head[:, 2].max()) - 0.01          # the front-most point
    assert p["left_eye"][0] > p["nose"][0] > p["right_eye"][0]          # left is +x
    assert p["left_ear"][0] > p["left_eye"][0] and p["right_ear"][0] < p["right_eye"][0]
    assert p["left_eye"][1] > p["nose"][1] and p["left_ear"][2] < p["left_eye"][2]


def test_bending_knees_and_elbows_stretches_no_edge_much(open_body):
    poses = _pose(knee=(4, 0, 1.6), elbow=(18, 1, 1.6), hip=(2, 0, -1.2), neck=(12, 0, 0.5))
    out = open_body(poses, torch.zeros(1, 3))
    e = _edges(open_body.faces)
    rest_len = torch.linalg.vector_norm(open_body.rest_vertices[e[:, 0]] - open_body.rest_vertices[e[:, 1]], dim=1)
    posed_len = torch.linalg.vector_norm(out.vertices[0, e[:, 0]] - out.vertices[0, e[:, 1]], dim=1)
    assert float((posed_len / rest_len).max()) < 2.0
    assert float((posed_len / rest_len).min()) > 0.3


def test_batched_equals_per_frame_and_float64_agrees(open_body):
    g = torch.Generator().manual_seed(0)
    poses = 0.4 * torch.randn(3, NUM_JOINTS, 3, generator=g)
    trans = torch.randn(3, 3, generator=g)
    batched = open_body(poses, trans)
    for i in range(3):
        single = open_body(poses[i:i + 1], trans[i:i + 1])
        torch.testing.assert_close(single.vertices[0], batched.vertices[i], atol=1e-6, rtol=0)
        torch.testing.assert_close(single.joints[0], batched.joints[i], atol=1e-6, rtol=0)
    body64 = OpenBody().to(torch.float64)
    assert body64.rest_vertices.dtype == torch.float64 and body64.faces.dtype == torch.long
    out64 = body64(poses.double(), trans.double())
    assert out64.vertices.dtype == torch.float64
    torch.testing.assert_close(out64.vertices.float(), batched.vertices, atol=2e-5, rtol=0)
    torch.testing.assert_close(out64.joints.float(), batched.joints, atol=2e-5, rtol=0)


def test_betas_are_ignored_but_shape_checked(open_body):
    poses, trans = _pose(2, knee=(4, 0, 0.5)), torch.zeros(2, 3)
    plain = open_body(poses, trans)
    shaped = open_body(poses, trans, torch.randn(2, 10))
    assert torch.equal(plain.vertices, shaped.vertices)
    with pytest.raises(InputError, match=r"betas .*\(2, 10\).*got \(2, 16\)"):
        open_body(poses, trans, torch.zeros(2, 16))


@pytest.mark.parametrize("poses, trans, message", [
    (torch.zeros(1, 23, 3), torch.zeros(1, 3), r"poses .*got \(1, 23, 3\)"),
    (torch.zeros(24, 3), torch.zeros(3), r"poses .*got \(24, 3\)"),
    (torch.zeros(2, 24, 3), torch.zeros(1, 3), r"trans .*\(2, 3\).*got \(1, 3\)"),
])
def test_bad_inputs_name_the_shape(open_body, poses, trans, message):
    with pytest.raises(InputError, match=message):
        open_body(poses, trans)


def test_gradients_flow_to_poses(open_body):
    poses = torch.zeros(1, NUM_JOINTS, 3, requires_grad=True)
    open_body(poses, torch.zeros(1, 3)).vertices[..., 1].sum().backward()
    assert poses.grad is not None and math.isfinite(float(poses.grad.abs().sum()))
    assert float(poses.grad[0, 16].abs().sum()) > 0
