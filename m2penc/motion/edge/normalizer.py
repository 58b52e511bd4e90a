"""EDGE's motion normalizer: a per-channel min-max scaling of the 151-d frames to [-1, 1].

EDGE's denoiser lives in a normalized space: every channel of the training frames (flattened
to ``(N * 150, 151)``) was scaled so its training minimum maps to -1 and its maximum to +1 by
``dataset.preprocess.Normalizer`` around a torch port of sklearn's ``MinMaxScaler``. The fitted
tensors travel inside EDGE's ``checkpoint.pt`` (key ``normalizer``), and a sample is only a
dance after :meth:`MinMaxNormalizer.unnormalize`. This is that scaler as plain data, with
EDGE's exact arithmetic (``shared/spec/edge/REPORT.md`` section 2):

* fit: ``r = data_max_ - data_min_`` with entries below ``10 * eps`` replaced by 1 (the stored
  ``data_range_`` keeps the 0), ``scale_ = (hi - lo) / r``, ``min_ = lo - data_min_ * scale_``;
* normalize: ``y = clip(x * scale_ + min_, lo, hi)`` (EDGE's scaler has ``clip=True``);
* unnormalize: ``x = (clip(y, lo, hi) - min_) / scale_`` (EDGE's ``Normalizer.unnormalize``
  always clips first, so a sample outside the training range lands on its boundary).

``(lo, hi)`` is ``feature_range``, (-1, 1) for EDGE. The operations are done in the same order as
EDGE's in-place ones (multiply then add; subtract then divide), so results match to float rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping, Optional, Union

import torch

from ...errors import InputError

#: The scaler's tensors, each ``(C,)`` (C = 151 for EDGE), in the order EDGE's scaler holds them.
TENSOR_NAMES: tuple[str, ...] = ("scale_", "min_", "data_min_", "data_max_", "data_range_")
#: EDGE's target range.
EDGE_FEATURE_RANGE: tuple[float, float] = (-1.0, 1.0)


@dataclass(frozen=True, eq=False)
class MinMaxNormalizer:
    """EDGE's fitted min-max scaler (see the module docstring); tensors are checked on construction.

    Attributes:
        scale_, min_: ``(C,)`` the affine map ``y = x * scale_ + min_``.
        data_min_, data_max_, data_range_: ``(C,)`` the training data's per-channel statistics
            (kept for reference and for saving; ``data_range_`` may hold zeros).
        feature_range: ``(lo, hi)``, the normalized range (EDGE: (-1, 1)).
        clip: whether :meth:`normalize` clips to ``feature_range`` (EDGE: True).
        n_samples_seen: frames the scaler was fitted on, if known.
    """

    scale_: torch.Tensor
    min_: torch.Tensor
    data_min_: torch.Tensor
    data_max_: torch.Tensor
    data_range_: torch.Tensor
    feature_range: tuple[float, float] = EDGE_FEATURE_RANGE
    clip: bool = True
    n_samples_seen: Optional[int] = None

    def __post_init__(self) -> None:
        shape = None
        for name in TENSOR_NAMES:
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.ndim != 1:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise InputError(f"normalizer {name} must be a 1-D float tensor (C,), got {got}")
            if shape is not None and value.shape != shape:
                raise InputError(f"normalizer {name} has shape {tuple(value.shape)}, the other tensors {tuple(shape)}")
            if not bool(torch.isfinite(value).all()):
                raise InputError(f"normalizer {name} holds NaN/inf values; the checkpoint's normalizer is corrupt")
            shape = value.shape
        if bool((self.scale_ == 0).any()):
            raise InputError("normalizer scale_ holds zeros, so unnormalize would divide by zero; "
                             "the checkpoint's normalizer is corrupt")
        lo, hi = (float(v) for v in self.feature_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InputError(f"normalizer feature_range must be (lo, hi) with lo < hi, got {self.feature_range!r}")
        object.__setattr__(self, "feature_range", (lo, hi))
        object.__setattr__(self, "clip", bool(self.clip))

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_data_range(cls, data_min: torch.Tensor, data_max: torch.Tensor,
                        feature_range: tuple[float, float] = EDGE_FEATURE_RANGE, clip: bool = True,
                        n_samples_seen: Optional[int] = None) -> "MinMaxNormalizer":
        """The scaler EDGE fits from per-channel ``data_min``/``data_max`` ``(C,)`` (formulas above)."""
        data_min, data_max = data_min.detach().clone(), data_max.detach().clone()
        data_range = data_max - data_min
        eps = torch.finfo(data_range.dtype).eps
        safe_range = torch.where(data_range < 10 * eps, torch.ones_like(data_range), data_range)
        lo, hi = feature_range
        scale = (hi - lo) / safe_range
        return cls(scale, lo - data_min * scale, data_min, data_max, data_range, feature_range, clip, n_samples_seen)

    @classmethod
    def fit(cls, frames: torch.Tensor, feature_range: tuple[float, float] = EDGE_FEATURE_RANGE,
            clip: bool = True) -> "MinMaxNormalizer":
        """Fit on ``frames`` ``(..., C)`` (all leading dims are samples), as EDGE's ``Normalizer(data)``."""
        flat = frames.detach().reshape(-1, frames.shape[-1])
        if flat.shape[0] < 1:
            raise InputError("cannot fit a normalizer on 0 frames")
        return cls.from_data_range(flat.min(0).values, flat.max(0).values, feature_range, clip, flat.shape[0])

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], prefix: str = "", **options) -> "MinMaxNormalizer":
        """Build from ``{prefix + name: tensor}`` for every name in :data:`TENSOR_NAMES`.

        ``options``: ``feature_range``, ``clip``, ``n_samples_seen``. Missing tensors are an error
        naming them.
        """
        missing = [prefix + name for name in TENSOR_NAMES if prefix + name not in tensors]
        if missing:
            raise InputError(f"normalizer tensors missing: {missing}; expected {[prefix + n for n in TENSOR_NAMES]}")
        return cls(*(tensors[prefix + name] for name in TENSOR_NAMES), **options)

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """``{prefix + name: tensor}`` for every name in :data:`TENSOR_NAMES` (for saving)."""
        return {prefix + name: getattr(self, name) for name in TENSOR_NAMES}

    # -- use -------------------------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        """C, the frame width (151 for EDGE)."""
        return int(self.scale_.shape[0])

    def to(self, device: Union[str, torch.device, None] = None,
           dtype: Optional[torch.dtype] = None) -> "MinMaxNormalizer":
        """A copy whose tensors are on ``device`` in ``dtype``."""
        moved = {name: getattr(self, name).to(device=device, dtype=dtype) for name in TENSOR_NAMES}
        return replace(self, **moved)

    def _affine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.shape[-1] != self.num_channels:
            raise InputError(f"EDGE frames must have {self.num_channels} channels (last dim), "
                             f"got shape {tuple(x.shape)}")
        dtype = torch.promote_types(x.dtype, self.scale_.dtype)
        return (x.to(dtype), self.scale_.to(x.device, dtype), self.min_.to(x.device, dtype))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., C)`` frames -> ``(..., C)`` normalized (clipped to ``feature_range`` if ``clip``)."""
        x, scale, offset = self._affine(x)
        y = x * scale + offset
        return y.clamp(*self.feature_range) if self.clip else y

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        """``(..., C)`` normalized -> ``(..., C)`` frames; ``y`` is clipped to ``feature_range`` first."""
        y, scale, offset = self._affine(y)
        return (y.clamp(*self.feature_range) - offset) / scale
