"""On-disk stage-1 pairs (music features -> pose guidance, keypoint heatmaps) and their windows.

Format: a folder of ``*.safetensors`` shards, one continuous clip (or several concatenated clips
of one dance) per shard, frame-aligned at one fps:

* ``features``  ``(N, D)``            float32/float16 music features (D = 35 baseline, 4800 Jukebox)
* ``guidance``  ``(N, C_guid, G, G)`` float16/bfloat16/float32 pose guidance (Champ: 320 x 64 x 64)
* ``heatmaps``  ``(N, C_heat, G, G)`` float16/bfloat16/float32 keypoint heatmaps

and string metadata ``m2pdance.kind = "stage1_pairs"``, ``format_version``, ``fps`` and
``feature_kind`` (``baseline`` | ``jukebox``). Guidance at the paper's size is ~2.6 MB per frame
in float16, so a real dataset does not fit in RAM: :class:`Stage1Windows` reads only the header
of each shard up front and memory-maps the rows of one window at a time
(``safe_open(...).get_slice``).

A window is ``sequence_length`` consecutive frames of one shard (windows never cross shards,
since shards are separate clips). :class:`Stage1Windows` is a map-style dataset over *every*
valid start frame; :func:`batch_indices_for_step` chooses the windows of each optimizer step
from ``(seed, step)`` alone, so a resumed run sees exactly the batches of an uninterrupted one.
"""
from __future__ import annotations

import math
import os
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol, Union

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset, Sampler

from ..m2penc.audio.featureset import FEATURE_DIMS
from ..m2penc.checkpoint import atomic_write
from ..m2penc.encoder.config import M2PEncConfig
from ..m2penc.errors import InputError

PathLike = Union[str, os.PathLike]
SHARD_KIND = "stage1_pairs"
FORMAT_VERSION = "1"
SHARD_SUFFIX = ".safetensors"
KEYS = ("features", "guidance", "heatmaps")
#: Map-target dtypes a shard may store (float16 halves the disk size of guidance).
MAP_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
FEATURE_DTYPES = (torch.float16, torch.float32)
_SAFETENSORS_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
                       "F64": torch.float64}


@dataclass(frozen=True)
class ShardInfo:
    """Header of one shard: everything needed to check and index it without reading tensors.

    Attributes:
        path: the shard file.
        num_frames: N.
        feature_dim: D.
        guidance_shape: ``(C_guid, G, G)``; heatmap_shape: ``(C_heat, G, G)``.
        fps, feature_kind: from the metadata.
    """

    path: Path
    num_frames: int
    feature_dim: int
    guidance_shape: tuple[int, int, int]
    heatmap_shape: tuple[int, int, int]
    fps: float
    feature_kind: str


# ----- writing ----------------------------------------------------------------------------

def _check_arrays(features: torch.Tensor, guidance: torch.Tensor, heatmaps: torch.Tensor,
                  feature_kind: str) -> None:
    if feature_kind not in FEATURE_DIMS:
        raise InputError(f"feature_kind must be one of {sorted(FEATURE_DIMS)}, got {feature_kind!r}")
    if features.ndim != 2 or features.shape[1] != FEATURE_DIMS[feature_kind]:
        raise InputError(f"features must be (N, {FEATURE_DIMS[feature_kind]}) for {feature_kind!r}, "
                         f"got {tuple(features.shape)}")
    for name, maps in (("guidance", guidance), ("heatmaps", heatmaps)):
        if maps.ndim != 4 or maps.shape[-1] != maps.shape[-2]:
            raise InputError(f"{name} must be (N, C, G, G), got {tuple(maps.shape)}")
        if maps.dtype not in MAP_DTYPES:
            raise InputError(f"{name} must be one of {MAP_DTYPES}, got {maps.dtype}")
    if features.dtype not in FEATURE_DTYPES:
        raise InputError(f"features must be one of {FEATURE_DTYPES}, got {features.dtype}")
    lengths = {int(features.shape[0]), int(guidance.shape[0]), int(heatmaps.shape[0])}
    if len(lengths) != 1 or 0 in lengths:
        raise InputError(f"features, guidance and heatmaps must have the same N >= 1 frames, got "
                         f"{features.shape[0]}, {guidance.shape[0]}, {heatmaps.shape[0]}")
    if guidance.shape[-1] != heatmaps.shape[-1]:
        raise InputError(f"guidance and heatmaps must share the grid, got {tuple(guidance.shape[-2:])} "
                         f"and {tuple(heatmaps.shape[-2:])}")


