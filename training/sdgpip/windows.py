"""Stage-1 training windows over an SDGPip dataset (music features -> pose guidance + heatmaps).

The stage-1 counterpart of :class:`..datasets.Stage1Windows` for the shards the SDGPip builder
writes (:mod:`.shards`): item ``i`` is ``sequence_length`` consecutive frames of one clip. The builder
cuts long clips into consecutive samples (``chunk_frames``); those are joined again here, so windows
cross chunk edges but never clips (separate dances, or separately generated EDGE slices). Windows
are read by random access, so :func:`..datasets.batch_indices_for_step` picks every step's windows
from ``(seed, step)`` alone and a resumed run sees the batches of an uninterrupted one.

An item holds float32 ``features (L, D)`` and ``heatmaps (L, K, G, G)`` in [0, 1], and the pose
guidance target either as stored (``guidance (L, C, G, G)`` float32, the builder's ``guidance``
mode) or as the four uint8 maps ``maps (L, 4, S, S, 3)`` in Champ's guidance-type order
(depth, normal, semantic_map, dwpose), which :class:`..guidance_targets.GuidanceTargets` encodes
on the training device (:attr:`SDGPipWindows.needs_encoders`).
"""
from __future__ import annotations

import json
import logging
import os
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ...m2penc.encoder.config import M2PEncConfig
from ...m2penc.errors import InputError
from .shards import SampleRef, SDGPipShards
from .targets import MAP_FIELDS

LOG = logging.getLogger("m2pdance.training.sdgpip")
#: Written by the builder when every shard is finished (:mod:`.builder`).
INDEX_FILE = "index.json"
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class ClipSegment:
    """Consecutive samples of one clip: sample numbers, each one's first frame in the clip and length."""

    samples: tuple[int, ...]
    starts: tuple[int, ...]
    counts: tuple[int, ...]

    @property
    def frames(self) -> int:
        """Frames of the joined samples."""
        return sum(self.counts)


def clip_segments(samples: Sequence[SampleRef]) -> list[ClipSegment]:
    """Join samples that continue each other (same clip, next ``frame_start``) into segments."""
    groups: list[list[int]] = []
    for i, ref in enumerate(samples):
        if groups:
            prev = samples[groups[-1][-1]]
            if (prev.meta.get("clip") == ref.meta.get("clip") and prev.shard == ref.shard
                    and int(prev.meta["frame_start"]) + prev.num_frames == int(ref.meta["frame_start"])):
                groups[-1].append(i)
                continue
        groups.append([i])
    covered = [[0] + list(np.cumsum([samples[i].num_frames for i in g])[:-1]) for g in groups]
    return [ClipSegment(tuple(g), tuple(int(x) for x in c), tuple(samples[i].num_frames for i in g))
            for g, c in zip(groups, covered)]


