"""M2PEnc guidance of a whole song, computed window by window when the sampler asks for it.

A 3-minute song at 15 fps is 2,700 frames; its full guidance ``(1, 320, 2700, 64, 64)`` would take
14 GB in fp32. Instead POSE_GUIDANCE is a :class:`M2PEncGuidance` (a
:class:`..sampling.GuidanceSource`): it runs M2PEnc on fixed windows of the model's training
length (``config.window_frames``, 75 = 5 s at 15 fps) laid out with ``overlap`` frames in common
(:func:`..sampling.window_starts`); frames in an overlap are a linear cross-fade of the two
windows (:func:`..sampling.blend_weights`). The layout does not depend on what is requested, so
every frame's guidance is the same whichever segment asks for it.

Window outputs stay on the model's device in its dtype, and are kept in a cache bounded in bytes
(``cache_bytes``, default 2 GiB: 5 windows of paper-size guidance in fp32, 10 in fp16, i.e. 25-50 s
of music); :meth:`release` frees it. The
skeleton preview (:meth:`keypoint_heatmaps`) and the sampler use the same object, so for any song
whose windows fit the cache, M2PEnc runs once per window for both; longer songs recompute the
windows that were evicted, never more than once per segment.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, Optional

import torch

from ..errors import InputError
from ..progress import NO_CONTROL, RunControl
from ..sampling.windows import blend_weights, window_starts
from .guidance import resize_guidance

#: Frames shared by consecutive windows (cross-faded): 1 s at 15 fps.
DEFAULT_OVERLAP = 15
#: Bytes of window outputs kept on the model's device.
DEFAULT_CACHE_BYTES = 2 * 1024**3


class M2PEncGuidance:
    """M2PEnc guidance of a whole song, computed window by window on request.

    Args:
        model: a loaded :class:`~.model.M2PEnc` (its device and dtype are used).
        features: music features ``(N, D)`` matching the model's feature kind and width.
        fps: frame rate of the features (and of the video).
        window: frames per M2PEnc call (default: the model's ``config.window_frames``).
        overlap: frames shared by consecutive windows (cross-faded).
        cache_bytes: device memory for finished windows (at least one window is always kept).
    """

    def __init__(self, model: torch.nn.Module, features: torch.Tensor, fps: float, window: Optional[int] = None,
                 overlap: int = DEFAULT_OVERLAP, cache_bytes: int = DEFAULT_CACHE_BYTES):
        if features.ndim != 2 or features.shape[0] < 1:
            raise InputError(f"music features must be (frames, dims) with at least one frame, got {tuple(features.shape)}")
        self.model = model
        self.features = features
        self.fps = float(fps)
        self.num_frames = int(features.shape[0])
        self.window = min(window or int(model.config.window_frames), self.num_frames)
        self.overlap = max(0, min(overlap, self.window - 1))
        self.channels = int(model.config.guidance_channels)
        self.starts = window_starts(self.num_frames, self.window, self.window - self.overlap)
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[int, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def _run_window(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(guidance (C, W, G, G), heatmaps (K, W, G, G)) of window ``index`` in the model's dtype and device."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        param = next(self.model.parameters())
        start = self.starts[index]
        chunk = self.features[start:start + self.window].to(device=param.device, dtype=param.dtype)
        with torch.no_grad():
            out = self.model(chunk[None])
        result = (out.guidance[0], out.heatmaps[0])      # kept in the model's dtype: half the bytes in fp16
        self._cache[index] = result
        size = sum(t.numel() * t.element_size() for t in result)
        while len(self._cache) > 1 and len(self._cache) * size > self.cache_bytes:
            self._cache.popitem(last=False)
        return result

    def _blend(self, lo: int, hi: int, which: int) -> torch.Tensor:
        """Cross-faded output ``which`` (0 guidance, 1 heatmaps) for frames [lo, hi): (C, hi-lo, G, G)."""
        total: Optional[torch.Tensor] = None
        norm: Optional[torch.Tensor] = None
        for index, start in enumerate(self.starts):
            a, b = max(lo, start), min(hi, start + self.window)
            if a >= b:
                continue
            values = self._run_window(index)[which].float()
            weight = blend_weights(self.starts, index, self.window)[a - start:b - start].to(values.device)
            if total is None:
                total = values.new_zeros(values.shape[0], hi - lo, *values.shape[2:])
                norm = values.new_zeros(hi - lo)
            total[:, a - lo:b - lo] += values[:, a - start:b - start] * weight.view(1, -1, 1, 1)
            norm[a - lo:b - lo] += weight
        assert total is not None and norm is not None, "windows cover every frame"
        return total / norm.view(1, -1, 1, 1)

    def frames(self, indices: torch.Tensor, latent_hw: tuple[int, int], device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
        """Guidance ``(1, C, len(indices), h, w)`` for the given (sorted) timeline frames."""
        idx = indices.long().cpu()
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= self.num_frames:
            raise InputError(f"guidance requested for frames outside 0..{self.num_frames - 1}")
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block = self._blend(lo, hi, 0)
        block = block.index_select(1, (idx - lo).to(block.device))         # (C, F, G, G)
        return resize_guidance(block[None], latent_hw).to(device=device, dtype=dtype)

    def release(self) -> None:
        """Drop the cached window outputs (they are recomputed on the next request)."""
        self._cache.clear()

    def keypoint_heatmaps(self, control: RunControl = NO_CONTROL) -> Iterator[torch.Tensor]:
        """Yield cross-faded heatmaps ``(F_i, K, G, G)`` (model device) in consecutive chunks covering every frame once."""
        chunks = list(range(0, self.num_frames, self.window))
        for i, lo in enumerate(chunks):
            control.check_cancel()
            hi = min(self.num_frames, lo + self.window)
            yield self._blend(lo, hi, 1).permute(1, 0, 2, 3)
            control.tick("m2penc", i + 1, len(chunks))
