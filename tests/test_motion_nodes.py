"""Load Motion, Render Pose Maps and Save Motion, called as ComfyUI calls them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pdance.devtools import comfy_harness as harness
from m2pdance.m2penc.motion import EXAMPLE_MOTION, example_motion, load_motion


@pytest.fixture
def nodes(prepared_home):
    return harness.all_nodes()


def test_load_motion_refuses_names_outside_the_input_folder(nodes, prepared_home):
    load = nodes["M2PDanceLoadMotion"]
    assert load.validate_inputs(EXAMPLE_MOTION) is True
    outside = prepared_home / "secret.npz"
    outside.write_bytes(b"x")
    for name in ("../secret.npz", str(outside), "a\x00b.npz"):
        message = load.validate_inputs(name)
        assert isinstance(message, str) and ("unsafe" in message or "outside" in message), (name, message)
        with pytest.raises(Exception, match="unsafe|outside") as raised:   # the pack's own InputError,
            load.execute(name)                                               # under its path-derived name
        assert type(raised.value).__name__ == "InputError"
    motion, fps = load.execute(EXAMPLE_MOTION).result
    expected = example_motion()
    assert fps == 30.0 and motion.num_frames == expected.num_frames
    np.testing.assert_allclose(motion.poses, expected.poses, atol=1e-6)


def test_render_pose_maps_gives_consistent_champ_maps(nodes):
    motion = example_motion(seconds=1.0)
    depth, normal, semantic, skeleton, mask, pose, fps = nodes["M2PDanceRenderPoseMaps"].execute(
        motion, "open body (no files)", 64, 96, 10.0).result
    assert fps == 10.0 and depth.shape == (10, 96, 64, 3) and mask.shape == (10, 96, 64)
    body = mask > 0.5
    assert 0.05 < float(body.float().mean()) < 0.6                               # a figure, not empty, not full
    for image in (normal, semantic):                                             # Champ: background black
        assert float(image[~body].abs().max()) == 0.0 and float(image[body].sum(-1).min()) > 0
    assert torch.equal(depth[..., 0] > 0, body & (depth[..., 0] > 0)) and float(depth.max()) == 1.0
    assert len(pose) == 10 and pose[0]["canvas_width"] == 64 and pose[0]["canvas_height"] == 96
    neck = np.asarray(pose[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)[1]
    assert 0 < neck[0] < 64 and 0 < neck[1] < 48 and neck[2] == 1              # neck in the upper half
    assert float(skeleton.sum()) > 0


@pytest.mark.parametrize("fmt", ["npz", "bvh"])
def test_save_motion_round_trips(nodes, prepared_home, fmt):
    motion = nodes["M2PDanceLoadMotion"].execute(EXAMPLE_MOTION).result[0]   # the pack's own SMPLMotion
    path = nodes["M2PDanceSaveMotion"].execute(motion, fmt, "m2pdance/test").result[0]
    assert path.startswith(str(prepared_home / "output")) and path.endswith(f".{fmt}")
    back = load_motion(path)
    assert back.num_frames == motion.num_frames and back.fps == pytest.approx(motion.fps)
    np.testing.assert_allclose(back.trans, motion.trans, atol=1e-5)


def _music(nodes, seconds: float = 2.0):
    return nodes["M2PDanceLoadMusic"].execute("m2pdance_example_music.wav", 0.0, seconds).result[0]


def test_music_to_motion_edge_gives_a_30fps_dance_as_long_as_the_music(nodes):
    from m2pdance.weights_manifest.smoke import SMOKE_FILES

    edge = nodes["M2PDanceLoadEDGE"].execute(SMOKE_FILES["edge"], "fp32").result[0]
    assert edge.config.feature_kind == "baseline" and edge.config.seq_len == 150
    run = nodes["M2PDanceMusicToMotionEDGE"].execute
    motion = run(edge, 0.0, 3, 2.0, music=_music(nodes)).result[0]
    assert motion.fps == 30.0 and motion.num_frames == 60 and motion.up_axis == "z"
    assert np.isfinite(motion.poses).all() and np.isfinite(motion.trans).all()
    again = run(edge, 0.0, 3, 2.0, music=_music(nodes)).result[0]
    other = run(edge, 0.0, 4, 2.0, music=_music(nodes)).result[0]
    shorter = run(edge, 1.5, 3, 2.0, music=_music(nodes)).result[0]
    assert shorter.num_frames == 45
    np.testing.assert_array_equal(motion.poses, again.poses)                    # same seed, same dance
    assert not np.allclose(motion.poses, other.poses)


def test_a_jukebox_edge_without_load_jukebox_says_what_to_connect(nodes, monkeypatch):
    from m2pdance.weights_manifest.smoke import SMOKE_FILES

    import dataclasses

    edge = nodes["M2PDanceLoadEDGE"].execute(SMOKE_FILES["edge"], "fp32").result[0]
    edge = dataclasses.replace(edge, config=type(edge.config).preset("jukebox"))
    with pytest.raises(Exception, match="connect Load Jukebox"):
        nodes["M2PDanceMusicToMotionEDGE"].execute(edge, 0.0, 0, 2.0, music=_music(nodes))
    with pytest.raises(Exception, match="connect music"):
        nodes["M2PDanceMusicToMotionEDGE"].execute(edge, 0.0, 0, 2.0)


def test_beat_choreographer_node_dances_to_the_music(nodes):
    motion = nodes["M2PDanceBeatChoreographer"].execute(_music(nodes, 4.0), 0, 1.0, 30.0).result[0]
    assert motion.fps == 30.0 and motion.num_frames == 120 and motion.up_axis == "y"
    spread = motion.poses.reshape(motion.num_frames, -1).std(axis=0).max()
    assert spread > 0.1                                                          # it moves


def test_music_to_motion_edge_bounds_the_length_of_features_too(nodes, monkeypatch):
    import sys
    import types

    node = nodes["M2PDanceMusicToMotionEDGE"]
    monkeypatch.setattr(sys.modules[node.__module__], "edge_motion",
                        lambda *a, **k: pytest.fail("EDGE ran on 20 minutes of features"))
    features = torch.zeros(20 * 60 * 30, 35)
    music_features = types.SimpleNamespace(features=features, fps=30.0, kind="baseline", num_frames=len(features))
    with pytest.raises(Exception, match="longer than 600 s"):
        node.execute(object(), 0.0, 0, 2.0, music_features=music_features)
