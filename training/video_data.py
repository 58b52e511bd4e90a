"""Training data of stages 2 and 3: video frames, music features and guidance of an SDGPip build.

Reads a build made with video (``m2pdance-train sdgpip --source aist --video``: the AIST++ C09
frames cropped to the dancer, aligned pixel for pixel with the rendered maps). Clips cut into
consecutive samples by the builder are joined again (:func:`.sdgpip.windows.clip_segments`), so
windows cross chunk edges but never clips. Both datasets are map-style with deterministic items
(the reference frame is drawn from ``(seed, index, the sample's draw seed)``: a new reference at
every visit of an item, the same one in a resumed run or on another process split).

* :class:`Stage2Pairs` - item ``i`` is one target frame of a clip (every frame of every clip, in
  order), a reference frame of the same clip (uniform over the frames at least ``min_gap`` away,
  default: any other frame; Champ's image stage uses a 30-frame margin), and the
  ``window_frames``-long window of music features **centred** on the target, shifted to stay
  inside the clip, with ``frame`` the target's row in it.
* :class:`Stage3Clips` - item ``i`` is ``num_frames`` consecutive frames of one clip (every start
  position, like :class:`.sdgpip.windows.SDGPipWindows`), their features and guidance target,
  and a reference frame of the same clip drawn uniformly from the frames **outside** the clip
  window (any frame of the clip when the window covers all of it); Champ's video stage draws
  it from the whole video.

Items are dicts of tensors in the layout :class:`.stage2.Stage2Module` /
:class:`.stage3.Stage3Module` take after default collation: images float32 ``(3, S, S)`` in [0, 1].
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..m2penc.encoder.config import M2PEncConfig
from ..m2penc.errors import InputError
from .sdgpip.shards import SDGPipShards
from .sdgpip.targets import MAP_FIELDS

#: What a clip dataset serves as the guidance target (:class:`_VideoClips`).
TARGET_MODES = ("none", "guidance", "maps")
from .sdgpip.windows import PathLike, check_finished, clip_segments, read_segment_frames

LOG = logging.getLogger("m2pdance.training")
_VIDEO_HINT = "rebuild it with video: `m2pdance-train sdgpip --source aist --video --data AIST_DIR --out DIR`"


def _images(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(L, S, S, 3)`` -> float32 ``(L, 3, S, S)`` in [0, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)


class _VideoClips(Dataset):
    """The clips of a finished SDGPip build with video, joined across chunks; shared checks.

    Args:
        folder: the builder's ``--out`` folder.
        min_frames: clips with fewer frames are skipped (logged).
        model: M2PEnc config to check the features (kind, width, fps) and stored guidance against.
        splits, sources: keep only samples of these splits / sources (``None``: all).
        targets: which guidance target to serve: ``none``, ``guidance`` (the stored guidance when the build
            has it, else the four maps) or ``maps`` (always the four maps).
    """

    def __init__(self, folder: PathLike, min_frames: int, model: Optional[M2PEncConfig],
                 splits: Optional[Sequence[str]], sources: Optional[Sequence[str]], targets: str) -> None:
        if targets not in TARGET_MODES:
            raise InputError(f"targets must be one of {TARGET_MODES}, got {targets!r}")
        self.folder = folder
        self.data = SDGPipShards(folder, sources=sources, splits=splits)
        check_finished(folder, self.data)
        by_key = {(index.shard, s.key): s.arrays for index in self.data.shards.values() for s in index.samples}
        arrays = [by_key[(ref.shard, ref.key)] for ref in self.data.samples]
        if not all("video" in a for a in arrays):
            raise InputError(f"the SDGPip build {folder} has no video frames (stages 2 and 3 train on video); "
                             f"{_VIDEO_HINT}")
        self.stored_guidance = targets != "maps" and all("guidance" in a for a in arrays)
        target_fields = {"none": (), "maps": MAP_FIELDS, "guidance": ("guidance",) if self.stored_guidance else MAP_FIELDS}
        wanted = ("video", "features") + target_fields[targets]
        missing = sorted({name for a in arrays for name in wanted if name not in a})
        if missing:
            raise InputError(f"{folder} lacks {missing} in some samples; rebuild it with `m2pdance-train sdgpip`")
        self.target_fields = wanted[2:]
        metas = [ref.meta for ref in self.data.samples]
        for key in ("fps", "feature_kind", "size"):
            values = {str(m.get(key)) for m in metas}
            if len(values) != 1:
                raise InputError(f"{folder} mixes samples with different {key} {sorted(values)}")
        shapes = {(tuple(a["video"].shape[1:]), a["features"].shape[1]) for a in arrays}
        if len(shapes) != 1:
            raise InputError(f"{folder} mixes video frame sizes or feature widths: {sorted(shapes)}")
        (frame_shape, dim), = shapes
        if frame_shape[0] != frame_shape[1] or frame_shape[0] % 8:
            raise InputError(f"{folder} holds {frame_shape[1]}x{frame_shape[0]} video frames; stages 2-3 need "
                             f"square frames of a multiple of 8 pixels (the VAE): rebuild with --size 512")
        self.size, self.feature_dim = int(frame_shape[0]), int(dim)
        self.fps = float(metas[0]["fps"])
        self.feature_kind = str(metas[0]["feature_kind"])
        self.guidance_shape = (tuple(int(x) for x in arrays[0]["guidance"].shape[1:])
                               if targets != "none" and self.stored_guidance else None)
        if model is not None:
            self._check_model(model)
        segments = clip_segments(self.data.samples)
        self._segments = [seg for seg in segments if seg.frames >= min_frames]
        if not self._segments:
            longest = max(seg.frames for seg in segments)
            raise InputError(f"no clip of {folder} has {min_frames} frames (the longest has {longest}); use "
                             "shorter windows or build longer clips")
        if len(self._segments) < len(segments):
            LOG.info("%s: %d clip(s) shorter than %d frames are not used", folder,
                     len(segments) - len(self._segments), min_frames)

    def _check_model(self, model: M2PEncConfig) -> None:
        problems = []
        if self.feature_kind != model.feature_kind or self.feature_dim != model.in_dim:
            problems.append(f"it holds {self.feature_kind!r} features ({self.feature_dim}-d) but the model reads "
                            f"{model.feature_kind!r} ({model.in_dim}-d)")
        if abs(self.fps - model.fps) > 1e-6:
            problems.append(f"it is at {self.fps} fps but the model is configured for {model.fps} fps")
        # the grid may differ (640-px builds give an 80-grid target; stage 3 resamples it to the model's grid)
        if self.guidance_shape is not None and self.guidance_shape[0] != model.guidance_channels:
            problems.append(f"its stored guidance has {self.guidance_shape[0]} channels, the model predicts "
                            f"{model.guidance_channels}")
        if problems:
            raise InputError(f"the SDGPip data {self.folder} does not fit the model: " + "; ".join(problems))

    @property
    def needs_encoders(self) -> bool:
        """True when the guidance target must be encoded from the maps (Champ's guidance encoders)."""
        return bool(self.target_fields) and not self.stored_guidance

    def _read(self, segment: int, fields: Sequence[str], start: int, stop: int) -> dict[str, np.ndarray]:
        return read_segment_frames(self.data, self._segments[segment], fields, start, stop)

    def _frame(self, segment: int, index: int) -> torch.Tensor:
        """One video frame ``(3, S, S)`` float32 in [0, 1]."""
        return _images(self._read(segment, ("video",), index, index + 1)["video"])[0]

    def _reference_rng(self, index: int, draw: Optional[int]) -> np.random.Generator:
        """The generator of item ``index``'s reference: a function of ``(seed, index)``, and of the draw if given."""
        return np.random.default_rng((self.seed, index) if draw is None else (self.seed, index, draw))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.seeded_item(index, None)

    def seeded_item(self, index: int, draw: Optional[int]) -> dict[str, torch.Tensor]:
        """Item ``index`` with its reference frame drawn by ``draw`` (the sample's seed while training: a
        new reference at every visit of the item; ``None``: the item's fixed one)."""
        raise NotImplementedError


def _pick_outside(rng: np.random.Generator, frames: int, lo: int, hi: int) -> int:
    """A frame of ``[0, frames)`` outside ``[lo, hi)``, uniformly; any frame if there is none outside."""
    outside = lo + frames - hi
    if outside <= 0:
        return int(rng.integers(frames))
    pick = int(rng.integers(outside))
    return pick if pick < lo else hi + (pick - lo)


class Stage2Pairs(_VideoClips):
    """(reference, target) frame pairs of a clip with the music-feature window of the target.

    Args:
        folder: an SDGPip build with video.
        window_frames: frames of the feature window M2PEnc sees (its training length, e.g. 75);
            clips shorter than that are skipped.
        seed: picks each item's reference frame (from ``(seed, index)``).
        min_gap: the reference is at least this many frames away from the target (>= 1; when a
            clip has no such frame, any other frame).
        model, splits, sources: see :class:`_VideoClips`.
        maps: also serve the target frame's four rendered maps (Champ's image stage, ``guidance = "maps"``).

    Item: ``reference``, ``target`` ``(3, S, S)`` float32 in [0, 1], ``features (window_frames,
    D)`` float32, ``frame`` () long (the target's row in ``features``); with ``maps``, also ``maps
    (4, S, S, 3)`` uint8 in Champ's guidance-type order.
    """

    def __init__(self, folder: PathLike, window_frames: int, seed: int = 0, *, min_gap: int = 1,
                 model: Optional[M2PEncConfig] = None, splits: Optional[Sequence[str]] = None,
                 sources: Optional[Sequence[str]] = None, maps: bool = False) -> None:
        if window_frames < 1 or min_gap < 1:
            raise InputError(f"window_frames and min_gap must be >= 1, got {window_frames} and {min_gap}")
        super().__init__(folder, max(window_frames, 2), model, splits, sources, targets="maps" if maps else "none")
        self.maps = maps
        self.window_frames, self.seed, self.min_gap = window_frames, int(seed), min_gap
        self._offsets = np.concatenate([[0], np.cumsum([seg.frames for seg in self._segments])]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``index`` -> (clip segment number, target frame in the segment)."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range [0, {len(self)})")
        k = bisect_right(self._offsets, index) - 1
        return k, int(index - self._offsets[k])

    def reference_frame(self, index: int, draw: Optional[int] = None) -> int:
        """Frame of the reference of item ``index`` in its segment: a function of ``(seed, index, draw)``.

        ``draw`` (the sample's seed while training) gives each visit of the item a new reference.
        """
        segment, target = self.locate(index)
        frames = self._segments[segment].frames
        rng = self._reference_rng(index, draw)
        gap = self.min_gap if target - self.min_gap >= 0 or target + self.min_gap < frames else 1
        reference = _pick_outside(rng, frames, max(0, target - gap + 1), min(frames, target + gap))
        return reference

    def window(self, index: int) -> tuple[int, int]:
        """``(start, frame)``: the feature window's first frame in the segment and the target's row in it."""
        segment, target = self.locate(index)
        frames = self._segments[segment].frames
        start = min(max(0, target - self.window_frames // 2), frames - self.window_frames)
        return start, target - start

    def seeded_item(self, index: int, draw: Optional[int]) -> dict[str, torch.Tensor]:
        index = int(index)
        segment, target = self.locate(index)
        start, frame = self.window(index)
        features = self._read(segment, ("features",), start, start + self.window_frames)["features"]
        item = {"reference": self._frame(segment, self.reference_frame(index, draw)),
                "target": self._frame(segment, target),
                "features": torch.from_numpy(features.astype(np.float32)),
                "frame": torch.tensor(frame, dtype=torch.long)}
        if self.maps:
            raw = self._read(segment, MAP_FIELDS, target, target + 1)
            item["maps"] = torch.from_numpy(np.stack([raw[name][0] for name in MAP_FIELDS]))
        return item


class Stage3Clips(_VideoClips):
    """``num_frames`` consecutive frames of a clip, their features and guidance, and a reference frame.

    Args:
        folder: an SDGPip build with video.
        num_frames: frames per clip (paper: 24; at most the motion modules' 32).
        seed: picks each item's reference frame (from ``(seed, index)``).
        model, splits, sources: see :class:`_VideoClips`.

    Item: ``reference (3, S, S)`` and ``frames (F, 3, S, S)`` float32 in [0, 1], ``features (F, D)``
    float32, and ``guidance (F, C, G, G)`` float32 (builds that store it) or ``maps (F, 4, S, S, 3)``
    uint8 in Champ's guidance-type order (:attr:`needs_encoders`).
    """

    def __init__(self, folder: PathLike, num_frames: int, seed: int = 0, *, model: Optional[M2PEncConfig] = None,
                 splits: Optional[Sequence[str]] = None, sources: Optional[Sequence[str]] = None) -> None:
        if num_frames < 1:
            raise InputError(f"num_frames must be >= 1, got {num_frames}")
        super().__init__(folder, num_frames, model, splits, sources, targets="guidance")
        self.num_frames, self.seed = num_frames, int(seed)
        counts = [seg.frames - num_frames + 1 for seg in self._segments]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """``index`` -> (clip segment number, first frame of the clip window in the segment)."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range [0, {len(self)})")
        k = bisect_right(self._offsets, index) - 1
        return k, int(index - self._offsets[k])

    def reference_frame(self, index: int, draw: Optional[int] = None) -> int:
        """Frame of the reference of item ``index`` in its segment: a function of ``(seed, index, draw)``."""
        segment, start = self.locate(index)
        rng = self._reference_rng(index, draw)
        return _pick_outside(rng, self._segments[segment].frames, start, start + self.num_frames)

    def seeded_item(self, index: int, draw: Optional[int]) -> dict[str, torch.Tensor]:
        index = int(index)
        segment, start = self.locate(index)
        raw = self._read(segment, ("video", "features", *self.target_fields), start, start + self.num_frames)
        item = {"reference": self._frame(segment, self.reference_frame(index, draw)),
                "frames": _images(raw["video"]),
                "features": torch.from_numpy(raw["features"].astype(np.float32))}
        if self.stored_guidance:
            item["guidance"] = torch.from_numpy(raw["guidance"].astype(np.float32))
        else:
            item["maps"] = torch.from_numpy(np.stack([raw[name] for name in MAP_FIELDS], axis=1))
        return item
