"""Two sets of video files -> PSNR, SSIM, LPIPS per frame of each pair and FVD between the sets (Tables 1, 3).

What ``m2pdance eval videos`` and the AIST++ protocol (``training/eval_aist.py``) both run, so the
tables of either come from one implementation:

* :func:`list_videos` finds the videos of a folder (by extension, hidden files skipped) and keys
  them by file stem; :func:`read_video` decodes one file with PyAV into ``uint8 (F, H, W, 3)``.
* **Pairs.** A generated and a real video with the same stem form a pair. Each pair is scored
  frame by frame at its native size (:mod:`.image_metrics`, :mod:`.lpips`: no resizing), both
  videos cut to their common length when they differ (recorded in :attr:`PairScores.frames_given`).
  Two videos of one pair must have the same frame size (the paper crops both to 640 x 640 first).
* **Pooling.** A set's PSNR / SSIM / LPIPS is the mean over **all scored frames** of all pairs
  (:func:`.image_metrics.pool_videos`: frame-weighted, the per-frame protocol of the pose-driven
  animation papers). PSNR frames identical to their target (``+inf``) are left out of the mean and
  counted (:attr:`.image_metrics.FrameScores.infinite_frames`); the mean is ``inf`` only when every
  frame is identical.
* **FVD** (:mod:`.fvd`): every video of each set -- paired or not -- is cut into consecutive,
  non-overlapping 16-frame clips (a trailing rest shorter than 16 frames is dropped), each clip
  stretched to 224 x 224 and fed to the Kinetics-400 I3D; the Fréchet distance between the two
  sets' Gaussians of the 400-d logits (covariances normalised by N, cd-fvd's ``ddof = 0``). A video
  shorter than 16 frames gives no clip; a set with fewer than :data:`MIN_FVD_CLIPS` clips has no
  FVD, and :attr:`FVDResult.reason` says why. FVD from a few dozen clips is strongly biased upwards
  (the 400 x 400 covariances are singular below 401 clips): compare numbers only at equal clip counts.

Missing metric weights (LPIPS, I3D) are not errors here: :class:`MetricModels` holds ``None`` and a
note naming the manifest entry, and that column is reported as not computed.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import av
import numpy as np
import torch

from ..device import resolve_device
from ..errors import InputError, WeightsError
from .fvd import FeatureStats, frechet_distance, i3d_features
from .i3d import CLIP_FRAMES, INPUT_SIZE, InceptionI3d, load_i3d
from .i3d import FILENAME as I3D_FILENAME
from .i3d import MODELS_FOLDER as I3D_FOLDER
from .image_metrics import FrameScores, pool_videos, psnr, ssim
from .lpips import LPIPS, MIN_SIDE, load_lpips
from .lpips import lpips as lpips_scores

PathLike = Union[str, os.PathLike]
#: File extensions read as videos (case-insensitive).
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif")
#: FVD needs at least this many clips per set (a covariance of one clip is undefined).
MIN_FVD_CLIPS = 2
#: cd-fvd's covariance normalisation (by N); TATS / MM-Diffusion use 1.
FVD_DDOF = 0
#: I3D clips per forward pass.
FVD_BATCH = 4
#: The FVD protocol recorded with the statistics (cd-fvd: consecutive 16-frame clips, stretched to 224).
FVD_SPLIT = "consecutive"
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default progress sink: say nothing."""


# -- files -------------------------------------------------------------------------------------

def list_videos(folder: PathLike, what: str = "video folder") -> dict[str, Path]:
    """The videos of ``folder`` (not recursive), keyed by file stem, sorted by stem.

    Hidden files (``.name``) and files with other extensions are skipped; links are followed.

    Raises:
        InputError: the folder is missing or not a folder; a name holds control characters; two
            videos share a stem (``a.mp4`` and ``a.webm``); no video at all. Every problem is listed.
    """
    path = Path(folder).expanduser()
    if not path.exists():
        raise InputError(f"{what} {path} does not exist")
    if not path.is_dir():
        raise InputError(f"{what} {path} is not a folder; pass the folder holding the video files")
    found: dict[str, list[Path]] = {}
    problems: list[str] = []
    for item in sorted(path.iterdir()):
        if item.name.startswith(".") or item.suffix.lower() not in VIDEO_EXTENSIONS:
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in item.name):
            problems.append(f"{ascii(item.name)}: the name holds control characters (newline, tab ...); rename it")
            continue
        if not item.is_file():
            problems.append(f"{item.name}: not a regular file (a folder, a broken link or a device)")
            continue
        found.setdefault(item.stem, []).append(item)
    problems += [f"{stem}: several videos share this name ({', '.join(p.name for p in paths)}); keep one"
                 for stem, paths in found.items() if len(paths) > 1]
    if problems:
        raise InputError(f"{what} {path} cannot be used:\n  - " + "\n  - ".join(problems))
    if not found:
        raise InputError(f"{what} {path} holds no video ({', '.join(VIDEO_EXTENSIONS)} files)")
    return {stem: paths[0] for stem, paths in sorted(found.items())}


