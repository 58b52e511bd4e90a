"""The SDGPip builder: a motion source -> rendered targets -> shards, on one process or many.

Work is planned from the source's folder listing alone (:meth:`Source.items`, sorted): the items
(AIST++ sequences or music tracks) are cut into shards of ``items_per_shard`` consecutive items,
so every process computes the same plan without talking to the others. Under ``torchrun`` (or
``accelerate launch``) with N processes, process ``r`` builds shards ``r, r + N, r + 2N, ...``:
the same command fills one CPU, eight GPUs or a cluster (one device per process via
``LOCAL_RANK``); ``torch.distributed`` is only used at the end (a barrier and summing the counts),
after which rank 0 writes ``index.json``.

Resuming is the normal path: a shard is finished when its tar and sidecar index exist, agree and
carry this build's id (:func:`.shards.finished_shards`); a re-run skips finished shards and
rebuilds the rest. A tar is written to a temp file and renamed (a killed worker leaves only a
``.partial`` file, removed before the shard is rebuilt), and every shard's bytes depend only on
its items and the settings (seeds are derived per clip, never from process state), so a killed
and re-run build is byte-identical to an uninterrupted one.

Folder layout written::

    <out>/build.json            settings, source facts, items and the shard plan; its hash is the build id
    <out>/shards/shard-NNNNNN.tar   webdataset tar (.shards)
    <out>/shards/shard-NNNNNN.json  the shard's index (sample metadata and member offsets)
    <out>/index.json            every sample (sequence, source, split, frame range, fps, music offset)
                                and the dataset totals; written when every shard is finished
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from ... import __version__
from ...m2penc.body import make_body
from ...m2penc.champ.config import GUIDANCE_TYPES
from ...m2penc.champ.models import load_guidance_encoders
from ...m2penc.checkpoint import atomic_write
from ...m2penc.device import resolve_device, resolve_dtype
from ...m2penc.errors import InputError
from ...m2penc.jukebox import DEFAULT_LAYER
from ...m2penc.motion.choreography.planner import MAX_JOINT_SPEED, check_joint_speed
from ...m2penc.progress import NO_CONTROL, RunControl
from ...m2penc.render.camera import PinholeCamera
from ..guidance_targets import GuidanceTargets
from .shards import (KEY_MAX_LENGTH, SampleData, canonical_json, finished_shards, remove_stale_partials, shard_path,
                     write_shard)
from .sources import EDGE_JUKEBOX_LAYER, SOURCES, Clip, MotionSource, check_appearance, make_source
from .targets import FEATURE_KINDS, STORE_MODES, TargetSettings, clip_camera, iter_clip_chunks, track_features
from .windows import INDEX_FILE

LOG = logging.getLogger("m2pdance.training.sdgpip")
BUILD_FORMAT = "m2pdance.sdgpip.build"
INDEX_FORMAT = "m2pdance.sdgpip.index"
FORMAT_VERSION = 1
BUILD_FILE = "build.json"
#: Settings that say where or how fast a build runs, not what it contains (left out of the build id).
RUNTIME_FIELDS = ("out", "device")
#: Settings naming files or folders: the build id holds what they contain (sizes, hashes), not their paths,
#: so a re-run from another working directory or a node mounting the data elsewhere resumes the build.
PATH_FIELDS = ("data", "smpl_path", "edge_checkpoint", "guidance_encoders", "jukebox_dir")


@dataclass(frozen=True)
class BuildConfig:
    """One SDGPip build (the ``m2pdance-train sdgpip`` flags).

    Attributes:
        source: ``aist``, ``edge`` or ``beats``.
        data: AIST++ root folder (``aist``) or a folder of music files (``edge``, ``beats``).
        out: the dataset folder written.
        split: AIST++ split (``train``/``val``/``test``); recorded as the split of music sources.
        fps, size: frame rate and square map side of every target (paper: 15 fps, 512 maps).
        features: ``light`` (EDGE's 35-d set) or ``jukebox`` (4800-d; needs ``jukebox_dir``).
        store: ``maps`` (guidance computed while training) or ``guidance`` (stored; needs
            ``guidance_encoders``).
        body: ``open`` (no files) or ``smpl`` (``smpl_path``: the SMPL model file or folder).
        seed: base seed; every clip's seed is derived from it and the clip's name.
        items_per_shard: sequences or tracks per shard.
        chunk_frames: longest sample; longer clips become consecutive samples.
        video: AIST++ only: store the C09 video frames cropped to the dancer (stages 2-3).
        edge_checkpoint: the EDGE teacher (``edge`` source).
        guidance_encoders: folder with Champ's ``guidance_encoder_*`` files (``store=guidance``).
        jukebox_dir, jukebox_layer: Jukebox weights folder and layer (``features=jukebox``).
        intensity: beat choreographer intensity.
        max_joint_speed: beats only: the choreographer's joint speed limit in m/s (default 5; the one-beat
            ``looped`` moves need ~7.5 at 120 BPM).
        appearance: beats only: render every clip's video frames (stages 2-3) with the maps' body and camera
            in a colour scheme (``m2penc/render/appearance.py``): ``cycle``/``random`` over the training
            schemes, or one scheme's name; the sample's ``info.appearance`` records the scheme.
        variety: beats only: how the choreographer picks moves, ``seeded`` (varied dances),
            ``by_level`` (the move nearest the music's level, 4-beat segments: a function of the music) or
            ``looped`` (one loop per beat, the one nearest that beat's level: a function of any window of it).
        device, dtype: where the renderer, EDGE, Jukebox and encoders run (``auto``: this process's GPU).
    """

    source: str
    data: str
    out: str
    split: str = "train"
    fps: float = 15.0
    size: int = 512
    features: str = "light"
    store: str = "maps"
    body: str = "open"
    smpl_path: Optional[str] = None
    seed: int = 0
    items_per_shard: int = 4
    chunk_frames: int = 300
    video: bool = False
    edge_checkpoint: Optional[str] = None
    guidance_encoders: Optional[str] = None
    jukebox_dir: Optional[str] = None
    jukebox_layer: int = DEFAULT_LAYER
    intensity: float = 1.0
    appearance: Optional[str] = None
    variety: str = "seeded"
    max_joint_speed: float = MAX_JOINT_SPEED
    device: str = "auto"
    dtype: str = "fp32"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"--source must be one of {SOURCES}, got {self.source!r}")
        if self.features not in FEATURE_KINDS:
            raise InputError(f"--features must be one of {sorted(FEATURE_KINDS)}, got {self.features!r}")
        if self.store not in STORE_MODES:
            raise InputError(f"--store must be one of {STORE_MODES}, got {self.store!r}")
        for name, low in (("items_per_shard", 1), ("chunk_frames", 8)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= low):
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.store == "guidance" and not self.guidance_encoders:
            raise InputError("--store guidance needs --guidance-encoders FOLDER (Champ's guidance_encoder_* files)")
        if self.features == "jukebox" and not self.jukebox_dir:
            raise InputError("--features jukebox needs --jukebox DIR (the Jukebox 5B vqvae and prior weights)")
        if self.video and self.source != "aist":
            raise InputError("--video is for --source aist (the C09 videos); music sources have no video (--appearance "
                             "renders synthetic video for --source beats)")
        if self.appearance is not None and self.source != "beats":
            raise InputError(f"--appearance renders synthetic video for --source beats, not {self.source!r}")
        check_appearance(self.appearance)
        if self.variety != "seeded" and self.source != "beats":
            raise InputError(f"--variety chooses the beat choreographer's moves (--source beats), not {self.source!r}")
        object.__setattr__(self, "max_joint_speed", check_joint_speed(self.max_joint_speed))   # 8 and 8.0: one build
        if self.max_joint_speed != MAX_JOINT_SPEED and self.source != "beats":
            raise InputError(f"--max-joint-speed limits the beat choreographer (--source beats), not {self.source!r}")
        if self.body not in ("open", "smpl") or (self.body == "smpl" and not self.smpl_path):
            raise InputError(f"--body must be 'open' or 'smpl' (with --smpl PATH), got {self.body!r}")
        self.targets()                                   # validates fps and size

    def targets(self, device: Optional[torch.device] = None) -> TargetSettings:
        """The per-frame target settings; Jukebox runs on ``device`` (default: :attr:`device`)."""
        jukebox = None
        if self.features == "jukebox":
            jukebox = {"vqvae_path": self.jukebox_dir, "prior_path": self.jukebox_dir, "layer": self.jukebox_layer,
                       "device": device or self.device, "dtype": self.dtype}
        return TargetSettings(fps=float(self.fps), size=int(self.size), feature_kind=FEATURE_KINDS[self.features],
                              store=self.store, jukebox=jukebox)

    def edge_extract(self, device: torch.device) -> Optional[dict[str, Any]]:
        """EDGE's own slice-feature settings: Jukebox at EDGE's layer 66 whatever the student's features."""
        if not self.jukebox_dir:
            return None
        return {"vqvae_path": self.jukebox_dir, "prior_path": self.jukebox_dir, "layer": EDGE_JUKEBOX_LAYER,
                "device": device, "dtype": self.dtype}

    def identity(self) -> dict[str, Any]:
        """The settings that decide the shards' content, without paths and settings that do not apply."""
        unused = set(RUNTIME_FIELDS) | set(PATH_FIELDS)
        if self.features != "jukebox":
            unused.add("jukebox_layer")
        if self.source != "beats":
            unused.add("intensity")
        if self.appearance is None:                      # absent when off: builds made before it keep their ids
            unused.add("appearance")
        if self.variety == "seeded":
            unused.add("variety")
        if self.max_joint_speed == MAX_JOINT_SPEED:      # absent at the default: older builds keep their ids
            unused.add("max_joint_speed")
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in unused}

    def weights_files(self) -> dict[str, list[Path]]:
        """The weights files whose content the shards depend on (EDGE's is in the source's facts)."""
        files: dict[str, list[Path]] = {}
        if self.store == "guidance" and self.guidance_encoders:
            files["guidance_encoders"] = sorted(Path(self.guidance_encoders).glob("guidance_encoder_*"))
        if self.jukebox_dir and (self.features == "jukebox" or self.source == "edge"):
            files["jukebox"] = sorted(p for p in Path(self.jukebox_dir).iterdir() if p.is_file())
        if self.body == "smpl" and self.smpl_path:
            path = Path(self.smpl_path)
            files["smpl"] = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
        return files


@dataclass(frozen=True)
class Plan:
    """What a build makes: items in shard order and this build's id."""

    build_id: str
    shards: tuple[tuple[str, ...], ...]
    record: dict[str, Any]


@dataclass
class WorkerSummary:
    """What one process did (summed over processes at the end)."""

    shards_built: int = 0
    shards_skipped: int = 0
    samples: int = 0
    frames: int = 0
    clips: int = 0
    seconds_of_motion: float = 0.0
    wall_seconds: float = 0.0           # last: reduced with max, the others are summed

    def as_tensor(self) -> torch.Tensor:
        """The fields in order as a float64 vector (for ``all_reduce``)."""
        return torch.tensor([float(v) for v in dataclasses.astuple(self)], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, values: torch.Tensor) -> "WorkerSummary":
        """Inverse of :meth:`as_tensor`."""
        fields = dataclasses.fields(cls)
        return cls(**{f.name: (int if f.type in (int, "int") else float)(v) for f, v in zip(fields, values.tolist())})


def _item_files(source: MotionSource, config: BuildConfig, item: str) -> list[Path]:
    """The input files of one work item (their sizes go into the build id)."""
    if config.source == "aist":
        paths = source.dataset.sequence(item).paths            # type: ignore[attr-defined]
        return [p for p in (paths.motion, paths.music, paths.camera, paths.video) if p is not None]
    return [Path(config.data) / item]


def _file_facts(paths: list[Path], hashed: bool) -> list[list[Any]]:
    """``[name, size]`` (or ``[name, sha256]``) of files: what identifies their content in the build id."""
    from ...weights_manifest.verify import sha256_of

    return [[p.name, sha256_of(p) if hashed else p.stat().st_size] for p in paths]


def make_plan(config: BuildConfig, source: MotionSource, device: torch.device) -> Plan:
    """The shard plan (consecutive items, ``items_per_shard`` per shard) and the build id.

    The id hashes what decides the shards' bytes: the settings (without paths), the source's facts,
    every item with its input files' sizes, the weights used (small files by sha256, Jukebox and
    SMPL by size), the device type (CPU and CUDA floats differ) and the package version.
    """
    items = list(source.items())
    if not items:
        raise InputError(f"{config.data} holds nothing to build for --source {config.source}")
    k = config.items_per_shard
    shards = tuple(tuple(items[i:i + k]) for i in range(0, len(items), k))
    facts = {key: value for key, value in source.describe().items() if key not in ("folder", "checkpoint")}
    inputs = {item: _file_facts(_item_files(source, config, item), hashed=False) for item in items}
    weights = {name: _file_facts(paths, hashed=name == "guidance_encoders")
               for name, paths in config.weights_files().items()}
    record = {"format": BUILD_FORMAT, "version": FORMAT_VERSION, "package_version": __version__,
              "device_type": device.type, "settings": config.identity(), "source": facts, "inputs": inputs,
              "weights": weights, "shards": [list(s) for s in shards]}
    build_id = hashlib.sha256(canonical_json(record)).hexdigest()[:16]
    return Plan(build_id=build_id, shards=shards, record={**record, "build_id": build_id})


def _record_build(out: Path, plan: Plan) -> None:
    """Write ``build.json``, or refuse an output folder that holds another build."""
    path = out / BUILD_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"{path} is unreadable ({e}); delete it or use another --out") from None
        if isinstance(old, dict) and old.get("build_id") == plan.build_id:
            return
        changed = _differences(old if isinstance(old, dict) else {}, plan.record)
        raise InputError(f"{out} holds another SDGPip build (different {', '.join(changed) or 'format'}); "
                         f"re-run with the same settings to resume it, or pass another --out")
    text = json.dumps(plan.record, sort_keys=True, indent=1).encode()
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(text))