def read_segment_frames(data: SDGPipShards, segment: ClipSegment, fields: Sequence[str], start: int,
                        stop: int) -> dict[str, np.ndarray]:
    """Frames ``[start, stop)`` of ``fields`` of a clip segment, read from the samples they lie in."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in fields}
    for sample, first, count in zip(segment.samples, segment.starts, segment.counts):
        lo, hi = max(start, first), min(stop, first + count)
        if lo < hi:
            for name, value in data.read(sample, list(fields), lo - first, hi - first).items():
                parts[name].append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def check_finished(folder: PathLike, data: SDGPipShards) -> None:
    """Refuse a build that is not finished (``index.json`` is written last, when every shard is)."""
    index_file = Path(folder) / INDEX_FILE
    build_id = next(iter(data.shards.values())).build_id
    try:
        finished = json.loads(index_file.read_text(encoding="utf-8")).get("build_id") == build_id
    except (OSError, ValueError, AttributeError):
        finished = False
    if not finished:
        raise InputError(f"the SDGPip build in {folder} is not finished ({INDEX_FILE} is missing or from another "
                         "build): re-run the same `m2pdance-train sdgpip` command to finish it, then train")


def is_sdgpip_folder(folder: PathLike) -> bool:
    """True if ``folder`` looks like an SDGPip build (``shards/shard-*.json``)."""
    shards = os.path.join(os.fspath(folder), "shards")
    return os.path.isdir(shards) and any(n.startswith("shard-") and n.endswith(".json") for n in os.listdir(shards))


class SDGPipWindows(Dataset):
    """Map-style dataset over every ``sequence_length``-frame window of an SDGPip build.

    Args:
        folder: the builder's ``--out`` folder.
        sequence_length: frames per window (paper: 75); shorter clips are skipped (logged).
        model: the M2PEnc config trained; fps, feature kind/width, grid and heatmap count are checked.
        splits, sources: keep only samples of these splits / sources (``None``: all).
    """

    def __init__(self, folder: PathLike, sequence_length: int, model: Optional[M2PEncConfig] = None,
                 splits: Optional[Sequence[str]] = None, sources: Optional[Sequence[str]] = None):
        if sequence_length < 1:
            raise InputError(f"sequence_length must be >= 1, got {sequence_length}")
        self.folder, self.sequence_length = folder, sequence_length
        self.data = SDGPipShards(folder, sources=sources, splits=splits)
        check_finished(folder, self.data)
        by_key = {(index.shard, s.key): s.arrays for index in self.data.shards.values() for s in index.samples}
        arrays = [by_key[(ref.shard, ref.key)] for ref in self.data.samples]
        self.stored_guidance = all("guidance" in a for a in arrays)
        target = ("guidance",) if self.stored_guidance else MAP_FIELDS
        wanted = ("features", "heatmaps", *target)
        missing = sorted({name for a in arrays for name in wanted if name not in a})
        if missing:
            raise InputError(f"{folder} lacks {missing} in some samples; rebuild it with `m2pdance-train sdgpip`")
        self._check(arrays, model)
        self.fields = wanted
        self.fps = float(self.data.samples[0].meta["fps"])
        self.feature_kind = str(self.data.samples[0].meta["feature_kind"])
        segments = clip_segments(self.data.samples)
        self._segments = [seg for seg in segments if seg.frames >= sequence_length]
        if not self._segments:
            longest = max(seg.frames for seg in segments)
            raise InputError(f"no clip of {folder} has {sequence_length} frames (the longest has {longest}); "
                             "lower sequence_length or build longer clips")
        if len(self._segments) < len(segments):
            LOG.info("SDGPip: %d clip(s) shorter than %d frames are not used", len(segments) - len(self._segments),
                     sequence_length)
        counts = [seg.frames - sequence_length + 1 for seg in self._segments]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.shards = sorted(self.data.shards)            # for logging, as Stage1Windows.shards

    def _check(self, arrays: list, model: Optional[M2PEncConfig]) -> None:
        metas = [self.data.samples[i].meta for i in range(len(self.data.samples))]
        for key in ("fps", "feature_kind", "grid", "size"):
            values = {m.get(key) for m in metas}
            if len(values) != 1:
                raise InputError(f"{self.folder} mixes samples with different {key} {sorted(map(str, values))}")
        shapes = {(a["features"].shape[1], a["heatmaps"].shape[1:]) for a in arrays}
        if len(shapes) != 1:
            raise InputError(f"{self.folder} mixes feature widths or heatmap shapes: {sorted(shapes)}")
        (dim, heat_shape), = shapes
        self.feature_dim, self.heatmap_shape = int(dim), tuple(int(x) for x in heat_shape)
        self.guidance_shape = tuple(int(x) for x in arrays[0]["guidance"].shape[1:]) if self.stored_guidance else None
        if model is None:
            return
        meta = metas[0]
        problems = []
        if meta["feature_kind"] != model.feature_kind or self.feature_dim != model.in_dim:
            problems.append(f"it holds {meta['feature_kind']!r} features ({self.feature_dim}-d) but the model reads "
                            f"{model.feature_kind!r} ({model.in_dim}-d)")
        if abs(float(meta["fps"]) - model.fps) > 1e-6:
            problems.append(f"it is at {meta['fps']} fps but the model is configured for {model.fps} fps")
        if self.heatmap_shape != (model.heatmap_channels, model.grid_size, model.grid_size):
            problems.append(f"its heatmaps are {self.heatmap_shape} but the model predicts "
                            f"{(model.heatmap_channels, model.grid_size, model.grid_size)} (build with --size "
                            f"{8 * model.grid_size} for a {model.grid_size}-grid model)")
        if self.guidance_shape is not None and self.guidance_shape[0] != model.guidance_channels:
            problems.append(f"its stored guidance has {self.guidance_shape[0]} channels, the model "
                            f"{model.guidance_channels}")
        if problems:
            raise InputError(f"the SDGPip data {self.folder} does not fit the model: " + "; ".join(problems))

    @property
    def needs_encoders(self) -> bool:
        """True when guidance must be computed from the maps (Champ's guidance encoders needed)."""
        return not self.stored_guidance

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``index`` -> (clip segment number, start frame in the clip segment)."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        k = bisect_right(self._offsets, index) - 1
        return k, int(index - self._offsets[k])

    def sequential_indices(self) -> list[int]:
        """Indices of the non-overlapping windows (starts 0, L, 2L, ... of each clip), in order."""
        length = self.sequence_length
        return [int(self._offsets[k]) + start for k, seg in enumerate(self._segments)
                for start in range(0, seg.frames - length + 1, length)]

    def read_frames(self, segment: int, start: int, stop: int) -> dict[str, np.ndarray]:
        """Frames ``[start, stop)`` of clip segment ``segment``, read from the samples they lie in."""
        return read_segment_frames(self.data, self._segments[segment], self.fields, start, stop)

    def features(self, index: int) -> torch.Tensor:
        """Window ``index``'s music features alone, ``(L, D)`` float32 (nothing else is read)."""
        segment, start = self.locate(int(index))
        raw = read_segment_frames(self.data, self._segments[segment], ("features",), start, start + self.sequence_length)
        return torch.from_numpy(raw["features"].astype(np.float32))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        segment, start = self.locate(int(index))
        raw = self.read_frames(segment, start, start + self.sequence_length)
        item = {"features": torch.from_numpy(raw["features"].astype(np.float32)),
                "heatmaps": torch.from_numpy(raw["heatmaps"]).float().div_(255.0)}
        if self.stored_guidance:
            item["guidance"] = torch.from_numpy(raw["guidance"].astype(np.float32))
        else:
            item["maps"] = torch.from_numpy(np.stack([raw[name] for name in MAP_FIELDS], axis=1))
        return item
