"""``m2pdance eval aist`` and ``m2pdance eval videos`` end to end, on CPU, with tiny and random weights.

The AIST++ folder is the SDGPip tests' generated one (:mod:`.training.sdgpip.aist_files`), with 64
frames at 60 fps (16 at the protocol's 15 fps) and a click track as the test sequence's music so
beats exist. Models: the session's smoke weights plus LPIPS-alex and the Kinetics-400 I3D written
in their exact real layouts with random values. Every number in the tables is checked against the
metrics recomputed here from the saved video files (decoded with PyAV directly).
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from m2pdance.cli import main
from m2pdance.m2penc.eval.beat_alignment import beat_alignment, music_beat_frames
from m2pdance.m2penc.eval.i3d import ENTRY_ID as I3D_ENTRY, I3DConfig, i3d_key_shapes
from m2pdance.m2penc.eval.image_metrics import psnr, ssim
from m2pdance.m2penc.eval.lpips import backbone_key_shapes, lin_key_shapes, load_lpips, lpips
from m2pdance.m2penc.eval.motion_metrics import motion_joints
from m2pdance.m2penc.eval.report import CSV_FIELDS, PAPER_TABLE1, PAPER_TABLE3
from m2pdance.m2penc.motion import load_motion
from m2pdance.m2penc.video import VideoWriter
from m2pdance.training.eval_aist import PIPELINES
from m2pdance.training.sdgpip.aist import AISTDataset

from .training.sdgpip import aist_files
from .training.sdgpip.music_files import click_track

SIZE = 64
#: Motion / video frames at 60 fps: 16 frames at the protocol's 15 fps.
AIST_FRAMES = 64
EVAL_FRAMES = 16
SEQ = aist_files.C                       # the test split's one sequence (music mHO5, start tempo 135 bpm)


def _run(argv: list[str]) -> tuple[int, str]:
    """``m2pdance <argv>`` in this process: (exit code, stdout + stderr)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = main(argv)
    return code, buffer.getvalue()


