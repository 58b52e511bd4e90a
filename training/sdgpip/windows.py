"""Stage-1 training windows over an SDGPip dataset (music features -> pose guidance + heatmaps).

The stage-1 counterpart of :class:`..datasets.Stage1Windows` for the shards the SDGPip builder
writes (:mod:`.shards`): item ``i`` is ``sequence_length`` consecutive frames of one sample
(windows never cross samples: samples are separate clips or separately generated EDGE slices),
read by random access, so :func:`..datasets.batch_indices_for_step` picks every step's windows
from ``(seed, step)`` alone and a resumed run sees the batches of an uninterrupted one.

An item holds float32 ``features (L, D)`` and ``heatmaps (L, K, G, G)`` in [0, 1], and the pose
guidance target either as stored (``guidance (L, C, G, G)`` float32, the builder's ``guidance``
mode) or as the four uint8 maps ``maps (L, 4, S, S, 3)`` in Champ's guidance-type order
(depth, normal, semantic_map, dwpose), which :class:`..guidance_targets.GuidanceTargets` encodes
on the training device (:attr:`SDGPipWindows.needs_encoders`).
"""
from __future__ import annotations

import logging
import os
from bisect import bisect_right
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ...m2penc.encoder.config import M2PEncConfig
from ...m2penc.errors import InputError
from .shards import SDGPipShards
from .targets import MAP_FIELDS

LOG = logging.getLogger("m2pdance.training")
PathLike = Union[str, os.PathLike]


def is_sdgpip_folder(folder: PathLike) -> bool:
    """True if ``folder`` looks like an SDGPip build (``shards/shard-*.json``)."""
    shards = os.path.join(os.fspath(folder), "shards")
    return os.path.isdir(shards) and any(n.startswith("shard-") and n.endswith(".json") for n in os.listdir(shards))


class SDGPipWindows(Dataset):
    """Map-style dataset over every ``sequence_length``-frame window of an SDGPip build.

    Args:
        folder: the builder's ``--out`` folder.
        sequence_length: frames per window (paper: 75); shorter samples are skipped (logged).
        model: the M2PEnc config trained; fps, feature kind/width, grid and heatmap count are checked.
        splits, sources: keep only samples of these splits / sources (``None``: all).
    """

    def __init__(self, folder: PathLike, sequence_length: int, model: Optional[M2PEncConfig] = None,
                 splits: Optional[Sequence[str]] = None, sources: Optional[Sequence[str]] = None):
        if sequence_length < 1:
            raise InputError(f"sequence_length must be >= 1, got {sequence_length}")
        self.folder, self.sequence_length = folder, sequence_length
        self.data = SDGPipShards(folder, sources=sources, splits=splits)
        entries = {(index.shard, s.key): s.arrays for index in self.data.shards.values() for s in index.samples}
        usable = [i for i, ref in enumerate(self.data.samples) if ref.num_frames >= sequence_length]
        skipped = len(self.data.samples) - len(usable)
        if not usable:
            longest = max(ref.num_frames for ref in self.data.samples)
            raise InputError(f"no sample of {folder} has {sequence_length} frames (the longest has {longest}); "
                             "lower sequence_length or build longer clips")
        if skipped:
            LOG.info("SDGPip: %d sample(s) shorter than %d frames are not used", skipped, sequence_length)
        arrays = [entries[(self.data.samples[i].shard, self.data.samples[i].key)] for i in usable]
        self.stored_guidance = all("guidance" in a for a in arrays)
        wanted = ("features", "heatmaps", "guidance") if self.stored_guidance else ("features", "heatmaps", *MAP_FIELDS)
        missing = sorted({name for a in arrays for name in wanted if name not in a})
        if missing:
            raise InputError(f"{folder} lacks {missing} in some samples; rebuild it with `m2pdance-train sdgpip`")
        self._check(arrays, model)
        self.fps = float(self.data.samples[usable[0]].meta["fps"])
        self.feature_kind = str(self.data.samples[usable[0]].meta["feature_kind"])
        self._samples = usable
        counts = [self.data.samples[i].num_frames - sequence_length + 1 for i in usable]
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
        """``index`` -> (sample number in :attr:`data`, start frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        k = bisect_right(self._offsets, index) - 1
        return self._samples[k], int(index - self._offsets[k])

    def sequential_indices(self) -> list[int]:
        """Indices of the non-overlapping windows (starts 0, L, 2L, ... of each sample), in order."""
        length = self.sequence_length
        return [int(self._offsets[k]) + start for k, i in enumerate(self._samples)
                for start in range(0, self.data.samples[i].num_frames - length + 1, length)]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample, start = self.locate(int(index))
        stop = start + self.sequence_length
        if self.stored_guidance:
            raw = self.data.read(sample, ("features", "heatmaps", "guidance"), start, stop)
        else:
            raw = self.data.read(sample, ("features", "heatmaps", *MAP_FIELDS), start, stop)
        item = {"features": torch.from_numpy(raw["features"].astype(np.float32)),
                "heatmaps": torch.from_numpy(raw["heatmaps"]).float().div_(255.0)}
        if self.stored_guidance:
            item["guidance"] = torch.from_numpy(raw["guidance"].astype(np.float32))
        else:
            item["maps"] = torch.from_numpy(np.stack([raw[name] for name in MAP_FIELDS], axis=1))
        return item