def read_video(path: PathLike, max_frames: Optional[int] = None) -> np.ndarray:
    """Decode a video file's first video stream: ``uint8 (F, H, W, 3)`` RGB (``max_frames``: at most that many).

    Raises:
        InputError: unreadable file, no video stream, no frame, or frames of changing size.
    """
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise InputError(f"{path}: cannot open the video ({type(e).__name__}: {e})") from None
    frames: list[np.ndarray] = []
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: holds no video stream")
        try:
            for frame in container.decode(container.streams.video[0]):
                image = frame.to_ndarray(format="rgb24")
                if frames and image.shape != frames[0].shape:
                    raise InputError(f"{path}: frame {len(frames)} is {image.shape[1]}x{image.shape[0]} but the "
                                     f"first is {frames[0].shape[1]}x{frames[0].shape[0]}; re-encode it at one size")
                frames.append(image)
                if max_frames is not None and len(frames) >= max_frames:
                    break
        except av.FFmpegError as e:
            raise InputError(f"{path}: cannot decode frame {len(frames)} ({type(e).__name__}: {e})") from None
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    return np.stack(frames)


# -- metric networks ---------------------------------------------------------------------------

@dataclass
class MetricModels:
    """The networks the learned metrics need; ``None`` where the weights are missing (see ``notes``).

    Attributes:
        lpips: the LPIPS network (:func:`.lpips.load_lpips`) or ``None``.
        i3d: the Kinetics-400 I3D (:func:`.i3d.load_i3d`) or ``None``.
        notes: why a network is missing, naming the file and its weights-manifest entry.
    """

    lpips: Optional[LPIPS] = None
    i3d: Optional[InceptionI3d] = None
    notes: list[str] = field(default_factory=list)


def i3d_file_in(models_dir: PathLike) -> Path:
    """``<models_dir>/i3d/i3d_pretrained_400.pt``, or its ``.safetensors`` copy when only that exists."""
    path = Path(models_dir) / I3D_FOLDER / I3D_FILENAME
    twin = path.with_suffix(".safetensors")
    return twin if not path.is_file() and twin.is_file() else path


def load_metric_models(lpips_files: Optional[tuple[PathLike, PathLike]], i3d_file: Optional[PathLike],
                       device: Union[str, torch.device, None] = "auto", lpips_net: str = "alex") -> MetricModels:
    """Load LPIPS and the I3D (float32) on ``device``; a missing or unusable file becomes a note, not an error.

    Args:
        lpips_files: ``(linear heads, backbone)`` files (:func:`.lpips.lpips_paths`), or ``None`` to skip LPIPS.
        i3d_file: ``i3d_pretrained_400.pt`` (or a safetensors copy), or ``None`` to skip FVD.
        device: where both run (``"auto"``: CUDA when available).
        lpips_net: ``"alex"`` (the paper's) or ``"vgg"``.
    """
    models = MetricModels()
    dev = resolve_device(device)
    if lpips_files is not None:
        try:
            models.lpips = load_lpips(lpips_files[0], lpips_files[1], net=lpips_net, device=dev)
        except WeightsError as e:
            models.notes.append(f"LPIPS not computed: {e}")
    if i3d_file is not None:
        try:
            models.i3d = load_i3d(i3d_file, device=dev, dtype="fp32")
        except WeightsError as e:
            models.notes.append(f"FVD not computed: {e}")
    return models


# -- scores ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairScores:
    """One generated video against its real counterpart.

    Attributes:
        name: the shared file stem.
        psnr, ssim: per-frame scores; lpips: per-frame distances, or ``None`` (no network / too small).
        frames_given: ``(generated, real)`` frame counts before both were cut to their common length.
    """

    name: str
    psnr: FrameScores
    ssim: FrameScores
    lpips: Optional[FrameScores]
    frames_given: tuple[int, int]

    @property
    def frames(self) -> int:
        """Frames scored (the common length)."""
        return self.psnr.frames


@dataclass(frozen=True)
class FVDResult:
    """FVD between two sets, or why there is none.

    Attributes:
        value: the Fréchet distance, or ``None``.
        real_clips, generated_clips: 16-frame clips in each set.
        reason: why ``value`` is ``None`` (no I3D, too few clips), else ``None``.
    """

    value: Optional[float]
    real_clips: int
    generated_clips: int
    reason: Optional[str] = None