def _decode(path: Path) -> np.ndarray:
    """All frames of a video file, uint8 (F, H, W, 3), straight from PyAV."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_FIELDS
        return {r["row"]: r for r in reader}


def _number(text: str) -> float:
    return float(text)


@pytest.fixture(scope="module")
def metric_models(tmp_path_factory, smoke_models) -> Path:
    """A models folder: the smoke weights (linked) + LPIPS-alex and the I3D in their real layouts, random."""
    models = tmp_path_factory.mktemp("eval") / "models"
    models.mkdir()
    for folder in smoke_models.iterdir():
        if folder.is_dir():
            (models / folder.name).symlink_to(folder)
    g = torch.Generator().manual_seed(0)
    (models / "lpips").mkdir()
    torch.save({k: torch.rand(s, generator=g) for k, s in lin_key_shapes("alex").items()},
               models / "lpips" / "alex.pth")
    torch.save({k: torch.randn(s, generator=g) * (0.05 if len(s) == 4 else 0.01)
                for k, s in backbone_key_shapes("alex").items() if k.startswith("features.")},
               models / "lpips" / "alexnet-owt-7be5be79.pth")     # classifier.* absent: optional
    state = {}
    for key, shape in i3d_key_shapes(I3DConfig()).items():      # the real 12.7 M-number layout
        if key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("bn.weight"):
            state[key] = torch.ones(shape)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    (models / "i3d").mkdir()
    torch.save(state, models / "i3d" / "i3d_pretrained_400.pt")
    return models


def _write_long_video(path: Path, screen: np.ndarray) -> None:
    """:func:`aist_files.write_video` for any number of frames: the same bright box over the frame's
    joints on a dark background, its grey level cycling (the helper's ``100 + 9 i`` stops at 17 frames)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = aist_files.WIDTH, aist_files.HEIGHT, "yuv420p"
        stream.options = {"crf": "1"}
        for i in range(screen.shape[0]):
            image = np.full((aist_files.HEIGHT, aist_files.WIDTH, 3), 20, np.uint8)
            (u0, v0), (u1, v1) = np.floor(screen[i].min(0)).astype(int), np.ceil(screen[i].max(0)).astype(int)
            image[max(v0, 0):v1, max(u0, 0):u1] = (90 + 40 * (i % 4), 200 - 9 * (i % 16), 120)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def aist_root(tmp_path_factory) -> Path:
    """The SDGPip tests' AIST++ folder with 64 frames per sequence and a 135-bpm click track for the test one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aist_files, "FRAMES", AIST_FRAMES)
        mp.setattr(aist_files, "write_video", _write_long_video)
        root = aist_files.write_aist_folder(tmp_path_factory.mktemp("aist"))
    click_track(root / "music" / "mHO5.wav", seconds=2.0, bpm=135.0)
    return root


def _aist_args(aist: Path, models: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "aist", "--aist", str(aist), "--models-dir", str(models), "--out", str(out), "--size", str(SIZE),
            "--steps", "2", "--smoke", "--device", "cpu", "--dtype", "fp32", *extra]


@pytest.fixture(scope="module")
def aist_run(tmp_path_factory, aist_root, metric_models) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # module fixtures run before the autouse one-thread fixture (tests/conftest.py)
    try:
        code, text = _run(_aist_args(aist_root, metric_models, out))
    finally:
        torch.set_num_threads(threads)
    assert code == 0, text
    return out, text


def test_eval_aist_writes_every_video_and_the_tables(aist_run):
    out, text = aist_run
    for pipeline in ("real",) + PIPELINES:
        video = _decode(out / "videos" / pipeline / f"{SEQ}.mp4")
        assert video.shape == (EVAL_FRAMES, SIZE, SIZE, 3), pipeline
        assert f"{SEQ} {pipeline}: {EVAL_FRAMES} frames in" in text or pipeline == "real"
    assert f"[1/1] {SEQ}: {EVAL_FRAMES} frames of ground truth" in text
    reference = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(out / "reference" / f"{SEQ}.png"))
    assert reference.shape == (SIZE, SIZE, 3)
    assert (out / "motions" / "edge" / f"{SEQ}.npz").is_file()
    assert np.load(out / "keypoints" / "m2penc" / f"{SEQ}.npy").shape[:1] == (EVAL_FRAMES,)

    t1, t3 = _rows(out / "table1.csv"), _rows(out / "table3.csv")
    assert list(t1) == ["mm_diffusion", "dabfusion", "m2penc", "edge", "ground_truth"]
    assert list(t3) == ["dns", "p", "pdns"]
    published = {"mm_diffusion": PAPER_TABLE1["mm_diffusion"], "dabfusion": PAPER_TABLE1["dabfusion"],
                 "m2penc": PAPER_TABLE1["ours"], **PAPER_TABLE3}
    for key, paper in published.items():
        row = t1.get(key) or t3[key]
        assert [_number(row[f"{m}_paper"]) for m in ("fvd", "lpips", "psnr", "ssim")] == \
            [paper.fvd, paper.lpips, paper.psnr, paper.ssim]
    assert (PAPER_TABLE1["mm_diffusion"].fvd, PAPER_TABLE1["ours"].psnr, PAPER_TABLE3["dns"].fvd,
            PAPER_TABLE3["p"].ssim) == (1338.57, 21.11, 257.196, 0.857)
    assert t1["mm_diffusion"]["status"] == "paper" and t1["mm_diffusion"]["psnr"] == ""
    md1, md3 = (out / "table1.md").read_text(), (out / "table3.md").read_text()
    assert "| Model | FVD ↓ (paper) | FVD ↓ (ours) |" in md1 and "BAS ↑ (ours) |" in md1
    assert md3.splitlines()[2].startswith("| Guidance Setup |") and "BAS" not in md3.splitlines()[2]
    assert "| MM-Diffusion | 1338.57 | — |" in md1 and "| DabFusion (scaled) | 1440.05 | — | 0.561 |" in md1
    assert "SMOKE WEIGHTS" in md1


def test_eval_aist_values_are_the_metrics_of_the_saved_videos(aist_run, metric_models, aist_root):
    out, _ = aist_run
    rows = {**_rows(out / "table1.csv"), **_rows(out / "table3.csv")}
    real = _decode(out / "videos" / "real" / f"{SEQ}.mp4")
    model = load_lpips(metric_models / "lpips" / "alex.pth", metric_models / "lpips" / "alexnet-owt-7be5be79.pth")
    for pipeline in PIPELINES:
        fake = _decode(out / "videos" / pipeline / f"{SEQ}.mp4")
        row = rows[pipeline]
        assert row["status"] == "measured" and int(row["videos"]) == 1 and int(row["frames"]) == EVAL_FRAMES
        assert _number(row["psnr"]) == pytest.approx(psnr(fake, real).mean, rel=1e-9)
        assert _number(row["ssim"]) == pytest.approx(ssim(fake, real).mean, rel=1e-9)
        assert _number(row["lpips"]) == pytest.approx(lpips(fake, real, model).mean, rel=1e-5)
        # one 16-frame clip per set: FVD needs two, so none (and the notes say why)
        assert row["fvd"] == "" and (row["fvd_real_clips"], row["fvd_generated_clips"]) == ("1", "1")
    assert "m2penc: no FVD: FVD needs >= 2 clips of 16 frames per set; got 1 real and 1 generated" in \
        (out / "table1.md").read_text()

    # BAS at 15 fps against the music's beats, from the saved dances and the AIST++ motion
    dataset = AISTDataset(aist_root, "test")
    beats = music_beat_frames(dataset.music(SEQ), 15.0, dataset.sequence(SEQ).start_bpm)
    gt = motion_joints(dataset.motion(SEQ).resample(15.0).slice(0, EVAL_FRAMES), "y")
    edge = motion_joints(load_motion(out / "motions" / "edge" / f"{SEQ}.npz"), "y")
    keypoints = np.load(out / "keypoints" / "m2penc" / f"{SEQ}.npy")
    expected = {"ground_truth": beat_alignment(gt, beats).score, "edge": beat_alignment(edge, beats).score,
                "m2penc": beat_alignment(keypoints, beats, has_confidence=True).score}
    for key, value in expected.items():
        assert _number(rows[key]["bas"]) == pytest.approx(value, rel=1e-12), key
    assert all(rows[p]["bas"] == "" for p in ("dns", "p", "pdns"))
    with open(out / "clips.csv", newline="") as f:
        clips = {(r["set"], r["clip"]): r for r in csv.DictReader(f)}
    assert set(clips) == {(p, SEQ) for p in PIPELINES + ("ground_truth",)}
    assert _number(clips[("pdns", SEQ)]["psnr"]) == _number(rows["pdns"]["psnr"])


def test_eval_aist_resumes_and_refuses_other_settings(aist_run, aist_root, metric_models):
    out, _ = aist_run
    before = (out / "videos" / "m2penc" / f"{SEQ}.mp4").stat().st_mtime_ns
    code, text = _run(_aist_args(aist_root, metric_models, out, "--pipelines", "m2penc,pdns"))
    assert code == 0, text
    assert f"{SEQ} m2penc: kept" in text and f"{SEQ} pdns: kept" in text and "frames in" not in text
    assert (out / "videos" / "m2penc" / f"{SEQ}.mp4").stat().st_mtime_ns == before
    assert _rows(out / "table1.csv")["edge"]["status"] == "paper"          # not in --pipelines this time
    code, text = _run(_aist_args(aist_root, metric_models, out, "--seed", "7"))
    assert code == 1 and "other settings (seed: 0 then, 7 now)" in text


def test_missing_weights_skip_a_pipeline_with_the_manifest_entry(tmp_path, aist_root, metric_models):
    models = tmp_path / "models"
    models.mkdir()
    for folder in metric_models.iterdir():
        if folder.name not in ("edge", "i3d"):
            (models / folder.name).symlink_to(folder.resolve())
    code, text = _run(_aist_args(aist_root, models, tmp_path / "out", "--pipelines", "edge,p", "--frames", "4"))
    assert code == 0, text
    assert "[edge] skipped, missing weights:" in text and "'edge_checkpoint'" in text
    t1, t3 = _rows(tmp_path / "out" / "table1.csv"), _rows(tmp_path / "out" / "table3.csv")
    assert t1["edge"]["status"] == "skipped" and "edge_checkpoint" in t1["edge"]["note"] and t1["edge"]["psnr"] == ""
    assert t1["m2penc"]["status"] == "paper" and t3["dns"]["status"] == "paper"
    assert t3["p"]["status"] == "measured" and t3["p"]["frames"] == "4" and t3["p"]["fvd"] == ""
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "| — | skipped | — | skipped |" in md and f"manifest entry '{I3D_ENTRY}'" in md


def test_eval_aist_refuses_bad_arguments(tmp_path, aist_root, metric_models):
    for extra, message in ((["--pipelines", "m2penc,foo"], "pipelines must be distinct names"),
                           (["--size", "60"], "multiple of 8"), (["--clips", "0"], "clips must be")):
        code, text = _run(_aist_args(aist_root, metric_models, tmp_path / "out", *extra))
        assert code == 1 and message in text, text
    code, text = _run(_aist_args(tmp_path / "nowhere", metric_models, tmp_path / "out"))
    assert code == 1 and "nowhere" in text and "does not exist" in text
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    code, text = _run(_aist_args(aist_root, metric_models, tmp_path / "busy"))
    assert code == 1 and "not empty" in text
    assert not (tmp_path / "out").exists()


# -- eval videos ------------------------------------------------------------------------------------

def _write_video(path: Path, frames: int, seed: int, size: int = SIZE) -> None:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((frames, 3, 4, 4), generator=g)
    video = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    with VideoWriter(path, fps=15.0) as writer:
        writer.write(video.permute(0, 2, 3, 1).clamp(0, 1))


def test_eval_videos_on_identical_folders(tmp_path, metric_models):
    real, generated = tmp_path / "real", tmp_path / "generated"
    real.mkdir()
    for index, name in enumerate(("a", "b")):
        _write_video(real / f"{name}.mp4", EVAL_FRAMES, index)
    shutil.copytree(real, generated)
    code, text = _run(["eval", "videos", "--generated", str(generated), "--real", str(real), "--out",
                       str(tmp_path / "tables"), "--models-dir", str(metric_models), "--device", "cpu"])
    assert code == 0, text
    rows = _rows(tmp_path / "tables" / "table1.csv")
    assert list(rows) == ["mm_diffusion", "dabfusion", "ours", "generated"]
    row = rows["generated"]
    assert row["psnr"] == "inf" and row["psnr_infinite_frames"] == str(2 * EVAL_FRAMES)
    assert _number(row["ssim"]) == pytest.approx(1.0, abs=1e-12) and _number(row["lpips"]) == 0.0
    assert (row["fvd_real_clips"], row["fvd_generated_clips"]) == ("2", "2")
    assert abs(_number(row["fvd"])) < 1e-6
    md = (tmp_path / "tables" / "table1.md").read_text()
    assert "| generated (this run) | — | 0.000 | — | 0.000 | — | inf | — | 1.000 |" in md
    assert "(all are: PSNR inf)" in md
    assert (tmp_path / "tables" / "clips.csv").read_text().count("\n") == 3


def test_eval_videos_scores_pairs_by_name_and_reports_the_rest(tmp_path, metric_models):
    real, generated = tmp_path / "real", tmp_path / "generated"
    real.mkdir(), generated.mkdir()
    _write_video(real / "a.mp4", 8, 0)
    _write_video(real / "b.mp4", 8, 1)
    _write_video(generated / "a.mp4", 10, 5)                          # two frames longer: trimmed
    _write_video(generated / "extra.mp4", 8, 6)
    (generated / "notes.txt").write_text("not a video")
    code, text = _run(["eval", "videos", "--generated", str(generated), "--real", str(real),
                       "--models-dir", str(metric_models), "--device", "cpu"])
    assert code == 0, text
    row = _rows(generated / "table1.csv")["generated"]                 # --out defaults to --generated
    fake, ref = _decode(generated / "a.mp4")[:8], _decode(real / "a.mp4")
    assert _number(row["psnr"]) == pytest.approx(psnr(fake, ref).mean, rel=1e-9)
    assert _number(row["ssim"]) == pytest.approx(ssim(fake, ref).mean, rel=1e-9)
    assert (row["videos"], row["frames"], row["fvd"]) == ("1", "8", "")
    md = (generated / "table1.md").read_text()
    assert "a: 10 generated vs 8 real frames; the first 8 of each scored" in md
    assert "generated without a real twin (FVD only): extra" in md and "real without a generated twin" in md
    assert "no FVD: FVD needs >= 2 clips of 16 frames per set; got 0 real and 0 generated" in md


def test_eval_videos_refuses_unusable_folders(tmp_path, metric_models):
    real, generated = tmp_path / "real", tmp_path / "generated"
    real.mkdir(), generated.mkdir()
    base = ["eval", "videos", "--models-dir", str(metric_models), "--device", "cpu"]

    def run(gen: Path, ref: Path) -> str:
        code, text = _run(base + ["--generated", str(gen), "--real", str(ref)])
        assert code == 1
        return text

    assert "does not exist" in run(tmp_path / "missing", real)
    assert "holds no video" in run(generated, real)
    _write_video(real / "a.mp4", 4, 0)
    _write_video(generated / "b.mp4", 4, 0)
    assert "no video name is shared" in run(generated, real)
    _write_video(generated / "a.mp4", 4, 0, size=48)
    assert "crop/resize both sets to one size" in run(generated, real)
    shutil.copy(generated / "b.mp4", generated / "b.webm")
    assert "several videos share this name (b.mp4, b.webm)" in run(generated, real)
    assert "is not a folder" in run(real / "a.mp4", real)
    code, text = _run(["eval", "videos", "--generated", str(real), "--real", str(real), "--models-dir",
                       str(tmp_path / "nowhere")])
    assert code == 1 and "models folder" in text