def _differences(old: dict, new: dict) -> list[str]:
    names = []
    old_settings, new_settings = old.get("settings", {}), new["settings"]
    names += [k for k in sorted(set(old_settings) | set(new_settings)) if old_settings.get(k) != new_settings.get(k)]
    for key, what in (("source", "source facts (e.g. the EDGE checkpoint)"), ("weights", "weights files"),
                      ("device_type", "device type"), ("package_version", "m2pdance version"),
                      ("shards", "items (files added or removed)"), ("inputs", "input files (sizes changed)")):
        if old.get(key) != new.get(key):
            names.append(what)
    return names


def _camera_record(camera: Optional[PinholeCamera]) -> Optional[dict[str, Any]]:
    if camera is None:
        return None
    return {"width": camera.width, "height": camera.height, "fx": camera.fx, "fy": camera.fy, "cx": camera.cx,
            "cy": camera.cy, "rotation": camera.rotation.tolist(), "translation": camera.translation.tolist()}


def sample_key(clip_key: str, chunk: int) -> str:
    """``<clip key>-<chunk:03d>``; a long clip key is shortened with a hash so the key stays <= 80 chars."""
    suffix = f"-{chunk:03d}"
    if len(clip_key) + len(suffix) > KEY_MAX_LENGTH:
        digest = hashlib.sha256(clip_key.encode()).hexdigest()[:8]
        clip_key = f"{clip_key[:KEY_MAX_LENGTH - len(suffix) - 9]}-{digest}"
    return clip_key + suffix


