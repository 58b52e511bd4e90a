"""Pose guidance computed on demand, a window at a time, so memory never grows with the song.

A 3-minute song at 15 fps is 2,700 frames; its full guidance ``(1, 320, 2700, 64, 64)`` would take
14 GB in fp32. Instead the POSE_GUIDANCE that flows between nodes is a :class:`GuidanceSource`:
it knows ``num_frames`` and ``fps`` and computes the guidance of any frame range when the
sampler asks for it (``frames(indices, latent_hw, device, dtype)``).

* :class:`M2PEncGuidance` runs M2PEnc on fixed windows of ``window`` frames (the training length,
  75 = 5 s at 15 fps) laid out with ``overlap`` frames in common; frames in an overlap are a
  linear cross-fade of the two windows. The layout does not depend on what is requested, so
  every frame's guidance is the same whichever segment asks for it. The last few windows are
  kept (bounded) because consecutive segments share them.
* :class:`PoseMapGuidance` encodes Champ-style depth/normal/semantic/skeleton maps with Champ's
  guidance encoders (summed), frame range by frame range: Champ's original pose-driven mode.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, Mapping, Optional, Protocol, Sequence

import torch

from .errors import InputError
from .progress import NO_CONTROL, RunControl

#: Windows kept in memory by :class:`M2PEncGuidance` (consecutive segments share edge windows).
_CACHED_WINDOWS = 3


class GuidanceSource(Protocol):
    """Per-frame pose guidance for the diffusion U-Net."""

    num_frames: int
    fps: float
    channels: int

    def frames(self, indices: torch.Tensor, latent_hw: tuple[int, int], device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
        """Guidance ``(1, channels, len(indices), h, w)`` for timeline frames ``indices`` (sorted)."""


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """Start frames of fixed windows covering ``num_frames``; the last window ends at the end."""
    if window <= overlap or overlap < 0:
        raise InputError(f"window ({window}) must be larger than overlap ({overlap}) >= 0")
    if num_frames <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, num_frames - window, stride))
    starts.append(num_frames - window)
    return starts


def window_weights(length: int, start: int, starts: Sequence[int], window: int, num_frames: int) -> torch.Tensor:
    """Cross-fade weight ``(length,)`` of the window at ``start``: ramps where neighbours overlap."""
    weight = torch.ones(length)
    position = starts.index(start)
    if position > 0:
        prev_end = starts[position - 1] + window
        ramp = prev_end - start
        if ramp > 0:
            weight[:ramp] = torch.arange(1, ramp + 1) / (ramp + 1)
    if position + 1 < len(starts):
        ramp = start + window - starts[position + 1]
        if ramp > 0:
            weight[length - ramp:] = torch.minimum(weight[length - ramp:], torch.arange(ramp, 0, -1) / (ramp + 1))
    return weight


class M2PEncGuidance:
    """M2PEnc guidance of a whole song, computed window by window on request.

    Args:
        model: a loaded :class:`~.encoder.model.M2PEnc` (its device and dtype are used).
        features: music features ``(N, D)`` matching the model's feature kind and width.
        fps: frame rate of the features (and of the video).
        window: frames per M2PEnc call (default 75, the paper's training length).
        overlap: frames shared by consecutive windows (cross-faded).
    """

    def __init__(self, model: torch.nn.Module, features: torch.Tensor, fps: float, window: int = 75,
                 overlap: int = 15):
        if features.ndim != 2 or features.shape[0] < 1:
            raise InputError(f"music features must be (frames, dims) with at least one frame, got {tuple(features.shape)}")
        self.model = model
        self.features = features
        self.fps = float(fps)
        self.num_frames = int(features.shape[0])
        self.window = min(window, self.num_frames)
        self.overlap = min(overlap, self.window - 1)
        self.channels = int(model.config.guidance_channels)
        self.starts = window_starts(self.num_frames, self.window, self.overlap)
        self._cache: OrderedDict[int, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def _run_window(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(guidance (C, W, G, G), heatmaps (K, W, G, G)) of one window, CPU, float32."""
        if start in self._cache:
            self._cache.move_to_end(start)
            return self._cache[start]
        param = next(self.model.parameters())
        chunk = self.features[start:start + self.window].to(device=param.device, dtype=param.dtype)
        with torch.no_grad():
            out = self.model(chunk[None])
        result = (out.guidance[0].float().cpu(), out.heatmaps[0].float().cpu())
        self._cache[start] = result
        while len(self._cache) > _CACHED_WINDOWS:
            self._cache.popitem(last=False)
        return result

    def _blend(self, lo: int, hi: int, which: int) -> torch.Tensor:
        """Cross-faded output ``which`` (0 guidance, 1 heatmaps) for frames [lo, hi): (C, hi-lo, G, G)."""
        total: Optional[torch.Tensor] = None
        norm = torch.zeros(hi - lo)
        for start in self.starts:
            end = start + self.window
            a, b = max(lo, start), min(hi, end)
            if a >= b:
                continue
            values = self._run_window(start)[which]
            weight = window_weights(self.window, start, self.starts, self.window, self.num_frames)[a - start:b - start]
            part = values[:, a - start:b - start] * weight.view(1, -1, 1, 1)
            if total is None:
                total = torch.zeros(values.shape[0], hi - lo, *values.shape[2:])
            total[:, a - lo:b - lo] += part
            norm[a - lo:b - lo] += weight
        assert total is not None and bool((norm > 0).all())
        return total / norm.view(1, -1, 1, 1)

    def frames(self, indices: torch.Tensor, latent_hw: tuple[int, int], device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
        """Guidance ``(1, C, len(indices), h, w)`` for the given timeline frames."""
        from .encoder.guidance import resize_guidance

        idx = indices.long().cpu()
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= self.num_frames:
            raise InputError(f"guidance requested for frames outside 0..{self.num_frames - 1}")
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block = self._blend(lo, hi, 0)[:, idx - lo]                      # (C, F, G, G)
        return resize_guidance(block[None], latent_hw).to(device=device, dtype=dtype)

    def keypoint_heatmaps(self, control: RunControl = NO_CONTROL) -> Iterator[torch.Tensor]:
        """Yield cross-faded heatmaps ``(F_i, K, G, G)`` in consecutive chunks covering every frame once."""
        chunks = list(range(0, self.num_frames, self.window))
        for i, lo in enumerate(chunks):
            hi = min(self.num_frames, lo + self.window)
            yield self._blend(lo, hi, 1).permute(1, 0, 2, 3)
            control.tick("m2penc", i + 1, len(chunks))


class PoseMapGuidance:
    """Champ's guidance encoders over per-frame maps, encoded on request (pose-driven mode).

    Args:
        encoders: guidance type -> Champ guidance encoder (their outputs are summed).
        maps: guidance type -> uint8 or float maps ``(F, H, W, 3)`` (ComfyUI IMAGE layout).
        fps: frame rate of the maps.
        encode: ``encode(encoders, {type: (F, 3, H, W) float in [0,1]}) -> (1, C, F, h', w')``.
    """

    def __init__(self, encoders: Mapping[str, torch.nn.Module], maps: Mapping[str, torch.Tensor], fps: float,
                 encode, channels: int):
        if not maps:
            raise InputError("pose-driven guidance needs at least one of depth, normal, semantic_map, dwpose")
        missing = sorted(set(maps) - set(encoders))
        if missing:
            raise InputError(f"no Champ guidance encoder loaded for {missing}; loaded: {sorted(encoders)}")
        sizes = {name: tuple(m.shape[1:]) for name, m in maps.items()}
        bad = {n: s for n, s in sizes.items() if len(s) != 3 or s[2] != 3 or s[0] % 8 or s[1] % 8}
        if bad or len(set(sizes.values())) != 1:
            raise InputError(f"guidance map batches must be RGB images (frames, height, width, 3) of one size, "
                             f"height and width multiples of 8; got (height, width, channels) {sizes}: resize them "
                             "(e.g. to the video size) and drop any alpha channel")
        counts = {name: int(m.shape[0]) for name, m in maps.items()}
        if len(set(counts.values())) != 1:
            raise InputError(f"all guidance map batches must have the same number of frames, got {counts}")
        self.encoders = dict(encoders)
        self.maps = dict(maps)
        self.fps = float(fps)
        self.num_frames = next(iter(counts.values()))
        self.channels = channels
        self._encode = encode

    def frames(self, indices: torch.Tensor, latent_hw: tuple[int, int], device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
        from .encoder.guidance import resize_guidance

        idx = indices.long().cpu()
        chosen = {}
        for name, maps in self.maps.items():
            frames = maps[idx]
            if not frames.is_floating_point():
                frames = frames.float() / 255.0
            chosen[name] = frames.permute(0, 3, 1, 2).contiguous()     # (F, 3, H, W)
        guidance = self._encode(self.encoders, chosen)
        return resize_guidance(guidance.float(), latent_hw).to(device=device, dtype=dtype)
