"""benchmarks/demo_quality.py: its metric functions on arrays with known answers, and one quick run end to end."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def _load_benchmark():
    path = REPO_ROOT / "benchmarks" / "demo_quality.py"
    spec = importlib.util.spec_from_file_location("demo_quality_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


dq = _load_benchmark()


# ----- IoU and foreground -----------------------------------------------------------------------------------

def _rect(h, w, top, left, bottom, right) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def test_mask_iou_of_rectangles_is_exact():
    a = _rect(20, 20, 0, 0, 10, 10)            # 100 px
    b = _rect(20, 20, 5, 5, 15, 15)            # 100 px, overlap 5 x 5 = 25
    iou = dq.mask_iou(torch.stack([a, a, a]), torch.stack([b, a, torch.zeros_like(a)]))
    assert iou.shape == (3,)
    assert iou[0].item() == pytest.approx(25 / 175)
    assert iou[1].item() == 1.0
    assert iou[2].item() == 0.0


def test_mask_iou_of_two_empty_masks_is_one():
    empty = torch.zeros(1, 8, 8, dtype=torch.bool)
    assert dq.mask_iou(empty, empty).tolist() == [1.0]


def test_foreground_mask_finds_a_rectangle_on_a_gradient_background():
    h, w = 16, 12
    rows = torch.linspace(180, 240, h)[:, None, None].expand(h, w, 3)
    background = rows.round().to(torch.uint8)
    frame = background.clone()
    frame[4:10, 3:8] = torch.tensor([200, 40, 45], dtype=torch.uint8)
    frames = torch.stack([frame, background])                      # (2, H, W, 3) uint8
    fg = dq.foreground_mask(frames, background, threshold=40)
    assert fg.shape == (2, h, w)
    assert torch.equal(fg[0], _rect(h, w, 4, 3, 10, 8))
    assert not fg[1].any()
    # float frames in [0, 1] give the same answer
    assert torch.equal(dq.foreground_mask(frames.float() / 255, background.float() / 255, 40), fg)


def test_foreground_threshold_is_strict_euclidean_rgb_distance():
    background = torch.zeros(1, 1, 3, dtype=torch.uint8)
    at = torch.tensor([[[[30, 40, 0]]]], dtype=torch.uint8)        # distance exactly 50
    assert not dq.foreground_mask(at, background, threshold=50)[0, 0, 0]
    assert dq.foreground_mask(at, background, threshold=49.9)[0, 0, 0]


# ----- colours ----------------------------------------------------------------------------------------------

def test_colour_distance_zero_for_identical_and_known_for_shifted():
    frames = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 200, 40, 45
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, 1:3, 1:3] = True
    colour = dq.mean_colour(frames, mask)
    assert colour.tolist() == [200.0, 40.0, 45.0]
    assert dq.colour_distance(colour, torch.tensor([200, 40, 45])) == 0.0
    shifted = frames.clone()
    shifted[..., 0] -= 30
    shifted[..., 1] += 40                                           # a (−30, +40, 0) shift: distance 50
    assert dq.colour_distance(dq.mean_colour(shifted, mask), colour) == pytest.approx(50.0)


def test_mean_colour_ignores_pixels_outside_the_mask_and_is_nan_when_empty():
    frames = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
    frames[0, 0, 0] = torch.tensor([10, 20, 30], dtype=torch.uint8)
    frames[0, 1, 1] = torch.tensor([30, 40, 50], dtype=torch.uint8)
    mask = torch.tensor([[[True, False], [False, True]]])
    assert dq.mean_colour(frames, mask).tolist() == [20.0, 30.0, 40.0]
    assert all(math.isnan(v) for v in dq.mean_colour(frames, torch.zeros_like(mask)).tolist())


def test_colour_distance_of_part_stacks_is_the_mean_of_the_parts():
    a = torch.tensor([[200.0, 40.0, 45.0], [50.0, 70.0, 120.0]])
    b = a + torch.tensor([[30.0, 40.0, 0.0], [0.0, 0.0, 10.0]])     # distances 50 and 10
    assert dq.colour_distance(a, b) == pytest.approx(30.0)


def test_part_masks_and_colours_of_the_reference_photo():
    """The reference photo's top and trousers, found by rendering its pose: disjoint, top above bottom, and their
    mean colours those of its scheme (Lambert-shaded: within 60 of the flat colour)."""
    from m2pdance.m2penc.body.open_body import OpenBody
    from m2pdance.m2penc.render.appearance import a_pose, get_scheme, reference_photo
    from m2pdance.m2penc.render.pose_maps import motion_camera

    body, pose, trans = OpenBody(), a_pose()[None], torch.zeros(1, 3)
    masks = dq.part_masks(body, pose, trans, motion_camera(body, pose, trans, 128, 128))
    top, bottom = masks["top"][0], masks["bottom"][0]
    assert top.sum() > 150 and bottom.sum() > 100 and not (top & bottom).any()
    rows = torch.arange(128)[:, None].expand(128, 128)
    assert rows[top].float().mean() < rows[bottom].float().mean() - 15
    for name in ("red_jeans", "blue_brown"):
        scheme = get_scheme(name)
        colours = dq.part_colours(reference_photo(name, 128)[None], masks)
        assert (colours - torch.tensor([scheme.top, scheme.bottom]).float()).norm(dim=-1).max() < 60, (name, colours)


# ----- beat alignment ---------------------------------------------------------------------------------------

def test_beat_times_to_frames():
    assert dq.beat_times_to_frames([0.0, 0.49, 1.0, 1.01], 15).tolist() == [0, 7, 15]


def test_resample_keypoints_is_linear_in_time():
    keypoints = np.stack([np.arange(4.0), 10 * np.arange(4.0)], -1)[:, None, :]          # (4, 1, 2) at 15 fps
    up = dq.resample_keypoints(keypoints, 15.0, 60.0)
    assert up.shape == (13, 1, 2)                                                      # 0.2 s at 60 fps
    assert np.allclose(up[:, 0, 0], np.arange(13) / 4.0) and np.allclose(up[:, 0, 1], 10 * np.arange(13) / 4.0)


def _stepping(frames: int, beats: np.ndarray) -> np.ndarray:
    """Two joints moving right with speed ``sin^2(pi * phase)``: zero at every beat, ``(F, 2, 2)``.

    Between beats ``a < b`` the phase is ``(t - a) / (b - a)``; before the first and after the last beat
    the joints keep moving at a constant speed, so the only speed minima are the beats.
    """
    t = np.arange(frames, dtype=np.float64)
    speed = np.ones(frames)
    for a, b in zip(beats[:-1], beats[1:]):
        seg = (t >= a) & (t <= b)
        speed[seg] = np.sin(np.pi * (t[seg] - a) / (b - a)) ** 2
    x = np.cumsum(speed)
    y = np.zeros(frames)
    return np.stack([np.stack([x, y], -1), np.stack([x + 5, y + 3], -1)], axis=1)


def test_matched_bas_beats_shuffled_on_motion_that_stops_at_its_beats():
    """Motion at 60 fps stopping on its song's beats; BAS resamples at 60 fps, so the frames stay the frames."""
    beats = [np.arange(10, 190, 20), np.arange(13, 190, 27), np.arange(5, 190, 33)]   # three tempos, 60-fps frames
    keypoints = [_stepping(200, b) for b in beats]
    times = [b / 60.0 for b in beats]
    matched, shuffled = dq.matched_and_shuffled_bas(keypoints, times, 60.0)
    assert matched.shape == shuffled.shape == (3,)
    # the first and last beats have no speed minimum (constant speed outside them), the others do
    assert np.all(matched > 0.75)
    assert np.all(shuffled < matched - 0.3)
    assert dq.keypoint_bas(keypoints[0], times[0], 60.0) == matched[0]
    others = [dq.keypoint_bas(keypoints[1], times[j], 60.0) for j in (0, 2)]
    assert shuffled[1] == pytest.approx(np.mean(others))
    with pytest.raises(ValueError):
        dq.matched_and_shuffled_bas(keypoints[:1], times[:1], 60.0)