@dataclass(frozen=True)
class SetScores:
    """A generated set against the real set: the pairs' per-frame scores and the FVD.

    Attributes:
        pairs: one :class:`PairScores` per shared name, sorted by name.
        fvd: :class:`FVDResult` over all videos of both sets.
        generated_only, real_only: names present on one side only (left out of the pairs).
        notes: what a reader of the table must know (trimmed pairs, missing networks ...).
    """

    pairs: tuple[PairScores, ...]
    fvd: FVDResult
    generated_only: tuple[str, ...] = ()
    real_only: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def pooled(self, metric: str) -> Optional[FrameScores]:
        """``"psnr"``, ``"ssim"`` or ``"lpips"`` over every scored frame of every pair (``None``: not computed)."""
        if metric not in ("psnr", "ssim", "lpips"):
            raise InputError(f"metric must be psnr, ssim or lpips, got {metric!r}")
        scores = [getattr(p, metric) for p in self.pairs]
        if not scores or any(s is None for s in scores):
            return None
        return pool_videos(scores)

    @property
    def frames(self) -> int:
        """Frames scored over all pairs."""
        return sum(p.frames for p in self.pairs)


def clip_features(i3d: InceptionI3d, video: np.ndarray) -> np.ndarray:
    """I3D logits of a video's consecutive 16-frame clips: ``(n_clips, 400)`` float64, ``(0, 400)`` if shorter.

    Args:
        video: ``uint8 (F, H, W, 3)`` (any size: each clip is stretched to 224 x 224).
    """
    if video.shape[0] < CLIP_FRAMES:
        return np.zeros((0, i3d.config.num_classes), dtype=np.float64)
    return i3d_features(i3d, video, batch_size=FVD_BATCH, clip_frames=CLIP_FRAMES, split=FVD_SPLIT)


def fvd_protocol(i3d: InceptionI3d) -> dict[str, Any]:
    """What the statistics of :func:`fvd_of_features` depend on (as :func:`.fvd.video_stats` records it)."""
    return {"features": f"i3d_logits_{i3d.config.num_classes}", "bn_eps": i3d.config.bn_eps,
            "clip_frames": CLIP_FRAMES, "split": FVD_SPLIT, "center_crop": False, "size": INPUT_SIZE}


def _too_few_clips(real_clips: int, generated_clips: int) -> FVDResult:
    return FVDResult(None, real_clips, generated_clips, reason=(
        f"FVD needs >= {MIN_FVD_CLIPS} clips of {CLIP_FRAMES} frames per set; got {real_clips} real and "
        f"{generated_clips} generated (videos shorter than {CLIP_FRAMES} frames give none)"))


def fvd_of_features(real: Sequence[np.ndarray], generated: Sequence[np.ndarray],
                    protocol: Mapping[str, Any]) -> FVDResult:
    """FVD from per-video clip features (each ``(n_i, 400)``), or the reason there is none."""
    real_x = np.concatenate(list(real)) if real else np.zeros((0, 0))
    gen_x = np.concatenate(list(generated)) if generated else np.zeros((0, 0))
    if min(real_x.shape[0], gen_x.shape[0]) < MIN_FVD_CLIPS:
        return _too_few_clips(int(real_x.shape[0]), int(gen_x.shape[0]))
    stats = [FeatureStats.from_features(x, ddof=FVD_DDOF, protocol=protocol) for x in (real_x, gen_x)]
    value = frechet_distance(stats[0].mean, stats[0].cov, stats[1].mean, stats[1].cov)
    return FVDResult(value, int(real_x.shape[0]), int(gen_x.shape[0]))


def score_pair(name: str, generated: np.ndarray, real: np.ndarray, lpips_model: Optional[LPIPS]) -> PairScores:
    """PSNR, SSIM and LPIPS per frame of one pair (cut to the common length, same frame size required).

    Args:
        generated, real: ``uint8 (F, H, W, 3)`` each.
    Raises:
        InputError: different frame sizes, or frames smaller than SSIM's 11 x 11 window.
    """
    if generated.shape[1:] != real.shape[1:]:
        raise InputError(f"{name}: the generated frames are {generated.shape[2]}x{generated.shape[1]} but the real "
                         f"ones {real.shape[2]}x{real.shape[1]}; crop/resize both sets to one size first")
    count = min(generated.shape[0], real.shape[0])
    gen, ref = generated[:count], real[:count]
    small = min(gen.shape[1:3]) < MIN_SIDE
    lp = None if lpips_model is None or small else lpips_scores(gen, ref, lpips_model)
    return PairScores(name, psnr(gen, ref), ssim(gen, ref), lp, (int(generated.shape[0]), int(real.shape[0])))