class ShardMaker:
    """Turns the items of one shard into :class:`.shards.SampleData`, one sample at a time."""

    def __init__(self, config: BuildConfig, source: MotionSource, device: torch.device,
                 control: RunControl = NO_CONTROL):
        self.config, self.source, self.control = config, source, control
        self.settings = config.targets(device)
        self.body = make_body(config.body, config.smpl_path, device=device)
        self.encoders: Optional[GuidanceTargets] = None
        if config.store == "guidance":
            self.encoders = GuidanceTargets(load_guidance_encoders(
                config.guidance_encoders, GUIDANCE_TYPES, device=device, dtype=resolve_dtype(config.dtype, device)))

    def samples(self, items: tuple[str, ...], summary: WorkerSummary) -> Iterator[SampleData]:
        """The samples of ``items`` in order (every clip, cut into chunks), counting into ``summary``."""
        for item in items:
            track: Optional[np.ndarray] = None
            for clip in self.source.clips(item):
                self.control.check_cancel()
                if track is None:                    # every clip of an item shares its music
                    track = track_features(clip, self.settings, self.control)
                summary.clips += 1
                yield from self._clip_samples(clip, track, summary)

    def _clip_samples(self, clip: Clip, track: np.ndarray, summary: WorkerSummary) -> Iterator[SampleData]:
        """One sample per chunk of ``clip``; ``track (T, D)``: the features of its whole music."""
        s = self.settings
        view = clip_camera(clip, self.body, s.size)
        camera = _camera_record(view)
        chunks = iter_clip_chunks(clip, self.body, view, s, track, self.config.chunk_frames, self.encoders,
                                  self.control)
        for index, (start, fields) in enumerate(chunks):
            n = int(fields["features"].shape[0])
            meta = {"id": sample_key(clip.key, index), "clip": clip.key, "source": clip.source, "split": clip.split,
                    "sequence": clip.sequence, "fps": s.fps, "frame_start": start, "num_frames": n,
                    "music_offset": round(clip.music_offset + start / s.fps, 6), "size": s.size, "grid": s.grid,
                    "feature_kind": s.feature_kind, "seed": clip.seed, "camera": camera, "store": s.store,
                    "info": dict(clip.meta)}
            summary.samples += 1
            summary.frames += n
            summary.seconds_of_motion += n / s.fps
            yield SampleData(key=meta["id"], meta=meta, fields=fields)