def test_bas_counts_bailandos_frames_at_60_fps():
    """The same motion sampled at 15 fps scores as its 60-fps original (Bailando's constants are 60-fps frames)."""
    beats = np.arange(12, 236, 32)                                # 112.5 BPM at 60 fps, on the 15-fps grid
    fine = _stepping(240, beats)
    coarse = fine[::4]                                            # the same motion at 15 fps
    assert dq.keypoint_bas(coarse, beats / 60.0, 15.0) == pytest.approx(dq.keypoint_bas(fine, beats / 60.0, 60.0),
                                                                      abs=0.1)
    shifted = (beats + 16) / 60.0                                 # half a beat off: far outside the 60-fps tolerance
    assert dq.keypoint_bas(coarse, shifted, 15.0) < 0.3


def test_keypoint_bas_is_nan_when_no_beat_falls_inside():
    keypoints = _stepping(30, np.array([0, 10, 20, 29]))
    assert math.isnan(dq.keypoint_bas(keypoints, [100 / 15, 200 / 15], 15.0))


# ----- the whole script, quick, on a demo-format folder of seeded initial weights ---------------------------

@pytest.fixture(scope="module")
def demo_format_folder(tmp_path_factory) -> Path:
    """The quick recipe's initial models (untrained) and a fresh M2PEnc, laid out as the demo set."""
    from m2pdance.m2penc.champ.models import save_champ_models
    from m2pdance.m2penc.encoder import M2PEnc
    from m2pdance.m2penc.encoder.weights import save_m2penc
    from m2pdance.training.demo.recipe import DemoRecipe
    from m2pdance.weights_manifest.demo import DEMO_FILES, RECORD, demo_available, make_record

    root = tmp_path_factory.mktemp("demo_set")
    recipe = DemoRecipe.preset("quick")
    models = recipe.initial_models()
    champ_dir = (root / DEMO_FILES["denoising_unet"]).parent
    save_champ_models(models, champ_dir, [s for s in models.modules() if s not in ("vae", "image_encoder")])
    for stem, role in (("vae", "vae"), ("image_encoder", "image_encoder")):
        save_champ_models(models, root / "tmp", [stem])
        (root / DEMO_FILES[role]).parent.mkdir(parents=True, exist_ok=True)
        (root / "tmp" / f"{stem}.safetensors").rename(root / DEMO_FILES[role])
    torch.manual_seed(0)
    encoder = M2PEnc(recipe.m2penc_config())
    if encoder.config.input_standardize:            # stage 1 would measure them on its data
        encoder.set_input_statistics(torch.zeros(encoder.config.in_dim), torch.ones(encoder.config.in_dim))
    save_m2penc(encoder, root / DEMO_FILES["m2penc"])
    (root / RECORD).write_text(json.dumps(make_record(root, {"revision": "test"})))
    assert demo_available(root)
    return root


