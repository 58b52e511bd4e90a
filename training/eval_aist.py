"""The paper's AIST++ evaluation (§4.2-4.3, §5; Tables 1 and 3): generate, save, score, tabulate.

``m2pdance eval aist`` runs this end to end. Why it lives in ``training/``: it reads AIST++ through
the SDGPip source (:class:`.sdgpip.sources.AISTSource`: the split and ignore lists, camera C09, the
one square dancer crop per sequence and the matching crop camera), which ``m2penc`` may not import;
everything it computes comes from ``m2penc`` (generation, :mod:`m2penc.eval` metrics and tables).

**Clips.** The sequences of ``splits/crossmodal_test.txt`` minus the ignore list, sorted by name
(``clips``: the first N). Per sequence, at ``fps`` (default the paper's 15) and ``size`` (default
640): the C09 video cropped around the dancer and resized to ``size x size``, for
``min(motion, music, video, frames)`` frames from the start; its **first frame is the reference
photo** (§4.3.1). Every pipeline generates exactly that many frames from the music / motion of
the same span, with the same seed for every clip.

**Pipelines** (:data:`PIPELINES`):

* ``m2penc`` (Table 1, "Ours"): music -> M2PEnc guidance -> Champ (the whole paper pipeline).
* ``edge`` (Table 1, extra row): music -> EDGE's SMPL dance -> depth / normal / semantic /
  skeleton maps rendered with a camera framing that dance -> Champ's pose guidance (all four).
* ``dns``, ``p``, ``pdns`` (Table 3): the *ground-truth* AIST++ motion rendered through the crop
  camera (so maps and real frames align pixel for pixel) -> Champ's pose guidance with depth +
  normal + semantic, the DWPose skeleton only, or all four.

Missing weights skip a pipeline (its row says which manifest entry is missing), never the run.

**Output** (``out/``): ``reference/<seq>.png``; ``videos/real/<seq>.mp4`` and
``videos/<pipeline>/<seq>.mp4`` (H.264 at CRF :data:`EVAL_CRF`, the music muxed in); the generated
dances behind BAS (``motions/edge/<seq>.npz``, ``keypoints/m2penc/<seq>.npy``); ``table1.md/.csv``,
``table3.md/.csv``, ``clips.csv`` (per clip and pipeline) and ``run.json`` (settings, clips).
**All metrics are computed from the saved files** (:mod:`m2penc.eval.video_sets`), the real side
too, so anyone can recompute them from ``videos/``; both sides go through the same codec.
A rerun with the same settings keeps the videos that exist (resume); other settings are refused.

**BAS** (Bailando's, :mod:`m2penc.eval.beat_alignment`) at the video rate: ``m2penc`` from the
keypoints of M2PEnc's heatmaps, ``edge`` from EDGE's SMPL joints, and the AIST++ motion itself as a
reference row; music beats tracked with the genre's start tempo (EDGE's AIST++ convention).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ..m2penc.audio.edge_slices import edge_music_windows
from ..m2penc.audio.features import extract_music_features
from ..m2penc.audio.featureset import JUKEBOX
from ..m2penc.audio.io import trim_audio
from ..m2penc.body import BodyModel, make_body
from ..m2penc.champ import GUIDANCE_TYPES, ChampModels, ReferenceState, encode_reference, load_champ_files
from ..m2penc.champ.long_video import render_champ_video
from ..m2penc.champ.pose_map_guidance import PoseMapGuidance
from ..m2penc.champ.sampler import CHAMP_GUIDANCE_SCALE
from ..m2penc.checkpoint import atomic_write
from ..m2penc.device import resolve_device, resolve_dtype
from ..m2penc.encoder import M2PEnc, load_m2penc
from ..m2penc.encoder.streaming import M2PEncGuidance
from ..m2penc.encoder.weights import read_m2penc_config
from ..m2penc.errors import InputError, M2PDanceError, WeightsError
from ..m2penc.eval.beat_alignment import beat_alignment, music_beat_frames
from ..m2penc.eval.lpips import lpips_paths
from ..m2penc.eval.motion_metrics import motion_joints
from ..m2penc.eval.report import (PAPER_TABLE1, PAPER_TABLE3, Measured, Table, TableRow, paper_rows,
                                  render_pairs_csv, write_table, write_text)
from ..m2penc.eval.video_sets import (MetricModels, SetScores, i3d_file_in, load_metric_models, mean_or_none,
                                      real_set_features, score_sets)
from ..m2penc.jukebox import DEFAULT_LAYER
from ..m2penc.motion import SMPLMotion, load_motion, save_motion
from ..m2penc.motion.edge.checkpoint import EDGEModelBundle, load_edge
from ..m2penc.motion.edge.generate import edge_motion_from_windows
from ..m2penc.pose.heatmaps import heatmap_to_canvas, heatmaps_to_keypoints
from ..m2penc.reference_image import prepare_reference
from ..m2penc.render.camera import PinholeCamera
from ..m2penc.render.pose_maps import motion_camera, render_pose_maps
from ..m2penc.sampling import GuidanceSource, LongVideoOptions
from ..m2penc.sampling.plan import DEFAULT_SEGMENT_SECONDS, segment_frames_for
from ..m2penc.timeline import DEFAULT_FPS
from ..m2penc.video import VideoWriter
from ..weights_manifest import entry
from ..weights_manifest.smoke import SMOKE_FILES
from .sdgpip.aist import CROP_SIZE
from .sdgpip.sources import AISTSource, Clip

PathLike = Union[str, os.PathLike]
Log = Callable[[str], None]

#: Every pipeline, in table order.
PIPELINES: tuple[str, ...] = ("m2penc", "edge", "dns", "p", "pdns")
TABLE1_PIPELINES: tuple[str, ...] = ("m2penc", "edge")
TABLE3_PIPELINES: tuple[str, ...] = ("dns", "p", "pdns")
#: Champ guidance encoders each map-driven pipeline uses.
POSE_GUIDANCE: dict[str, tuple[str, ...]] = {
    "edge": GUIDANCE_TYPES, "dns": ("depth", "normal", "semantic_map"), "p": ("dwpose",), "pdns": GUIDANCE_TYPES}
#: Champ guidance type -> the renderer's map of it.
RENDERED_MAP: dict[str, str] = {"depth": "depth", "normal": "normal", "semantic_map": "semantic", "dwpose": "skeleton"}
LABELS: dict[str, str] = {
    "m2penc": "Ours: music -> M2PEnc -> Champ (m2penc)",
    "edge": "EDGE motion -> rendered maps -> Champ (edge)",
    "dns": "DNS: depth + normal + semantic of the GT motion (dns)",
    "p": "P: DWPose skeleton of the GT motion (p)",
    "pdns": "PDNS: skeleton + depth + normal + semantic of the GT motion (pdns)",
    "ground_truth": "AIST++ ground-truth motion (BAS reference)",
}
#: H.264 quality of every saved video (real and generated alike): low enough that the codec
#: barely moves the metrics, high enough that 20 clips at 640 x 640 stay small.
EVAL_CRF = 12
#: Frames rendered per batch for the pose maps.
RENDER_BATCH = 8
REAL = "real"
RUN_RECORD = "run.json"
RUN_KIND = "m2pdance-aist-eval"
SEQUENCE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class PipelineSkipped(M2PDanceError):
    """A pipeline cannot run (weights missing or unusable); the message says which and how to fix it."""


# -- settings ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalWeights:
    """Where every weights file of the protocol is (see :meth:`in_models_dir`).

    Attributes:
        champ: the ``denoising_unet`` file; ``reference_unet``, ``motion_module`` and
            ``guidance_encoder_<type>`` are read from its folder.
        smoke: the tiny random smoke files' names were used (numbers are then meaningless).
    """

    champ: Path
    vae: Path
    image_encoder: Path
    m2penc: Path
    edge: Path
    vqvae: Path
    prior: Path
    smpl: Path
    lpips_lin: Path
    lpips_backbone: Path
    i3d: Path
    smoke: bool = False

    @classmethod
    def in_models_dir(cls, models_dir: PathLike, smoke: bool = False, lpips_net: str = "alex") -> "EvalWeights":
        """The manifest's file names under a ComfyUI ``models`` folder (``smoke``: the smoke files' names
        for Champ, VAE, CLIP, M2PEnc, EDGE and Jukebox; LPIPS, I3D and SMPL keep their real names)."""
        models = Path(models_dir).expanduser()
        if not models.is_dir():
            raise InputError(f"models folder {models} does not exist or is not a folder; pass ComfyUI's models "
                             f"folder (see `m2pdance weights list --models-dir ...`)")

        def at(entry_id: str, smoke_key: Optional[str] = None) -> Path:
            e = entry(entry_id)
            if smoke and smoke_key:
                return models / e.folder / SMOKE_FILES[smoke_key]
            return e.path_in(models)

        lin, backbone = lpips_paths(models, lpips_net)
        i3d = i3d_file_in(models)
        return cls(champ=at("champ_denoising_unet", "champ"), vae=at("vae_sd_vae_ft_mse", "vae"),
                   image_encoder=at("clip_image_encoder", "clip_vision"), m2penc=at("m2penc_paper", "m2penc"),
                   edge=at("edge_checkpoint", "edge"), vqvae=at("jukebox_vqvae", "jukebox_vqvae"),
                   prior=at("jukebox_prior_5b", "jukebox_prior"), smpl=at("smpl_neutral"), lpips_lin=lin,
                   lpips_backbone=backbone, i3d=i3d, smoke=smoke)


@dataclass(frozen=True)
class AISTEvalOptions:
    """How the protocol runs.

    Attributes:
        pipelines: which of :data:`PIPELINES` to run, in any order.
        clips: evaluate the first N test sequences (``None``: all, 20 in the official split).
        frames: at most this many frames per clip (``None``: the whole sequence).
        size: side of the square crops and of the generated videos (multiple of 8, >= 32).
        fps: video rate of the protocol (the paper's 15; M2PEnc must have been trained at it).
        steps: DDIM steps per segment; seed: the seed of every clip.
        guidance_scale: Champ's classifier-free guidance (3.5).
        device, dtype: where the generators run (metrics always run in float32 on ``device``).
        lpips_net: ``"alex"`` (the paper's LPIPS) or ``"vgg"``.
    """

    pipelines: tuple[str, ...] = PIPELINES
    clips: Optional[int] = None
    frames: Optional[int] = None
    size: int = CROP_SIZE
    fps: float = DEFAULT_FPS
    steps: int = 20
    seed: int = 0
    guidance_scale: float = CHAMP_GUIDANCE_SCALE
    device: str = "auto"
    dtype: str = "auto"
    lpips_net: str = "alex"

    def __post_init__(self) -> None:
        unknown = [p for p in self.pipelines if p not in PIPELINES]
        if not self.pipelines or unknown or len(set(self.pipelines)) != len(self.pipelines):
            raise InputError(f"pipelines must be distinct names out of {', '.join(PIPELINES)}; got "
                             f"{', '.join(self.pipelines) or 'none'}")
        for name in ("clips", "frames"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"{name} must be a whole number >= 1 (or None for all), got {value!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 32 or self.size % 8:
            raise InputError(f"size must be a multiple of 8 of at least 32 pixels (LPIPS needs 32), got {self.size!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"steps must be a whole number >= 1, got {self.steps!r}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps must be a positive number, got {self.fps!r}")
        if not (math.isfinite(self.guidance_scale) and self.guidance_scale >= 1.0):
            raise InputError(f"guidance_scale must be >= 1, got {self.guidance_scale!r}")

    def outputs_key(self, weights: EvalWeights) -> dict[str, Any]:
        """What the saved videos depend on: a rerun must match it to reuse them."""
        return {"size": self.size, "fps": self.fps, "frames": self.frames, "steps": self.steps, "seed": self.seed,
                "guidance_scale": self.guidance_scale,
                "weights": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(weights).items()
                            if k not in ("lpips_lin", "lpips_backbone", "i3d")}}


@dataclass(frozen=True)
class ClipInfo:
    """One evaluated sequence: its name, frame count and what its BAS needs."""

    name: str
    frames: int
    start_bpm: Optional[float]
    crop: tuple[int, int, int]


@dataclass
class AISTEvalResult:
    """What a run produced.

    Attributes:
        clips: the evaluated sequences.
        scores: pipeline -> its :class:`SetScores` (pipelines that ran).
        bas: pipeline (and ``"ground_truth"``) -> clip name -> BAS, ``None`` where it has none.
        skipped: pipeline -> why it did not run.
        tables: the written files (Markdown, CSV).
    """

    clips: list[ClipInfo]
    scores: dict[str, SetScores] = field(default_factory=dict)
    bas: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    tables: list[Path] = field(default_factory=list)


# -- weights checks ------------------------------------------------------------------------------

def _missing(path: Path, entry_id: str, smoke: bool) -> Optional[str]:
    """``None`` if ``path`` is a file, else a message naming it and how to get it (its manifest entry)."""
    if path.is_file():
        return None
    how = (f"manifest entry '{entry_id}', here its tiny smoke file: `m2pdance weights smoke`" if smoke
           else entry(entry_id).hint())
    return f"{path} not found ({how})"


def _in_champ_folder(weights: EvalWeights, stem: str) -> bool:
    return any(weights.champ.parent.glob(f"{stem}.*"))


def missing_weights(pipeline: str, weights: EvalWeights) -> list[str]:
    """Why ``pipeline`` cannot run with these files (empty: it can), one message per missing file,
    each naming its weights-manifest entry."""
    champ_dir = weights.champ.parent
    checks = [(weights.champ, "champ_denoising_unet"), (weights.vae, "vae_sd_vae_ft_mse"),
              (weights.image_encoder, "clip_image_encoder")]
    if pipeline == "m2penc":
        checks.append((weights.m2penc, "m2penc_paper"))
    if pipeline == "edge":
        checks.append((weights.edge, "edge_checkpoint"))
    problems = [m for m in (_missing(p, e, weights.smoke) for p, e in checks) if m]
    stems = [("reference_unet", "champ_reference_unet")]
    if not weights.smoke:
        stems.append(("motion_module", "champ_motion_module"))
    stems += [(f"guidance_encoder_{t}", f"champ_guidance_encoder_{t}") for t in POSE_GUIDANCE.get(pipeline, ())]
    for stem, entry_id in stems:
        if weights.champ.is_file() and not _in_champ_folder(weights, stem):
            problems.append(_missing(champ_dir / f"{stem}.*", entry_id, weights.smoke))
    if pipeline == "m2penc" and weights.m2penc.is_file():
        try:
            kind = read_m2penc_config(weights.m2penc).feature_kind
        except M2PDanceError as e:
            problems.append(f"{weights.m2penc}: {e}")
        else:
            if kind == JUKEBOX:
                problems += _jukebox_missing(weights)
    return problems


def _jukebox_missing(weights: EvalWeights) -> list[str]:
    return [m for m in (_missing(weights.vqvae, "jukebox_vqvae", False), _missing(weights.prior, "jukebox_prior_5b",
                                                                                   False)) if m]


# -- output folder -------------------------------------------------------------------------------

def _check_sequence_name(name: str) -> str:
    """AIST++ names become file names: only letters, digits and underscores (the AIST++ regex's alphabet)."""
    if not name or set(name) - SEQUENCE_CHARS:
        raise InputError(f"refusing the sequence name {name!r} as a file name")
    return name


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"weights": {"champ": p}}`` -> ``{"weights.champ": p}`` (for naming the settings that differ)."""
    flat: dict[str, Any] = {}
    for k, v in settings.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _prepare_out(out_dir: Path, key: dict[str, Any]) -> dict[str, Any]:
    """Create ``out_dir`` or reopen a run with the same settings; returns its record."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a folder")
    record_path = out_dir / RUN_RECORD
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"{record_path} is unreadable ({e}); delete it or choose a new --out") from None
        if record.get("kind") != RUN_KIND or record.get("settings") != key:
            old = record.get("settings") if isinstance(record.get("settings"), dict) else {}
            flat_old, flat_new = _flatten(old), _flatten(key)
            differ = sorted(k for k in set(flat_old) | set(flat_new) if flat_old.get(k) != flat_new.get(k))
            detail = "; ".join(f"{k}: {flat_old.get(k)!r} then, {flat_new.get(k)!r} now" for k in differ[:6])
            raise InputError(f"{out_dir} holds an evaluation run with other settings ({detail or record_path}); its "
                             f"videos cannot be reused: choose a new --out, or delete the folder to start again")
        record.setdefault("clips", {})
        return record
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InputError(f"--out {out_dir} is not empty and holds no {RUN_RECORD}; choose a new or empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"kind": RUN_KIND, "settings": key, "clips": {}}


def _save_record(out_dir: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=1, sort_keys=True)
    atomic_write(out_dir / RUN_RECORD, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def video_path(out_dir: Path, pipeline: str, name: str) -> Path:
    """``out/videos/<pipeline or "real">/<name>.mp4``."""
    return out_dir / "videos" / pipeline / f"{name}.mp4"


def _side_path(out_dir: Path, pipeline: str, name: str) -> Optional[Path]:
    """The file BAS reads for a generated clip (EDGE motion, M2PEnc keypoints), or ``None``."""
    if pipeline == "edge":
        return out_dir / "motions" / "edge" / f"{name}.npz"
    if pipeline == "m2penc":
        return out_dir / "keypoints" / "m2penc" / f"{name}.npy"
    return None


# -- generation ----------------------------------------------------------------------------------

class _Generators:
    """The loaded models, shared over clips (each loaded on first use)."""

    def __init__(self, weights: EvalWeights, options: AISTEvalOptions, log: Log):
        self.weights, self.options, self.log = weights, options, log
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(options.dtype, self.device)
        self._champ: Optional[ChampModels] = None
        self._m2penc: Optional[M2PEnc] = None
        self._edge: Optional[EDGEModelBundle] = None
        self._body: Optional[BodyModel] = None
        self.body_note = ""

    @property
    def champ(self) -> ChampModels:
        """Champ (U-Net, ReferenceNet, guidance encoders, VAE, CLIP), shared by every pipeline."""
        if self._champ is None:
            w = self.weights
            try:
                self._champ = load_champ_files(w.champ, w.vae, w.image_encoder, device=self.device, dtype=self.dtype)
            except WeightsError as e:
                raise PipelineSkipped(f"Champ cannot be loaded: {e}") from None
        return self._champ

    @property
    def body(self) -> BodyModel:
        """SMPL when ``models/smpl/SMPL_NEUTRAL.pkl`` is usable, else the open SMPL-compatible body."""
        if self._body is None:
            if self.weights.smpl.is_file():
                try:
                    self._body = make_body("smpl", smpl_path=self.weights.smpl, device=self.device)
                    self.body_note = f"maps rendered on SMPL ({self.weights.smpl})"
                except (M2PDanceError, ImportError, OSError) as e:
                    self.log(f"SMPL body unusable ({e}); rendering with the open SMPL-compatible body")
            if self._body is None:
                self._body = make_body("open", device=self.device)
                self.body_note = self.body_note or ("maps rendered on the open SMPL-compatible body (no SMPL file at "
                                                    f"{self.weights.smpl}; manifest entry 'smpl_neutral')")
        return self._body

    def m2penc(self) -> M2PEnc:
        """M2PEnc, checked to run at the protocol's fps."""
        if self._m2penc is None:
            config = read_m2penc_config(self.weights.m2penc)
            if abs(config.fps - self.options.fps) > 1e-6:
                raise PipelineSkipped(f"{self.weights.m2penc} was trained at {config.fps:g} fps but the protocol runs "
                                      f"at {self.options.fps:g} fps")
            try:
                self._m2penc = load_m2penc(self.weights.m2penc, device=self.device, dtype=self.dtype)
            except WeightsError as e:
                raise PipelineSkipped(f"M2PEnc cannot be loaded: {e}") from None
        return self._m2penc

    def edge(self) -> EDGEModelBundle:
        """EDGE, with the Jukebox files checked when it reads Jukebox features."""
        if self._edge is None:
            try:
                bundle = load_edge(self.weights.edge, device=self.device, dtype=self.dtype)
            except WeightsError as e:
                raise PipelineSkipped(f"EDGE cannot be loaded: {e}") from None
            if bundle.config.feature_kind == JUKEBOX:
                missing = _jukebox_missing(self.weights)
                if missing:
                    raise PipelineSkipped("this EDGE reads Jukebox features: " + "; ".join(missing))
            self._edge = bundle
        return self._edge

    def music_extract(self) -> dict[str, Any]:
        """Arguments of :func:`extract_music_features` shared by M2PEnc and EDGE."""
        return {"layer": DEFAULT_LAYER, "vqvae_path": self.weights.vqvae, "prior_path": self.weights.prior,
                "device": self.device, "dtype": self.dtype}


@dataclass
class _ClipWork:
    """One clip while it is generated: the AIST++ clip, its frame count, reference and (lazy) GT maps."""

    clip: Clip
    frames: int
    photo: torch.Tensor                       # (1, size, size, 3) float in [0, 1]
    reference: Optional[ReferenceState] = None
    gt_maps: Optional[dict[str, torch.Tensor]] = None

    def music_seconds(self, fps: float) -> Optional[float]:
        """Seconds of music that cover the clip plus one frame (``None``: the whole track is shorter)."""
        total = self.clip.music["waveform"].shape[-1] / self.clip.music["sample_rate"]
        wanted = (self.frames + 1) / fps
        return wanted if wanted < total else None


def _write_video(gen: _Generators, work: _ClipWork, guidance: GuidanceSource, path: Path) -> None:
    """Champ from the clip's reference photo and ``guidance`` -> ``work.frames`` frames at ``path`` (music muxed)."""
    o = gen.options
    if work.reference is None:
        work.reference = encode_reference(gen.champ, prepare_reference(work.photo, o.size, o.size))
    sampling = LongVideoOptions(num_steps=o.steps, segment_frames=segment_frames_for(DEFAULT_SEGMENT_SECONDS, o.fps))
    with VideoWriter(path, fps=o.fps, format="mp4", crf=EVAL_CRF, audio=work.clip.music) as writer:
        render_champ_video(gen.champ, work.reference, guidance, writer.write, seed=o.seed, options=sampling,
                           guidance_scale=o.guidance_scale, num_frames=work.frames)


def _pose_guidance(gen: _Generators, pipeline: str, maps: dict[str, torch.Tensor]) -> PoseMapGuidance:
    """Champ's encoders of the pipeline's guidance types over uint8 maps ``(F, size, size, 3)``."""
    types = POSE_GUIDANCE[pipeline]
    encoders = gen.champ.guidance_encoders
    absent = [t for t in types if t not in encoders]
    if absent:
        raise PipelineSkipped(f"the Champ folder {gen.weights.champ.parent} has no guidance encoder for {absent} "
                              f"(manifest entries {', '.join('champ_guidance_encoder_' + t for t in absent)})")
    return PoseMapGuidance({t: encoders[t] for t in types}, {t: maps[RENDERED_MAP[t]] for t in types},
                           gen.options.fps)


def _render(gen: _Generators, motion: SMPLMotion, camera: Optional[PinholeCamera]) -> dict[str, torch.Tensor]:
    """uint8 maps ``(F, size, size, 3)`` of a y-up motion through ``camera`` (``None``: framing the motion)."""
    size = gen.options.size
    poses, trans = motion.to_torch()
    if camera is None:
        camera = motion_camera(gen.body, poses, trans, size, size)
    return render_pose_maps(gen.body, poses, trans, camera, size, size, batch_size=RENDER_BATCH, as_uint8=True)


def _generate_m2penc(gen: _Generators, work: _ClipWork, out: Path, side: Path) -> None:
    """Music -> M2PEnc guidance -> Champ; its keypoints ``(F, K, 3)`` (canvas pixels + confidence) to ``side``."""
    encoder = gen.m2penc()
    cfg = encoder.config
    features = extract_music_features(work.clip.music, kind=cfg.feature_kind, fps=cfg.fps,
                                      duration=work.music_seconds(cfg.fps), start_bpm=work.clip.start_bpm,
                                      **gen.music_extract())
    encoder.check_music(features)
    if features.features.shape[0] < work.frames:
        raise InputError(f"{work.clip.sequence}: {features.features.shape[0]} music feature frames for "
                         f"{work.frames} video frames")
    guidance = M2PEncGuidance(encoder, features.features[:work.frames], fps=features.fps)
    points = []
    for heatmaps in guidance.keypoint_heatmaps():                       # (F_i, K, G, G)
        kp = heatmaps_to_keypoints(heatmaps.float().cpu())
        points.append(heatmap_to_canvas(kp, tuple(heatmaps.shape[-2:]), (gen.options.size, gen.options.size)))
    keypoints = torch.cat(points).numpy().astype(np.float32)           # (F, K, 3) canvas pixels + confidence
    _save_array(side, keypoints)
    _write_video(gen, work, guidance, out)


def _generate_edge(gen: _Generators, work: _ClipWork, out: Path, side: Path) -> None:
    """Music -> EDGE dance (saved to ``side``) -> maps framed on it -> Champ with all four guidance types."""
    bundle = gen.edge()
    cfg = bundle.config
    seconds = work.music_seconds(gen.options.fps)
    music = trim_audio(work.clip.music, 0.0, seconds)
    windows = edge_music_windows(music, cfg.feature_kind, fps=cfg.fps, window_frames=cfg.seq_len,
                                 start_bpm=work.clip.start_bpm, **gen.music_extract())
    motion = edge_motion_from_windows(bundle, windows.features, windows.num_frames, seed=gen.options.seed)
    motion = motion.to_up_axis("y").resample(gen.options.fps)
    if motion.num_frames < work.frames:     # cannot happen: the music covers >= 2 x frames at EDGE's 30 fps
        raise InputError(f"{work.clip.sequence}: EDGE made {motion.num_frames} frames for {work.frames}")
    motion = motion.slice(0, work.frames)
    save_motion(motion, side)
    maps = _render(gen, motion, None)
    _write_video(gen, work, _pose_guidance(gen, "edge", maps), out)


def _generate_pose(gen: _Generators, work: _ClipWork, pipeline: str, out: Path) -> None:
    """The ground-truth motion through the crop camera (rendered once per clip) -> Champ with the setup's maps."""
    if work.gt_maps is None:
        work.gt_maps = _render(gen, work.clip.motion.slice(0, work.frames), work.clip.camera)
    _write_video(gen, work, _pose_guidance(gen, pipeline, work.gt_maps), out)


def _ground_truth(clip: Clip, out_dir: Path, options: AISTEvalOptions, record: dict[str, Any]) -> ClipInfo:
    """Write (or reuse) the cropped real video and the reference photo of one clip."""
    name = _check_sequence_name(clip.sequence)
    real, photo = video_path(out_dir, REAL, name), out_dir / "reference" / f"{name}.png"
    crop = tuple(int(v) for v in clip.meta["crop"])
    known = record["clips"].get(name)
    if known and real.is_file() and photo.is_file():
        return ClipInfo(name, int(known["frames"]), clip.start_bpm, crop)
    wanted = clip.motion.num_frames if options.frames is None else min(options.frames, clip.motion.num_frames)
    first: Optional[np.ndarray] = None
    with VideoWriter(real, fps=options.fps, format="mp4", crf=EVAL_CRF, audio=clip.music) as writer:
        for frame in itertools.islice(clip.video(), wanted):
            if first is None:
                first = frame
            writer.write(frame[None])
        count = writer.frames_written
    if first is None:
        raise InputError(f"{name}: the C09 video has no frame")
    atomic_write(photo, lambda tmp: Image.fromarray(first).save(tmp, format="PNG"))
    record["clips"][name] = {"frames": count, "crop": list(crop), "music": clip.meta["music_file"]}
    _save_record(out_dir, record)
    return ClipInfo(name, count, clip.start_bpm, crop)


def _save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (no pickles)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
    atomic_write(path, write)


def _load_photo(path: Path) -> torch.Tensor:
    """The saved reference PNG as ``(1, H, W, 3)`` float in [0, 1]."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels)[None]


# -- scoring -------------------------------------------------------------------------------------

def _bas(keypoints: np.ndarray, beats: np.ndarray, has_confidence: bool) -> Optional[float]:
    """Bailando's BAS of ``(F, J, D)`` positions against beat frames, or ``None`` where it is undefined."""
    try:
        return beat_alignment(keypoints, beats, has_confidence=has_confidence).score
    except InputError:          # fewer than 3 frames, or no music beat inside the clip
        return None


def clip_bas(out_dir: Path, source: AISTSource, clips: Sequence[ClipInfo], pipelines: Sequence[str],
             fps: float) -> dict[str, dict[str, Optional[float]]]:
    """BAS per clip of ``m2penc`` / ``edge`` (from their saved keypoints / motions) and of the ground truth."""
    result: dict[str, dict[str, Optional[float]]] = {"ground_truth": {}}
    for info in clips:
        clip = next(source.clips(info.name))
        beats = music_beat_frames(clip.music, fps, info.start_bpm)
        gt = motion_joints(clip.motion.slice(0, info.frames), "y")
        result["ground_truth"][info.name] = _bas(gt, beats, False)
        for pipeline in pipelines:
            side = _side_path(out_dir, pipeline, info.name)
            if side is None or not side.is_file():
                continue
            if pipeline == "m2penc":
                value = _bas(np.load(side, allow_pickle=False), beats, True)
            else:
                value = _bas(motion_joints(load_motion(side), "y", fps), beats, False)
            result.setdefault(pipeline, {})[info.name] = value
    return result


def _bas_summary(values: dict[str, Optional[float]]) -> tuple[Optional[float], str]:
    """The mean BAS over the clips that have one, and a note when some do not."""
    scored = [v for v in values.values() if v is not None]
    note = "" if len(scored) == len(values) else (
        f"BAS over {len(scored)} of {len(values)} clips (the others are shorter than 3 frames or hold no music beat)")
    return mean_or_none(scored), note


def _protocol_notes(options: AISTEvalOptions, weights: EvalWeights, clips: Sequence[ClipInfo], total: int,
                    metrics: MetricModels, body_note: str) -> list[str]:
    """What every table of the run must say about how its numbers were made."""
    notes = ["SMOKE WEIGHTS (tiny, random): these numbers only show that the protocol runs"] if weights.smoke else []
    notes += [
        f"AIST++ crossmodal_test split, {len(clips)} of its {total} sequences (ignore list removed), "
        f"{sum(c.frames for c in clips)} frames; camera C09 cropped to one square around the dancer per sequence, "
        f"resized to {options.size}x{options.size}, {options.fps:g} fps, "
        + ("whole sequences" if options.frames is None else f"at most {options.frames} frames per sequence")
        + "; the first real frame is the reference photo",
        f"Generation: {options.steps} DDIM steps, CFG {options.guidance_scale:g}, seed {options.seed} for every clip, "
        f"{DEFAULT_SEGMENT_SECONDS:g} s segments joined by in-painting the previous segment's tail",
        f"Metrics on the saved videos of both sides (H.264 CRF {EVAL_CRF}, yuv420p): PSNR / SSIM / "
        f"LPIPS-{options.lpips_net} per frame at {options.size}x{options.size}, averaged over all frames of all clips",
        "FVD: Kinetics-400 I3D logits of consecutive 16-frame clips stretched to 224x224, Gaussian covariances "
        "normalised by N; videos shorter than 16 frames give no clip; FVD from few clips is biased upwards "
        "(the paper does not state its clip count)",
    ]
    if body_note:
        notes.append(body_note[0].upper() + body_note[1:])
    return notes + list(metrics.notes)


def _pipeline_notes(pipelines: Sequence[str], result: AISTEvalResult, metrics: MetricModels) -> list[str]:
    """FVD clip counts (or why there is no FVD) and the scoring notes of these pipelines."""
    notes = []
    for pipeline in pipelines:
        s = result.scores.get(pipeline)
        if s is None:
            continue
        if s.fvd.value is not None:
            notes.append(f"{pipeline}: FVD over {s.fvd.real_clips} real and {s.fvd.generated_clips} generated clips")
        elif metrics.i3d is not None:
            notes.append(f"{pipeline}: no FVD: {s.fvd.reason}")
        notes += [f"{pipeline}: {n}" for n in s.notes if n not in metrics.notes]
    return notes


def _measured_row(key: str, pipeline: str, result: AISTEvalResult, options: AISTEvalOptions) -> TableRow:
    """A pipeline's row: measured, skipped (with the reason) or not requested."""
    label = LABELS[pipeline]
    if pipeline not in options.pipelines:
        return TableRow(key, label, status="paper", note="not run (not in --pipelines)")
    if pipeline in result.skipped:
        return TableRow(key, label, status="skipped", note=result.skipped[pipeline])
    bas, note = _bas_summary(result.bas.get(pipeline, {})) if pipeline in ("m2penc", "edge") else (None, "")
    return TableRow(key, label, measured=Measured.from_scores(result.scores[pipeline], bas), note=note)


def write_tables(out_dir: Path, result: AISTEvalResult, options: AISTEvalOptions, notes: list[str],
                 metrics: MetricModels) -> list[Path]:
    """``table1.md/.csv`` (Table 1 layout: m2penc in the paper's "Ours" row, edge and the ground-truth BAS
    below) and ``table3.md/.csv`` (the three guidance setups)."""
    t1 = paper_rows(PAPER_TABLE1, {"ours": _measured_row("m2penc", "m2penc", result, options)})
    t1.append(_measured_row("edge", "edge", result, options))
    gt_bas, gt_note = _bas_summary(result.bas.get("ground_truth", {}))
    t1.append(TableRow("ground_truth", LABELS["ground_truth"], status="reference", note=gt_note,
                       measured=Measured(bas=gt_bas, videos=len(result.clips),
                                         frames=sum(c.frames for c in result.clips))))
    t3 = paper_rows(PAPER_TABLE3, {p: _measured_row(p, p, result, options) for p in TABLE3_PIPELINES})
    bas_note = (f"BAS: Bailando's score at {options.fps:g} fps (sigma^2 = 9 frames^2), music beats tracked with the "
                "genre's start tempo; m2penc from M2PEnc's keypoint heatmaps, edge from EDGE's SMPL joints, mean over "
                "clips")
    tables = [Table("table1", "Table 1: video quality on the AIST++ test set (paper numbers beside ours)", tuple(t1),
                    tuple(notes + [bas_note] + _pipeline_notes(TABLE1_PIPELINES, result, metrics))),
              Table("table3", "Table 3: pose guidance setups, Champ driven by the ground-truth AIST++ motion "
                              "(paper numbers beside ours)", tuple(t3),
                    tuple(notes + _pipeline_notes(TABLE3_PIPELINES, result, metrics)),
                    row_header="Guidance Setup", bas=False)]
    paths: list[Path] = []
    for table in tables:
        paths += write_table(table, out_dir)
    return paths


# -- the run ---------------------------------------------------------------------------------------

def run_aist_eval(aist_dir: PathLike, out_dir: PathLike, weights: EvalWeights,
                  options: AISTEvalOptions = AISTEvalOptions(), log: Log = print) -> AISTEvalResult:
    """Run the protocol (module docstring): ground truth, generation per pipeline, scores, tables.

    Args:
        aist_dir: the AIST++ folder (official layout with ``videos/``; checked completely up front).
        out_dir: a new or empty folder, or the folder of an earlier run with the same settings (resumed).
        weights: :meth:`EvalWeights.in_models_dir`.
        options: :class:`AISTEvalOptions`.
        log: receives the progress lines (one per clip and pipeline, plus skips and scoring).
    Returns:
        :class:`AISTEvalResult` (the tables are in ``out_dir``).
    Raises:
        InputError: unusable AIST++ folder or ``out_dir``, settings that differ from the run in ``out_dir``.
    """
    source = AISTSource(aist_dir, "test", fps=options.fps, size=options.size, video=True)   # checked first
    out = Path(out_dir).expanduser()
    record = _prepare_out(out, options.outputs_key(weights))
    names = [_check_sequence_name(n) for n in source.items()]
    chosen = names if options.clips is None else names[:options.clips]
    log(f"AIST++ test split: {len(names)} sequences; evaluating {len(chosen)}; "
        f"pipelines {', '.join(options.pipelines)}")
    result = AISTEvalResult(clips=[])
    for pipeline in options.pipelines:
        problems = missing_weights(pipeline, weights)
        if problems:
            result.skipped[pipeline] = "skipped, missing weights: " + "; ".join(problems)
            log(f"[{pipeline}] {result.skipped[pipeline]}")
    gen = _Generators(weights, options, log)
    for index, name in enumerate(chosen, start=1):
        start = time.monotonic()
        clip = next(source.clips(name))
        info = _ground_truth(clip, out, options, record)
        result.clips.append(info)
        log(f"[{index}/{len(chosen)}] {name}: {info.frames} frames of ground truth ({time.monotonic() - start:.1f} s)")
        work = _ClipWork(clip, info.frames, _load_photo(out / "reference" / f"{name}.png"))
        for pipeline in options.pipelines:
            if pipeline in result.skipped:
                continue
            path, side = video_path(out, pipeline, name), _side_path(out, pipeline, name)
            if path.is_file() and (side is None or side.is_file()):
                log(f"[{index}/{len(chosen)}] {name} {pipeline}: kept {path}")
                continue
            start = time.monotonic()
            try:
                if pipeline == "m2penc":
                    _generate_m2penc(gen, work, path, side)
                elif pipeline == "edge":
                    _generate_edge(gen, work, path, side)
                else:
                    _generate_pose(gen, work, pipeline, path)
            except PipelineSkipped as e:
                result.skipped[pipeline] = f"skipped: {e}"
                log(f"[{pipeline}] {result.skipped[pipeline]}")
                continue
            log(f"[{index}/{len(chosen)}] {name} {pipeline}: {info.frames} frames in "
                f"{time.monotonic() - start:.1f} s -> {path}")
    ran = [p for p in options.pipelines if p not in result.skipped]
    metrics = load_metric_models((weights.lpips_lin, weights.lpips_backbone), weights.i3d, gen.device,
                                 options.lpips_net)
    for note in metrics.notes:
        log(note)
    real = {c.name: video_path(out, REAL, c.name) for c in result.clips}
    real_features = real_set_features(real, metrics.i3d, log) if ran else None
    for pipeline in ran:
        generated = {c.name: video_path(out, pipeline, c.name) for c in result.clips}
        result.scores[pipeline] = score_sets(generated, real, metrics, real_features=real_features,
                                             progress=lambda line, p=pipeline: log(f"[{p}] {line}"))
    result.bas = clip_bas(out, source, result.clips, [p for p in ran if p in ("m2penc", "edge")], options.fps)
    notes = _protocol_notes(options, weights, result.clips, len(names), metrics, gen.body_note)
    result.tables = write_tables(out, result, options, notes, metrics) + [
        write_text(out / "clips.csv", render_pairs_csv(result.scores, result.bas))]
    for path in result.tables:
        log(f"wrote {path}")
    return result