def real_set_features(real: Mapping[str, Path], i3d: Optional[InceptionI3d],
                      progress: Progress = _quiet) -> Optional[list[np.ndarray]]:
    """I3D clip features of every real video (computed once when several generated sets share the real set)."""
    if i3d is None:
        return None
    features = []
    for index, (name, path) in enumerate(real.items(), start=1):
        features.append(clip_features(i3d, read_video(path)))
        progress(f"FVD features of the real videos: {index}/{len(real)} ({name})")
    return features


def score_sets(generated: Mapping[str, Path], real: Mapping[str, Path], models: MetricModels, *,
               real_features: Optional[list[np.ndarray]] = None, progress: Progress = _quiet) -> SetScores:
    """Score a generated set against the real set (module docstring: pairs, pooling, FVD).

    Args:
        generated, real: stem -> video file (:func:`list_videos`).
        models: the LPIPS / I3D networks (either may be ``None``).
        real_features: the real set's clip features from :func:`real_set_features` (computed here if ``None``).
        progress: receives one line per scored video.
    Raises:
        InputError: a pair of different frame sizes, an unreadable video.
    """
    if real_features is None:
        real_features = real_set_features(real, models.i3d, progress)
    real_clips = sum(f.shape[0] for f in real_features or [])
    # generated clips only go through the I3D when an FVD can exist (the real set has enough clips)
    run_i3d = models.i3d is not None and real_clips >= MIN_FVD_CLIPS
    pairs: list[PairScores] = []
    gen_features: list[np.ndarray] = []
    gen_clips = 0
    notes: list[str] = []
    for index, name in enumerate(generated, start=1):
        video = read_video(generated[name])
        gen_clips += video.shape[0] // CLIP_FRAMES
        if run_i3d:
            gen_features.append(clip_features(models.i3d, video))
        if name in real:
            pair = score_pair(name, video, read_video(real[name]), models.lpips)
            pairs.append(pair)
            if pair.frames_given[0] != pair.frames_given[1]:
                notes.append(f"{name}: {pair.frames_given[0]} generated vs {pair.frames_given[1]} real frames; "
                             f"the first {pair.frames} of each scored")
        progress(f"scored {index}/{len(generated)}: {name}")
    if models.i3d is None:
        fvd = FVDResult(None, 0, 0, reason="no I3D network (see the notes)")
    elif not run_i3d:
        fvd = _too_few_clips(real_clips, gen_clips)
    else:
        fvd = fvd_of_features(real_features or [], gen_features, fvd_protocol(models.i3d))
    if models.lpips is not None and pairs and any(p.lpips is None for p in pairs):
        notes.append(f"LPIPS not computed: frames smaller than {MIN_SIDE} x {MIN_SIDE} pixels")
    infinite = sum(p.psnr.infinite_frames for p in pairs)
    if infinite:
        notes.append(f"{infinite} of {sum(p.frames for p in pairs)} frames are identical to the real ones "
                     f"(PSNR +inf); the PSNR mean is over the others" +
                     (" (all are: PSNR inf)" if infinite == sum(p.frames for p in pairs) else ""))
    return SetScores(tuple(pairs), fvd, tuple(n for n in generated if n not in real),
                     tuple(n for n in real if n not in generated), tuple(notes + list(models.notes)))


def pair_folders(generated_dir: PathLike, real_dir: PathLike) -> tuple[dict[str, Path], dict[str, Path]]:
    """The videos of both folders (:func:`list_videos`), checked to share at least one file name.

    Raises:
        InputError: a folder is missing, holds no video, or the two share no file name.
    """
    generated = list_videos(generated_dir, "generated-video folder")
    real = list_videos(real_dir, "real-video folder")
    if not set(generated) & set(real):
        raise InputError(f"no video name is shared by {generated_dir} and {real_dir}: pairs are matched by file name "
                         f"without the extension (generated: {', '.join(list(generated)[:5])}; real: "
                         f"{', '.join(list(real)[:5])})")
    return generated, real


def score_folders(generated_dir: PathLike, real_dir: PathLike, models: MetricModels,
                  progress: Progress = _quiet) -> SetScores:
    """:func:`score_sets` on two folders (:func:`pair_folders`)."""
    generated, real = pair_folders(generated_dir, real_dir)
    return score_sets(generated, real, models, progress=progress)


def mean_or_none(values: Iterable[Optional[float]]) -> Optional[float]:
    """The mean of the finite values, or ``None`` when there is none."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(kept) / len(kept) if kept else None