def test_quick_run_end_to_end(demo_format_folder, tmp_path, capsys):
    out = tmp_path / "out"
    res = dq.main(["--weights", str(demo_format_folder), "--quick", "--device", "cpu", "--seconds", "4",
                   "--frames", "8", "--steps", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    for goal in ("ratio", "goal >= 2", "choreographer's own keypoints", "pose path  IoU", "music path IoU", "diagonal"):
        assert goal in printed
    assert len(res["bas"]["matched"]) == 2 and len(res["bas"]["choreography"]["matched"]) == 2
    assert "true beats" in printed and len(res["bas"]["true_beats"]["matched"]) == 2
    # the choreographer dances on the tracked beats: they match its keypoints better than the true ones
    assert res["bas"]["choreography"]["mean_matched"] > res["bas"]["choreography_true_beats"]["mean_matched"] + 0.1
    assert res["variety"] == "looped" and res["bas_fps"] == 60.0
    from m2pdance.training.demo.recipe import DemoRecipe

    assert res["max_joint_speed"] == DemoRecipe().max_joint_speed          # a record without a recipe: the recipe's
    assert 0 <= res["iou"]["pose"] <= 1 and 0 <= res["iou"]["music"] <= 1
    assert [r["path"] for r in res["iou"]["runs"]] == ["pose", "pose", "music"]
    assert set(res["colour"]["matrix"]) == {"red_jeans", "blue_brown"}
    saved = json.loads((out / "demo_quality.json").read_text())
    assert saved["bas"]["ratio"] == pytest.approx(res["bas"]["ratio"], nan_ok=True)
    from PIL import Image

    sheet = Image.open(out / "demo_quality.png")
    assert sheet.size == (9 * 128, 3 * 128)          # reference + 4 frames + 4 masks, one row per run


def test_the_ceiling_dances_as_the_demo_set_was_trained(demo_format_folder, tmp_path):
    """The choreographer's settings come from the set's recorded recipe; a recipe from before the speed limit
    was a setting danced at the choreographer's default."""
    import shutil

    from m2pdance.m2penc.motion.choreography import MAX_JOINT_SPEED
    from m2pdance.weights_manifest.demo import RECORD

    folder = shutil.copytree(demo_format_folder, tmp_path / "set")
    record = json.loads((folder / RECORD).read_text())
    for recipe, expected in (({"variety": "by_level"}, ("by_level", MAX_JOINT_SPEED)),
                             ({"variety": "looped", "max_joint_speed": 7.5}, ("looped", 7.5))):
        (folder / RECORD).write_text(json.dumps({**record, "recipe": recipe}))
        assert dq._recipe_choreography(folder) == expected
    (folder / RECORD).write_text(json.dumps({**record, "recipe": {"variety": "looped", "max_joint_speed": "fast"}}))
    with pytest.raises(SystemExit, match="unusable recipe"):              # checked before any model loads
        dq._recipe_choreography(folder)


def test_off_beats_sit_half_way_between_beats():
    assert dq.off_beats([0.0, 1.0, 2.0, 3.1]).tolist() == pytest.approx([0.5, 1.5, 2.55])
    assert dq.off_beats([0.4]).tolist() == []


def test_songs_are_scored_against_the_metrics_tracked_beats(tmp_path):
    """heldout_songs: beat_times are music_beat_frames at 60 fps (Bailando's music beats); true_beats are the
    synthesiser's, which the tracker finds a constant ~34 ms late (the onset envelope's latency)."""
    from m2pdance.m2penc.audio.io import load_audio
    from m2pdance.m2penc.eval.beat_alignment import music_beat_frames

    songs = dq.heldout_songs(None, 2, 6.0, 0, tmp_path)
    assert len(songs) == 2
    for song in songs:
        frames = music_beat_frames(load_audio(song.path, duration=None), 60.0)
        assert song.beat_times == pytest.approx((frames / 60.0).tolist())
        true = np.asarray(song.true_beats)
        lag = np.array([min(np.asarray(song.beat_times) - t, key=abs) for t in true])
        assert np.median(lag) == pytest.approx(0.034, abs=0.012)          # late by a constant ...
        assert np.mean(np.abs(lag - np.median(lag)) < 0.02) >= 0.8         # ... bar a beat near the song's end
