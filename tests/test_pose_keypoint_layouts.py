"""Our POSE_KEYPOINT against both layouts it must feed: ComfyUI core's and comfyui_controlnet_aux's.

The layouts are data, read from their source and recorded with it in
``fixtures/pose_keypoint_layouts.json``: which arrays a person holds, their point counts, which may
be None or absent, pixel or normalised coordinates, which points a consumer counts as detected, and
how each side's reader parses a person (core's ``SDPoseDrawKeypoints`` reshapes without a None check;
controlnet_aux's ``decode_json_as_poses`` reads with ``.get``). The validator and the two reader
emulations below are driven by that file only.
"""
from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from m2pdance.m2penc.pose.heatmaps import keypoints_to_heatmaps
from m2pdance.m2penc.pose.openpose import BODY, FACE, FEET, LEFT_HAND, RIGHT_HAND
from m2pdance.m2penc.pose.pose_keypoint import (
    heatmaps_to_pose_keypoint, keypoints_to_pose_keypoint, validate_pose_keypoint,
)

FIXTURE = Path(__file__).parent / "fixtures" / "pose_keypoint_layouts.json"
SPEC = json.loads(FIXTURE.read_text())
LAYOUTS = SPEC["layouts"]
CORE, AUX = LAYOUTS["comfyui_core"], LAYOUTS["controlnet_aux"]
W, H = 512, 384