def write_shard(path: PathLike, features: torch.Tensor, guidance: torch.Tensor, heatmaps: torch.Tensor,
                fps: float, feature_kind: str) -> Path:
    """Write one stage-1 shard atomically.

    Args:
        path: target ``.safetensors`` file (parent folders are created).
        features: ``(N, D)`` music features, one row per video frame.
        guidance: ``(N, C_guid, G, G)`` pose guidance targets (stored in the given dtype).
        heatmaps: ``(N, C_heat, G, G)`` keypoint heatmap targets (stored in the given dtype).
        fps: frame rate of the rows; feature_kind: ``baseline`` or ``jukebox``.
    """
    path = Path(path)
    if path.suffix != SHARD_SUFFIX:
        raise InputError(f"shard files must end in {SHARD_SUFFIX}, got {path.name}")
    _check_arrays(features, guidance, heatmaps, feature_kind)
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be > 0, got {fps}")
    tensors = {name: t.detach().cpu().contiguous()
               for name, t in zip(KEYS, (features, guidance, heatmaps))}
    metadata = {"m2pdance.kind": SHARD_KIND, "format_version": FORMAT_VERSION, "fps": repr(float(fps)),
                "feature_kind": feature_kind}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


# ----- reading headers ----------------------------------------------------------------------

def read_shard_info(path: PathLike) -> ShardInfo:
    """The header of one shard (shapes, fps, feature kind); reads no tensor data."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            keys = set(f.keys())
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in KEYS if k in keys}
            dtypes = {k: f.get_slice(k).get_dtype() for k in KEYS if k in keys}
    except Exception as e:  # truncated file, not safetensors at all
        raise InputError(f"{path} is not a readable safetensors shard ({type(e).__name__}: {e})") from e
    if meta.get("m2pdance.kind") != SHARD_KIND:
        raise InputError(f"{path.name} is not a stage-1 shard (metadata m2pdance.kind="
                         f"{meta.get('m2pdance.kind')!r}); write shards with write_shard()")
    missing = [k for k in KEYS if k not in shapes]
    if missing:
        raise InputError(f"{path.name} lacks tensors {missing}; a stage-1 shard holds {list(KEYS)}")
    for key, dtype in dtypes.items():
        if _SAFETENSORS_DTYPES.get(dtype) is None:
            raise InputError(f"{path.name}: {key} has dtype {dtype}; expected a float type")
    f_shape, g_shape, h_shape = shapes["features"], shapes["guidance"], shapes["heatmaps"]
    if len(f_shape) != 2 or len(g_shape) != 4 or len(h_shape) != 4 or len({f_shape[0], g_shape[0], h_shape[0]}) != 1:
        raise InputError(f"{path.name}: expected features (N, D), guidance (N, C, G, G), heatmaps "
                         f"(N, C, G, G) with one N, got {f_shape}, {g_shape}, {h_shape}")
    try:
        fps = float(meta["fps"])
        kind = meta["feature_kind"]
    except (KeyError, ValueError) as e:
        raise InputError(f"{path.name}: metadata needs a numeric 'fps' and a 'feature_kind' ({e})") from e
    return ShardInfo(path=path, num_frames=int(f_shape[0]), feature_dim=int(f_shape[1]),
                     guidance_shape=tuple(g_shape[1:]), heatmap_shape=tuple(h_shape[1:]), fps=fps,
                     feature_kind=kind)


def list_shards(folder: PathLike) -> list[Path]:
    """The shard files of a dataset folder, sorted by name (the sequential order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"stage-1 data folder not found: {folder}")
    shards = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == SHARD_SUFFIX)
    if not shards:
        raise InputError(f"no {SHARD_SUFFIX} shards in {folder}; create a dataset with write_shard() "
                         "or `m2pdance-train make-toy-data --out DIR`")
    return shards