def _progress_bar(rank: int, total: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:                                 # pragma: no cover - tqdm comes with diffusers
        return None
    return tqdm(total=total, desc=f"sdgpip worker {rank}", unit="shard", position=rank, file=sys.stderr,
                dynamic_ncols=True, leave=True)


def build_worker(config: BuildConfig, rank: int = 0, world_size: int = 1, control: RunControl = NO_CONTROL,
                 show_progress: bool = True) -> tuple[WorkerSummary, Plan]:
    """Build shards ``rank, rank + world_size, ...`` of the plan (skipping finished ones).

    Determinism: a shard's bytes must not depend on the machine that (re)builds it, and
    multi-threaded reductions change floats in the last bits with the thread count (NumPy's BLAS
    in the music features, torch's convolutions in the guidance encoders, EDGE's matmuls). So a
    CPU worker computes with one thread for BLAS and torch: run one worker per core
    (``torchrun --nproc-per-node $(nproc)``). GPU workers keep their defaults (results are then
    identical for the same GPU model and library versions).
    """
    from threadpoolctl import threadpool_limits

    device = _worker_device(config.device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
        if world_size == 1 and (os.cpu_count() or 1) > 1:
            LOG.info("one CPU worker uses one core; build with `torchrun --nproc-per-node %d -m m2pdance.training "
                     "sdgpip ...` to use all %d", os.cpu_count(), os.cpu_count())
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return _build_worker(config, rank, world_size, device, control, show_progress)
    finally:
        torch.set_num_threads(threads)


def _build_worker(config: BuildConfig, rank: int, world_size: int, device: torch.device, control: RunControl,
                  show_progress: bool) -> tuple[WorkerSummary, Plan]:
    if not (0 <= rank < world_size):
        raise InputError(f"rank must be in [0, {world_size}), got {rank}")
    started = time.perf_counter()
    source = make_source(config.source, config.data, split=config.split, fps=config.fps, size=config.size,
                         seed=config.seed, video=config.video, edge_checkpoint=config.edge_checkpoint,
                         device=device, dtype=config.dtype, intensity=config.intensity, appearance=config.appearance,
                         variety=config.variety, max_joint_speed=config.max_joint_speed,
                         edge_extract=config.edge_extract(device))
    plan = make_plan(config, source, device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    _record_build(out, plan)
    done = set(finished_shards(out, build_id=plan.build_id))
    mine = list(range(rank, len(plan.shards), world_size))
    summary = WorkerSummary()
    bar = _progress_bar(rank, len(mine)) if show_progress else None
    maker: Optional[ShardMaker] = None
    try:
        for count, shard in enumerate(mine, start=1):
            if shard in done:
                summary.shards_skipped += 1
            else:
                maker = maker or ShardMaker(config, source, device, control)
                path = shard_path(out, shard)
                remove_stale_partials(path)
                write_shard(path, maker.samples(plan.shards[shard], summary), shard=shard, build_id=plan.build_id,
                            on_sample=lambda _: bar is not None and bar.set_postfix(frames=summary.frames))
                summary.shards_built += 1
            if bar is not None:
                bar.update(1)
            control.tick("sdgpip shards", count, len(mine))
    finally:
        if bar is not None:
            bar.close()
    summary.wall_seconds = time.perf_counter() - started
    return summary, plan


def _worker_device(device: str) -> torch.device:
    """``auto``/``cuda`` under torchrun: this process's GPU (``LOCAL_RANK``); CPU when there is no GPU."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(chosen)
        return chosen
    return resolve_device(device)


def dataset_index(out: Path, plan: Plan) -> Optional[dict[str, Any]]:
    """The merged index of a finished build (``None`` while shards are missing)."""
    finished = {i: x for i, x in finished_shards(out).items() if x.build_id == plan.build_id}
    if len(finished) != len(plan.shards):
        return None
    samples, frames, sources = [], 0, {}
    for shard in sorted(finished):
        for sample in finished[shard].samples:
            meta = sample.meta
            samples.append({"shard": shard, "key": sample.key, "sequence": meta["sequence"], "source": meta["source"],
                            "split": meta["split"], "frame_start": meta["frame_start"],
                            "num_frames": meta["num_frames"],
                            "fps": meta["fps"], "music_offset": meta["music_offset"]})
            frames += int(meta["num_frames"])
            sources[meta["source"]] = sources.get(meta["source"], 0) + int(meta["num_frames"])
    fps = float(plan.record["settings"]["fps"])
    return {"format": INDEX_FORMAT, "version": FORMAT_VERSION, "build_id": plan.build_id,
            "totals": {"shards": len(finished), "samples": len(samples), "frames": frames,
                       "seconds": round(frames / fps, 3), "frames_per_source": sources},
            "samples": samples}


def _distributed() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _reduce(summary: WorkerSummary, failed: bool) -> tuple[WorkerSummary, bool]:
    """Sum the processes' counts (wall time: the slowest) and whether any failed, over a gloo group."""
    import torch.distributed as dist

    values = torch.cat([summary.as_tensor(), torch.tensor([float(failed)], dtype=torch.float64)])
    wall = values[-2:-1].clone()
    dist.all_reduce(values)
    dist.all_reduce(wall, op=dist.ReduceOp.MAX)
    values[-2] = wall[0]
    return WorkerSummary.from_tensor(values[:-1]), bool(values[-1] > 0)


def run_build(config: BuildConfig, control: RunControl = NO_CONTROL, show_progress: bool = True) -> dict[str, Any]:
    """Build (or resume) a dataset as this process's share of a ``torchrun`` job, or alone.

    Under ``torchrun`` every process builds its shards, then all meet once over a gloo group (CPU
    tensors, any backend's machines) to sum the counts and learn whether any process failed; a
    failure anywhere is raised everywhere, after the others finished their shards (which a re-run
    then skips). Rank 0 writes ``index.json`` when every shard is finished.

    Returns the summary printed at the end: this run's work summed over processes, and the
    dataset's totals.
    """
    rank, world = _distributed()
    group = False
    if world > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("gloo")
            group = True
    try:
        error: Optional[BaseException] = None
        summary, plan = WorkerSummary(), None
        try:
            summary, plan = build_worker(config, rank, world, control, show_progress)
        except Exception as e:                          # reach the collective below, then re-raise
            if world == 1:
                raise
            error = e
        failed = error is not None
        if world > 1:
            summary, failed = _reduce(summary, failed)
        if error is not None:
            raise error
        if failed or plan is None:
            raise InputError("another sdgpip worker failed (its error is in its own output); fix it and re-run "
                             "the same command: finished shards are kept")
        out = Path(config.out)
        index = dataset_index(out, plan)
        if rank == 0 and index is not None:
            text = json.dumps(index, sort_keys=True, indent=1).encode()
            atomic_write(out / INDEX_FILE, lambda tmp: Path(tmp).write_bytes(text))
    finally:
        if group:
            import torch.distributed as dist
            dist.destroy_process_group()
    return {"build_id": plan.build_id, "workers": world, "this_run": dataclasses.asdict(summary),
            "dataset": None if index is None else index["totals"], "complete": index is not None}


def format_summary(summary: dict[str, Any], config: BuildConfig) -> str:
    """The human summary line block printed by the command."""
    run, data = summary["this_run"], summary["dataset"]
    rate = run["frames"] / run["wall_seconds"] if run["wall_seconds"] > 0 else 0.0
    lines = [f"sdgpip {config.source} -> {config.out} (build {summary['build_id']}, {summary['workers']} worker(s))",
             f"  this run: {run['shards_built']} shard(s) built, {run['shards_skipped']} already finished; "
             f"{run['clips']} clip(s), {run['samples']} sample(s), {run['frames']} frames = "
             f"{run['seconds_of_motion']:.1f} s of dance in {run['wall_seconds']:.1f} s ({rate:.1f} frames/s)"]
    if data is None:
        lines.append("  the dataset is not complete yet (other workers still running or failed): re-run the same "
                     "command to finish it")
    else:
        per_source = ", ".join(f"{k}: {v}" for k, v in sorted(data["frames_per_source"].items()))
        lines.append(f"  dataset: {data['shards']} shard(s), {data['samples']} sample(s), {data['frames']} frames "
                     f"= {data['seconds']:.1f} s ({per_source}); index: {Path(config.out) / INDEX_FILE}")
    return "\n".join(lines)