#: A standing figure on a 512 x 384 canvas, OpenPose-18 order (x, y) in pixels.
STANDING = np.array([
    [256, 60], [256, 100], [216, 100], [196, 160], [186, 220], [296, 100], [316, 160], [326, 220],
    [231, 220], [226, 290], [221, 360], [281, 220], [286, 290], [291, 360], [246, 50], [266, 50],
    [236, 56], [276, 56],
], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# The validator and the readers, driven by the fixture


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _points(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64).reshape(-1, 3)


def layout_problems(frames, layout: dict) -> list[str]:
    """Everything in ``frames`` that breaks ``layout`` (empty when it fits)."""
    problems: list[str] = []
    if not isinstance(frames, list) or not frames:
        return ["POSE_KEYPOINT must be a non-empty list of frames"]
    sizes = set()
    for f, frame in enumerate(frames):
        if not isinstance(frame, dict):
            problems.append(f"frame {f} is not a dict")
            continue
        for key, kind in layout["frame_keys"].items():
            value = frame.get(key)
            ok = (isinstance(value, int) and not isinstance(value, bool) and value > 0) if kind == "int" \
                else isinstance(value, list)
            if not ok:
                problems.append(f"frame {f}: {key} must be a {'positive int' if kind == 'int' else kind}")
        if problems:
            continue
        w, h = frame["canvas_width"], frame["canvas_height"]
        sizes.add((w, h))
        threshold = layout["detected_if"]["score_at_least"]
        for p, person in enumerate(frame["people"]):
            where = f"frame {f} person {p}"
            if not isinstance(person, dict):
                problems.append(f"{where} is not a dict")
                continue
            detected = []
            for key, part in layout["parts"].items():
                if key not in person:
                    if part["required"]:
                        problems.append(f"{where}: {key} is missing")
                    continue
                value = person[key]
                if value is None:
                    if not part["nullable"]:
                        problems.append(f"{where}: {key} is None")
                    continue
                counts = [3 * n for n in part["points"]]
                if not isinstance(value, list) or len(value) not in counts:
                    got = len(value) if isinstance(value, list) else type(value).__name__
                    problems.append(f"{where}: {key} must hold {' or '.join(map(str, counts))} numbers, got {got}")
                    continue
                if not all(_is_number(v) for v in value):
                    problems.append(f"{where}: {key} holds non-numbers or non-finite values")
                    continue
                pts = _points(value)
                if (pts[:, 2] < 0).any():
                    problems.append(f"{where}: {key} has negative confidences")
                detected.append((key, pts[pts[:, 2] >= threshold]))
            problems += _coordinate_problems(detected, w, h, layout["coordinates"], where)
    if layout["one_canvas_for_all_frames"] and len(sizes) > 1:
        problems.append(f"frames must share one canvas size, got {sorted(sizes)}")
    return problems


def _coordinate_problems(detected, w: int, h: int, convention: str, where: str) -> list[str]:
    every = np.concatenate([pts for _, pts in detected]) if detected else np.zeros((0, 3))
    if not len(every):
        return []
    normalised = bool((np.abs(every[:, :2]) <= 1).all())
    if convention == "pixels" and normalised and max(w, h) > 2:
        return [f"{where}: detected points all lie in [0, 1] - normalised coordinates, the layout wants pixels"]
    if normalised:                                               # allowed for "pixels or normalised"
        return []
    out = []
    for key, pts in detected:                                    # pixels: inside the canvas, where they are drawn
        cols, rows = np.floor(pts[:, 0]), np.floor(pts[:, 1])   # int() of a value > -1 is its floor or 0
        outside = (pts[:, 0] <= -1) | (cols >= w) | (pts[:, 1] <= -1) | (rows >= h)
        if outside.any():
            out.append(f"{where}: {key} has {int(outside.sum())} detected points outside the {w}x{h} canvas")
    return out


def core_read(frames) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """What SDPoseDrawKeypoints parses, per the fixture: one canvas (frame 0), required arrays reshaped
    without a None check, optional ones read with .get; per person the whole-body (134, 2) points and
    (134,) scores in the draw's order (body, feet, face[:68], hand_right, hand_left)."""
    reader = CORE["reader"]
    _ = frames[0]["canvas_height"], frames[0]["canvas_width"]
    out = []
    for frame in frames:
        people = []
        for person in frame["people"]:
            arrays = {key: np.asarray(person[key], dtype=np.float32).reshape(n, 3)
                      for key, n in reader["reshape"].items()}
            for key, n in reader["optional"].items():
                value = person.get(key)
                arrays[key] = np.asarray(value, dtype=np.float32).reshape(n, 3) if value else np.zeros((n, 3))
            stacked = np.concatenate([arrays["pose_keypoints_2d"], arrays["foot_keypoints_2d"],
                                      arrays["face_keypoints_2d"][:68], arrays["hand_right_keypoints_2d"],
                                      arrays["hand_left_keypoints_2d"]])
            people.append((stacked[:, :2], stacked[:, 2]))
        out.append(people)
    return out


def aux_read(frame) -> list[dict]:
    """What controlnet_aux's decode_json_as_poses makes of one frame, per the fixture: each array via
    .get, empty -> None, length a multiple of 3, c below the detection score -> None."""
    threshold = AUX["detected_if"]["score_at_least"]
    people = []
    for person in frame.get("people", []):
        decoded = {}
        for key in AUX["reader"]["get"]:
            numbers = person.get(key)
            if not numbers:
                decoded[key] = None
                continue
            assert len(numbers) % 3 == 0, key
            decoded[key] = [(x, y) if c >= threshold else None for x, y, c in _points(numbers).tolist()]
        people.append(decoded)
    return people


def assert_fits_both(frames) -> None:
    """Our output: valid in both layouts, parsed by both readers, every written point either detected by
    both consumers or the [0, 0, 0] 'missing' both understand."""
    for name, layout in LAYOUTS.items():
        assert layout_problems(frames, layout) == [], name
    validate_pose_keypoint(frames)
    parsed = core_read(frames)
    assert len(parsed) == len(frames)
    strict = max(CORE["detected_if"]["score_at_least"], AUX["detected_if"]["score_at_least"])
    for frame in frames:
        aux_read(frame)
        for person in frame["people"]:
            for key, value in person.items():
                pts = _points(value)
                missing = pts[:, 2] == 0
                assert (pts[missing] == 0).all(), f"{key}: a missing point must be [0, 0, 0]"
                assert (pts[~missing, 2] >= strict).all(), f"{key}: a written point neither consumer counts"


# ---------------------------------------------------------------------------------------------
# Samples of our output


def _body_frames(count: int = 3) -> np.ndarray:
    points = np.concatenate([STANDING, np.ones((18, 1))], axis=1)
    frames = np.stack([points + [3 * i, 0, 0] for i in range(count)])
    if count > 1:
        frames[1, 4, 2] = 0.1                                    # right wrist not detected in frame 1
    return frames


def _wholebody_frames(count: int = 2, seed: int = 0) -> np.ndarray:
    gen = np.random.default_rng(seed)
    points = np.concatenate([gen.uniform([0, 0], [W - 1, H - 1], (count, 134, 2)), np.ones((count, 134, 1))], -1)
    points[:, BODY, :2] = STANDING
    points[0, 100, 2] = 0.05                                     # one left-hand point missing
    return points


def _heatmap_frames(points: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(points)
    kp = torch.rand(2, points, 3, generator=gen) * 60
    kp[..., 2] = 1
    return keypoints_to_heatmaps(kp, 64, 64)


OUR_OUTPUTS = {
    "body_keypoints": lambda: keypoints_to_pose_keypoint(_body_frames(), W, H),
    "wholebody_keypoints": lambda: keypoints_to_pose_keypoint(_wholebody_frames(), W, H),
    "body_torch_min_confidence_0": lambda: keypoints_to_pose_keypoint(torch.from_numpy(_body_frames()), W, H,
                                                                       min_confidence=0.0),
    "body_heatmaps": lambda: heatmaps_to_pose_keypoint(_heatmap_frames(18), W, H),
    "wholebody_heatmaps": lambda: heatmaps_to_pose_keypoint(_heatmap_frames(134), W, H),
}


# ---------------------------------------------------------------------------------------------
# Tests


def test_fixture_names_its_sources():
    for name, layout in LAYOUTS.items():
        files = [s for s in layout["sources"] if "path" in s]
        assert files, name
        for source in files:
            assert source["repo"].count("/") == 1 and re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source
            assert source["functions"], source
        assert {"pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                "hand_right_keypoints_2d"} <= set(layout["parts"]), name
    assert CORE["coordinates"] == "pixels" and CORE["parts"]["face_keypoints_2d"]["points"] == [70]
    assert "foot_keypoints_2d" in CORE["parts"] and "foot_keypoints_2d" not in AUX["parts"]


@pytest.mark.parametrize("make", OUR_OUTPUTS.values(), ids=OUR_OUTPUTS.keys())
def test_our_pose_keypoint_fits_core_and_controlnet_aux(make):
    assert_fits_both(make())


def test_core_reader_sees_our_points_where_we_put_them():
    points = _wholebody_frames()
    frames = keypoints_to_pose_keypoint(points, W, H)
    kp, scores = core_read(frames)[0][0]
    detected = points[0, :, 2] >= 0.3
    np.testing.assert_allclose(kp[:24][detected[:24]], points[0, :24, :2][detected[:24]], atol=1e-3)  # body, feet
    np.testing.assert_allclose(kp[24:92], points[0, FACE, :2], atol=1e-3)
    # The person's left hand (whole-body 92-112) is written as hand_left, as controlnet_aux does;
    # core's reader puts hand_left last (113-133) - it draws both hands alike.
    hand_left = _points(frames[0]["people"][0]["hand_left_keypoints_2d"])
    assert hand_left[8, 2] == 0 and (hand_left[8] == 0).all()                      # point 100 was missing
    keep = np.arange(21) != 8
    np.testing.assert_allclose(hand_left[keep, :2], points[0, LEFT_HAND, :2][keep])
    np.testing.assert_allclose(kp[113:134][keep], points[0, LEFT_HAND, :2][keep], atol=1e-3)
    np.testing.assert_allclose(kp[92:113], points[0, RIGHT_HAND, :2], atol=1e-3)
    face = _points(frames[0]["people"][0]["face_keypoints_2d"])
    np.testing.assert_allclose(face[68:, :2], points[0, [14, 15], :2])              # + right eye, left eye
    np.testing.assert_allclose(_points(frames[0]["people"][0]["foot_keypoints_2d"])[:, :2], points[0, FEET, :2])
    in_core_order = np.concatenate([detected[:92], detected[RIGHT_HAND], detected[LEFT_HAND]])
    assert (scores[in_core_order] == 1.0).all() and (scores[~in_core_order] == 0).all()


def test_body_only_output_is_drawn_as_a_body_and_nothing_else():
    frames = keypoints_to_pose_keypoint(_body_frames(), W, H)
    kp, scores = core_read(frames)[1][0]
    assert (scores[18:] == 0).all()                              # feet, face, hands: present, all missing
    assert scores[4] == 0 and (scores[[0, 1, 2, 3, 5]] == 1).all()
    np.testing.assert_allclose(kp[:18][scores[:18] > 0], (STANDING + [3, 0])[scores[:18] > 0])
    person = aux_read(frames[1])[0]
    assert person["pose_keypoints_2d"][4] is None and person["pose_keypoints_2d"][0] == (259.0, 60.0)
    assert all(p is None for p in person["face_keypoints_2d"]) and len(person["face_keypoints_2d"]) == 70
    assert all(p is None for p in person["hand_left_keypoints_2d"] + person["hand_right_keypoints_2d"])


@pytest.fixture
def nodes(prepared_home):
    from m2pdance.devtools import comfy_harness as harness

    return harness.all_nodes()


def test_render_pose_maps_output_fits_both(nodes):
    from m2pdance.m2penc.motion import example_motion

    result = nodes["M2PDanceRenderPoseMaps"].execute(example_motion(seconds=1.0), "open body (no files)",
                                                     64, 96, 10.0).result
    pose = result[5]
    assert len(pose) == 10 and (pose[0]["canvas_width"], pose[0]["canvas_height"]) == (64, 96)
    assert_fits_both(pose)
    assert sum(c == 1.0 for c in pose[0]["people"][0]["pose_keypoints_2d"][2::3]) >= 12   # a figure is seen


def test_m2penc_guidance_output_fits_both(nodes):
    music = nodes["M2PDanceLoadMusic"].execute(audio="m2pdance_example_music.wav", start=0.0, duration=1.0)[0]
    features = nodes["M2PDanceJukeboxEncode"].execute(music=music, backend="light (librosa, 35-d, CPU)",
                                                      layer=66, fps=15)[0]
    m2penc = nodes["M2PDanceLoadM2PEnc"].execute(m2penc="m2pdance-tiny-m2penc.safetensors", dtype="fp32")[0]
    _, pose, skeleton, fps = nodes["M2PDanceM2PEncGuidance"].execute(music_features=features, m2penc=m2penc,
                                                                     width=64, height=48)[:4]
    assert len(pose) == skeleton.shape[0] == features.num_frames
    assert (pose[0]["canvas_width"], pose[0]["canvas_height"]) == (64, 48)
    assert_fits_both(pose)


# The validator has teeth: what each side writes, and what would break core's draw node.


def _old_layout() -> list:
    """What we wrote before: no foot key, None face and hands for body-only, a 68-point face otherwise."""
    frames = keypoints_to_pose_keypoint(_body_frames(1), W, H)
    person = frames[0]["people"][0]
    person.pop("foot_keypoints_2d")
    person.update(face_keypoints_2d=None, hand_left_keypoints_2d=None, hand_right_keypoints_2d=None)
    return frames


def test_old_body_only_layout_fits_controlnet_aux_only():
    frames = _old_layout()
    assert layout_problems(frames, AUX) == []
    problems = layout_problems(frames, CORE)
    assert any("face_keypoints_2d is None" in p for p in problems) and len(problems) == 3, problems
    with pytest.raises((TypeError, ValueError)):                 # core's draw node would fail the same way
        core_read(frames)


def test_a_68_point_face_breaks_core_only():
    frames = keypoints_to_pose_keypoint(_wholebody_frames(1), W, H)
    frames[0]["people"][0]["face_keypoints_2d"] = frames[0]["people"][0]["face_keypoints_2d"][:68 * 3]
    assert any("face_keypoints_2d must hold 210" in p for p in layout_problems(frames, CORE))
    assert any("face_keypoints_2d must hold 210" in p for p in layout_problems(frames, AUX))  # DWPose writes 70
    validate_pose_keypoint(frames)                                                           # we still read it
    with pytest.raises(ValueError):
        core_read(frames)


def test_normalised_coordinates_are_controlnet_aux_only():
    frames = copy.deepcopy(keypoints_to_pose_keypoint(_body_frames(1), W, H))
    body = _points(frames[0]["people"][0]["pose_keypoints_2d"])
    body[:, 0] /= W
    body[:, 1] /= H
    frames[0]["people"][0]["pose_keypoints_2d"] = body.reshape(-1).tolist()
    assert layout_problems(frames, AUX) == []
    assert any("normalised" in p for p in layout_problems(frames, CORE))


def test_points_off_the_canvas_and_mixed_canvases_are_caught():
    frames = keypoints_to_pose_keypoint(_body_frames(2), W, H)
    frames[0]["people"][0]["pose_keypoints_2d"][0] = float(W + 5)
    assert any("outside the 512x384 canvas" in p for p in layout_problems(frames, CORE))
    frames = keypoints_to_pose_keypoint(_body_frames(2), W, H)
    frames[1]["canvas_width"] = 256
    assert any("one canvas size" in p for p in layout_problems(frames, CORE))
    assert not any("one canvas size" in p for p in layout_problems(frames, AUX))


def test_each_side_writes_what_its_layout_says():
    """Samples shaped as each producer writes them (per the fixture facts) fit their own layout."""
    person_aux = {"pose_keypoints_2d": [256.0, 60.0, 1.0] + [0.0, 0.0, 0.0] * 17, "face_keypoints_2d": None,
                  "hand_left_keypoints_2d": None, "hand_right_keypoints_2d": [100.0, 100.0, 1.0] * 21}
    aux = [{"people": [person_aux], "canvas_height": H, "canvas_width": W}]
    assert layout_problems(aux, AUX) == []
    assert layout_problems(aux, CORE) != []                      # None arrays: core's draw node cannot read it

    gen = np.random.default_rng(1)
    scores = gen.uniform(0.0, 0.95, 134)
    kp = np.where(scores[:, None] < 0.3, -1.0, gen.uniform([0, 0], [W - 1, H - 1], (134, 2)))

    def flat(idx):
        return np.column_stack([kp[idx], scores[idx]]).reshape(-1).tolist()

    person_core = {"pose_keypoints_2d": flat(list(range(18))), "foot_keypoints_2d": flat(list(range(18, 24))),
                   "face_keypoints_2d": flat(list(range(24, 92)) + [14, 15]),
                   "hand_right_keypoints_2d": flat(list(range(92, 113))),
                   "hand_left_keypoints_2d": flat(list(range(113, 134)))}
    core = [{"canvas_width": W, "canvas_height": H, "people": [person_core]}]
    assert layout_problems(core, CORE) == []
    assert layout_problems(core, AUX) == []                      # readable, though aux counts c < 1 as missing
    assert all(p is None for p in aux_read(core[0])[0]["pose_keypoints_2d"])
    validate_pose_keypoint(core)
