"""render_pose_maps end to end: a rigidly skinned bone body (and the open body when present)."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.errors import GenerationCancelled, InputError
from m2pdance.m2penc.progress import RunControl
from m2pdance.m2penc.render.camera import champ_camera
from m2pdance.m2penc.render.palettes import SEMANTIC_PALETTE_RGB
from m2pdance.m2penc.render.pose_maps import iter_pose_maps, render_pose_maps
from m2pdance.m2penc.render.primitives import BoneBodyModel

SIZE = 96
LEFT_ARM = (16, 18, 20, 22)                    # left shoulder, elbow, wrist, hand
RIGHT_ARM = (17, 19, 21, 23)


@pytest.fixture(scope="module")
def body():
    return BoneBodyModel(rings=8, segments=12)


def _motion(frames: int = 5, left_arm_up: float = 1.3):
    """Arms out; the left arm raised by ``left_arm_up`` rad (about +z lifts +x towards +y); a step right."""
    poses = torch.zeros(frames, 24, 3)
    poses[:, 16, 2] = torch.linspace(0, left_arm_up, frames)
    poses[:, 17, 2] = 0.6
    trans = torch.zeros(frames, 3)
    trans[:, 0] = torch.linspace(0, 0.3, frames)
    trans[:, 1] = 0.9
    return poses, trans


def test_outputs_are_comfy_batches(body):
    poses, trans = _motion()
    out = render_pose_maps(body, poses, trans, width=SIZE, height=SIZE + 32, batch_size=2)
    for key in ("depth", "normal", "semantic", "skeleton"):
        image = out[key]
        assert image.shape == (5, SIZE + 32, SIZE, 3) and image.dtype == torch.float32, key
        assert torch.equal(image * 255, (image * 255).round()), f"{key} is not on the /255 grid"
    assert torch.equal(out["depth"][..., 0], out["depth"][..., 2])
    assert out["mask"].shape == (5, SIZE + 32, SIZE) and set(out["mask"].unique().tolist()) == {0.0, 1.0}
    background = out["mask"] == 0
    for key in ("depth", "normal", "semantic"):
        assert float(out[key][background].max()) == 0.0, key
    assert out["keypoints"].shape == (5, 18, 3) and bool((out["keypoints"][..., 2] == 1).all())
    assert float(out["depth"].amax(dim=(1, 2, 3)).min()) == 1.0


def test_batches_do_not_change_the_result(body):
    poses, trans = _motion()
    camera = champ_camera(SIZE, SIZE, translation=(-0.15, 0.9, 45.0))
    one = render_pose_maps(body, poses, trans, camera, SIZE, SIZE, batch_size=1, as_uint8=True)
    all_at_once = render_pose_maps(body, poses, trans, camera, SIZE, SIZE, batch_size=5, as_uint8=True)
    for key in ("depth", "normal", "semantic", "skeleton", "mask"):
        assert one[key].dtype == torch.uint8 and torch.equal(one[key], all_at_once[key]), key
    assert torch.equal(one["keypoints"], all_at_once["keypoints"])


def test_progress_ticks_and_cancel(body):
    poses, trans = _motion()
    camera = champ_camera(SIZE, SIZE, translation=(-0.15, 0.9, 45.0))
    ticks = []
    render_pose_maps(body, poses, trans, camera, SIZE, SIZE, batch_size=2,
                     control=RunControl(progress=lambda stage, done, total: ticks.append((stage, done, total))))
    assert ticks == [("render guidance", 2, 5), ("render guidance", 4, 5), ("render guidance", 5, 5)]
    with pytest.raises(GenerationCancelled):
        render_pose_maps(body, poses, trans, camera, SIZE, SIZE, control=RunControl(should_cancel=lambda: True))
    starts = [start for start, _ in iter_pose_maps(body, poses, trans, camera, batch_size=3)]
    assert starts == [0, 3]


def _arm_colours_above_shoulders(out, frame: int) -> tuple[int, int, int]:
    """Count covered pixels above the shoulders on the image right: left-arm, right-arm, other colours."""
    keypoints = out["keypoints"][frame]
    shoulder_y, neck_x = float(keypoints[5, 1]), float(keypoints[1, 0])
    semantic = (out["semantic"][frame] * 255).round()
    region = semantic[: int(shoulder_y) - 4, int(neck_x) + 8:]
    covered = region[region.sum(-1) > 0]
    def near(parts):
        palette = torch.tensor([SEMANTIC_PALETTE_RGB[p] for p in parts], dtype=torch.float32)
        return ((covered[:, None] - palette[None]).abs().amax(-1) <= 1).any(-1)
    left, right = near(LEFT_ARM), near(RIGHT_ARM)
    return int(left.sum()), int(right.sum()), int((~left & ~right).sum())


def test_raised_left_arm_shows_left_arm_colours_on_the_image_right(body):
    poses, trans = _motion(frames=2, left_arm_up=1.3)
    out = render_pose_maps(body, poses, trans, width=128, height=128)
    assert float(out["keypoints"][1, 7, 1]) < float(out["keypoints"][1, 0, 1])   # left wrist above the nose
    assert float(out["keypoints"][1, 7, 0]) > float(out["keypoints"][1, 1, 0])   # ... on the image right
    left, right, other = _arm_colours_above_shoulders(out, 1)
    assert left > 100 and right == 0 and other <= 0.05 * left


def test_open_body_raised_left_arm():
    open_body = pytest.importorskip("m2pdance.m2penc.body.open_body")
    body = open_body.OpenBody()
    poses, trans = _motion(frames=2, left_arm_up=1.3)
    out = render_pose_maps(body, poses, trans, width=160, height=160)
    assert float(out["keypoints"][1, 7, 1]) < float(out["keypoints"][1, 0, 1])
    left, right, other = _arm_colours_above_shoulders(out, 1)
    # Skinning blends colours across part borders (triangles straddling two parts), so allow some.
    assert left > 150 and right == 0 and other <= 0.25 * left


def test_bad_arguments_name_the_problem(body):
    poses, trans = _motion()
    with pytest.raises(InputError, match="camera renders"):
        render_pose_maps(body, poses, trans, champ_camera(64, 64), 96, 96)
    with pytest.raises(InputError, match="trans must be"):
        render_pose_maps(body, poses, trans[:3], champ_camera(64, 64), 64, 64)
    with pytest.raises(InputError, match="poses must be"):
        render_pose_maps(body, poses[:, :22], trans, champ_camera(64, 64), 64, 64)