def check_shard(info: ShardInfo, model: M2PEncConfig, sequence_length: int) -> None:
    """Refuse a shard that does not fit the model or is shorter than one window."""
    name = info.path.name
    if info.feature_kind != model.feature_kind or info.feature_dim != model.in_dim:
        raise InputError(f"{name} holds {info.feature_kind!r} features ({info.feature_dim}-d) but the "
                         f"model reads {model.feature_kind!r} ({model.in_dim}-d); pick a model preset "
                         f"for {info.feature_kind!r} features or the matching dataset")
    if abs(info.fps - model.fps) > 1e-6:
        raise InputError(f"{name} is at {info.fps} fps but the model is configured for {model.fps} fps")
    grid = (model.grid_size, model.grid_size)
    expected = {"guidance": (model.guidance_channels, *grid), "heatmaps": (model.heatmap_channels, *grid)}
    for key, shape in (("guidance", info.guidance_shape), ("heatmaps", info.heatmap_shape)):
        if tuple(shape) != expected[key]:
            raise InputError(f"{name}: {key} frames are {tuple(shape)} but the model predicts "
                             f"{expected[key]} (C, G, G); the dataset was made for another model config")
    if info.num_frames < sequence_length:
        raise InputError(f"{name} has {info.num_frames} frames, fewer than one {sequence_length}-frame "
                         "window; lower sequence_length or remove/merge the short shard")


# ----- the dataset --------------------------------------------------------------------------

class Stage1Windows(Dataset):
    """Map-style dataset over every ``sequence_length``-frame window of a shard folder.

    Item ``i`` is the window at the i-th valid start frame (shards in name order), a dict of
    float32 CPU tensors, frames first as stored:
    ``features (L, D)``, ``guidance (L, C_guid, G, G)``, ``heatmaps (L, C_heat, G, G)``.
    Shards are opened lazily and memory-mapped; only the window's rows are read.
    """

    def __init__(self, folder: PathLike, sequence_length: int, model: Optional[M2PEncConfig] = None):
        if sequence_length < 1:
            raise InputError(f"sequence_length must be >= 1, got {sequence_length}")
        self.folder = Path(folder)
        self.sequence_length = sequence_length
        self.shards = [read_shard_info(p) for p in list_shards(self.folder)]
        self._check_consistent()
        for info in self.shards:
            if model is not None:
                check_shard(info, model, sequence_length)
            elif info.num_frames < sequence_length:
                raise InputError(f"{info.path.name} has {info.num_frames} frames, fewer than one "
                                 f"{sequence_length}-frame window")
        starts = [info.num_frames - sequence_length + 1 for info in self.shards]
        self._offsets = np.concatenate([[0], np.cumsum(starts)]).astype(np.int64)
        self._handles: dict[int, Any] = {}

    def _check_consistent(self) -> None:
        first = self.shards[0]
        for info in self.shards[1:]:
            same = (info.feature_kind, info.feature_dim, info.fps, info.guidance_shape, info.heatmap_shape)
            if same != (first.feature_kind, first.feature_dim, first.fps, first.guidance_shape, first.heatmap_shape):
                raise InputError(f"shards {first.path.name} and {info.path.name} disagree on feature kind, "
                                 "fps or map shapes; one dataset folder must hold one format")

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``index`` -> (shard number, start frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        shard = bisect_right(self._offsets, index) - 1
        return shard, int(index - self._offsets[shard])

    def sequential_indices(self) -> list[int]:
        """Indices of the non-overlapping windows (starts 0, L, 2L, ... of each shard), in order."""
        length = self.sequence_length
        return [int(self._offsets[s]) + start for s, info in enumerate(self.shards)
                for start in range(0, info.num_frames - length + 1, length)]

    def _handle(self, shard: int) -> Any:
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.shards[shard].path), framework="pt")
        return self._handles[shard]

    def features(self, index: int) -> torch.Tensor:
        """Window ``index``'s music features alone, ``(L, D)`` float32 (nothing else is read)."""
        shard, start = self.locate(int(index))
        return self._handle(shard).get_slice("features")[start:start + self.sequence_length].to(torch.float32)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        shard, start = self.locate(int(index))
        handle = self._handle(shard)
        stop = start + self.sequence_length
        return {key: handle.get_slice(key)[start:stop].to(torch.float32) for key in KEYS}

    def __getstate__(self) -> dict[str, Any]:
        """Open file handles do not cross into DataLoader workers; each worker reopens lazily."""
        return {**self.__dict__, "_handles": {}}


# ----- which windows each step sees ---------------------------------------------------------

class WindowIndex(Protocol):
    """What the step samplers need of a window dataset (:class:`Stage1Windows`, SDGPip's windows)."""

    def __len__(self) -> int: ...

    def sequential_indices(self) -> list[int]: ...


def batch_indices_for_step(dataset: "WindowIndex", step: int, batch_size: int, seed: int,
                           sampling: str) -> list[int]:
    """Window indices of optimizer step ``step`` (0-based), a pure function of its arguments.

    ``random``: ``batch_size`` starts uniform over every valid start frame (with replacement),
    drawn from a generator seeded by ``(seed, step)``. ``sequential``: the non-overlapping
    windows in file order, ``batch_size`` per step, wrapping around at the end of an epoch.
    """
    if sampling == "random":
        rng = np.random.default_rng((seed, step))
        return rng.integers(0, len(dataset), size=batch_size).tolist()
    if sampling == "sequential":
        order = dataset.sequential_indices()
        return [order[(step * batch_size + i) % len(order)] for i in range(batch_size)]
    raise InputError(f"window sampling must be 'random' or 'sequential', got {sampling!r}")


def steps_per_epoch(dataset: "WindowIndex", batch_size: int) -> int:
    """Steps for one pass over the non-overlapping windows."""
    return max(1, math.ceil(len(dataset.sequential_indices()) / batch_size))


def micro_batch(indices: list, rank: int, world_size: int, accumulation: int, micro: int) -> list[int]:
    """The part of a step's global batch that process ``rank`` runs in accumulation step ``micro``.

    The global batch is cut into ``world_size * accumulation`` equal slices, ordered micro-step
    first: slice ``micro * world_size + rank``. Every index is used exactly once per step, so the
    mean of the micro-batch losses over processes and micro-steps is the global batch's mean.
    """
    parts = world_size * accumulation
    if len(indices) % parts:
        raise InputError(f"the batch of {len(indices)} cannot be split into {world_size} process(es) x "
                         f"{accumulation} accumulation step(s); pick a batch size divisible by {parts}")
    size = len(indices) // parts
    start = (micro * world_size + rank) * size
    return indices[start:start + size]


def sample_seed(seed: int, step: int, position: int) -> int:
    """The draw seed of the sample at ``position`` in step ``step``'s global batch (63 bits).

    Models that draw noise per sample (stages 2-3, :class:`.diffusion_loss.Draws`) use it, so a
    sample's noise does not depend on the process or micro-batch that runs it.
    """
    return int(np.random.SeedSequence((seed, step, position)).generate_state(1, np.uint64)[0] >> 1)


class SeededItems(Dataset):
    """A dataset addressed by ``(index, seed)`` pairs: the item plus ``seed`` (a long scalar).

    The item is ``dataset.seeded_item(index, seed)`` when the dataset has it (its random choices,
    e.g. a reference frame, then depend on the sample's seed), else ``dataset[index]``.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        seeded = getattr(self.dataset, "seeded_item", None)
        item = seeded(index, seed) if seeded is not None else self.dataset[index]
        return {**item, "seed": torch.tensor(seed, dtype=torch.long)}


class StepBatchSampler(Sampler[list[int]]):
    """Micro-batch sampler for steps ``start_step .. total_steps - 1`` (see :func:`batch_indices_for_step`).

    Yields ``accumulation`` micro-batches per step: this process's slices (:func:`micro_batch`);
    with ``with_seeds``, ``(index, sample_seed)`` pairs for :class:`SeededItems`.
    """

    def __init__(self, dataset: "WindowIndex", batch_size: int, seed: int, sampling: str,
                 start_step: int, total_steps: int, rank: int = 0, world_size: int = 1, accumulation: int = 1,
                 with_seeds: bool = False):
        self.dataset, self.batch_size, self.seed, self.sampling = dataset, batch_size, seed, sampling
        self.start_step, self.total_steps = start_step, total_steps
        self.rank, self.world_size, self.accumulation = rank, world_size, accumulation
        self.with_seeds = with_seeds
        micro_batch(list(range(batch_size)), rank, world_size, accumulation, 0)       # divisible, or InputError

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.accumulation

    def __iter__(self) -> Iterator[list]:
        for step in range(self.start_step, self.total_steps):
            indices: list = batch_indices_for_step(self.dataset, step, self.batch_size, self.seed, self.sampling)
            if self.with_seeds:
                indices = [(i, sample_seed(self.seed, step, k)) for k, i in enumerate(indices)]
            for micro in range(self.accumulation):
                yield micro_batch(indices, self.rank, self.world_size, self.accumulation, micro)
