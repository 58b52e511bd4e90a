"""Fréchet Video Distance (FVD, paper §4.2-4.3): I3D features of 16-frame clips, their Gaussian
statistics, and the Fréchet distance between two such statistics.

The paper measures FVD "with the I3D classifier pre-trained on Kinetics-400" and cites Ge et al.,
"On the Content Bias in Fréchet Video Distance" (CVPR'24), whose code is cd-fvd
(``songweige/content-debiased-fvd``, ``cdfvd/fvd.py``, ``cdfvd/third_party/i3d/utils.py``). That
is the protocol here, with the network of :mod:`.i3d`:

1. **Frames** ``(F, H, W, 3)``: uint8 in ``[0, 255]`` or float in ``[0, 1]`` (a ComfyUI IMAGE
   batch), numpy or torch. uint8 is divided by 255; floats are used as they are (cd-fvd feeds
   uint8 read from files: pass uint8 to match a file-based evaluation bit for bit).
2. **Clips** of ``clip_frames = 16`` consecutive frames (the I3D/FVD standard). ``split`` says how a
   longer video is cut: ``"consecutive"`` (default) takes every non-overlapping clip from frame 0,
   ``[0, 16), [16, 32), ...``, dropping a last partial clip; ``"first"`` takes frames ``[0, 16)``
   only (one clip per video: MM-Diffusion's ``frame_num=16`` from the start, StyleGAN-V's generated
   clips at offset 0). cd-fvd's folder loader draws one random 16-frame clip per video; the paper
   does not say which it used. Real and generated videos must have the same frame rate.
3. **Resize** every frame to 224 x 224, **bilinear, align_corners=False, no antialiasing**
   (``F.interpolate``, as cd-fvd ``preprocess_i3d`` and TATS ``tats/fvd/fvd.py:preprocess``), with
   **no crop**: a non-square frame is stretched, as there. ``center_crop=True`` instead scales the
   shorter side to 224 (the longer to ``ceil``) and crops the centre, as MM-Diffusion's
   ``evaluations/fvd/fvd.py:preprocess_single``. For square frames (the paper's 640 x 640) both
   are the same.
4. **Scale** to ``[-1, 1]``: ``2 x - 1`` (``2 * v / 255 - 1`` for uint8), what the I3D expects.
5. **Features**: the I3D's 400 Kinetics logits averaged over the time steps left after its final
   ``(2, 7, 7)`` pool (one step for 16 x 224 x 224), i.e. :meth:`.i3d.InceptionI3d.forward`, the
   same as TATS ``get_logits``, MM-Diffusion ``get_fvd_logits`` and cd-fvd ``get_i3d_logits``
   (StyleGAN-V's TorchScript detector with ``return_features=True`` also returns the 400
   pre-softmax logits). Not the 1024-d pooled features.
6. **Statistics** in float64: mean and covariance normalised by ``N - ddof``; default ``ddof = 0``
   (cd-fvd ``FeatureStats.get_mean_cov``, StyleGAN-V); TATS / MM-Diffusion use ``N - 1``.
7. **Fréchet distance** ``||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))``; see
   :func:`frechet_distance` for how the trace of the square root is computed (float64
   eigendecompositions; no complex numbers arise).

Caveats for reading the numbers:

* **Content bias** (Ge et al., CVPR'24): I3D features, trained to classify Kinetics actions mostly
  from appearance, weight per-frame content over motion; FVD barely moves under temporal
  corruption that humans notice and moves a lot under per-frame changes. It is not a motion
  quality score.
* **Sample size**: FVD is biased and high-variance with few clips (the paper: 20 AIST++ test
  videos). 400-d covariances from fewer than 401 clips are singular; values from different
  numbers of clips, different ``split`` or ``center_crop`` choices, or different frame rates are
  not comparable. :class:`FeatureStats` records its protocol, and :func:`fvd_from_stats` refuses
  to compare statistics made under different ones.

Real-set statistics can be cached with :meth:`FeatureStats.save` / :meth:`FeatureStats.load`
(safetensors, no pickles).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import save_file

from ..checkpoint import atomic_write
from ..errors import InputError
from .i3d import CLIP_FRAMES, INPUT_SIZE, InceptionI3d

PathLike = Union[str, os.PathLike]
Video = Union[np.ndarray, torch.Tensor]
#: How a video is cut into clips (see the module docstring).
SPLITS = ("consecutive", "first")
#: ``m2pdance.kind`` of a saved statistics file.
STATS_KIND = "fvd_stats"
_KIND_KEY = "m2pdance.kind"
_META_KEY = "m2pdance.fvd"
#: Float frames may stray this far outside [0, 1] (VAE decodes) before they are refused; they are clamped.
_FLOAT_SLACK = 1e-3


def clip_starts(num_frames: int, clip_frames: int = CLIP_FRAMES, split: str = "consecutive") -> list[int]:
    """First frame of each clip of a ``num_frames``-frame video.

    ``"consecutive"``: ``0, clip_frames, 2 clip_frames, ...`` while a whole clip fits (the rest is
    dropped); ``"first"``: ``[0]``.

    Raises:
        InputError: unknown ``split``, ``clip_frames < 1``, or a video shorter than one clip.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")
    if clip_frames < 1:
        raise InputError(f"clip_frames must be >= 1, got {clip_frames}")
    if num_frames < clip_frames:
        raise InputError(f"a video of {num_frames} frames is shorter than one {clip_frames}-frame FVD clip")
    return [0] if split == "first" else list(range(0, num_frames - clip_frames + 1, clip_frames))


def _as_tensor(frames: Video) -> torch.Tensor:
    tensor = torch.as_tensor(frames)
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise InputError(f"a video must be (frames, height, width, 3) RGB, got shape {tuple(tensor.shape)}")
    if tensor.dtype != torch.uint8 and not tensor.is_floating_point():
        raise InputError(f"frames must be uint8 in [0, 255] or float in [0, 1], got {tensor.dtype}")
    return tensor


def to_unit_range(frames: Video, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """``(F, H, W, 3)`` uint8 ``[0, 255]`` or float ``[0, 1]`` -> float32 ``[0, 1]`` on ``device``.

    Raises:
        InputError: wrong layout or dtype, non-finite values, or floats outside ``[0, 1]`` (beyond
            a 1e-3 slack, which is clamped): 0..255 floats are refused rather than guessed.
    """
    tensor = _as_tensor(frames).to(device)
    if tensor.dtype == torch.uint8:
        return tensor.float() / 255.0
    tensor = tensor.float()
    if not bool(torch.isfinite(tensor).all()):
        raise InputError("frames contain NaN or infinite values")
    low, high = float(tensor.min()), float(tensor.max())
    if low < -_FLOAT_SLACK or high > 1 + _FLOAT_SLACK:
        raise InputError(f"float frames must be in [0, 1] (got {low:.4g}..{high:.4g}); pass uint8 for 0..255")
    return tensor.clamp_(0.0, 1.0)


def resize_frames(frames: torch.Tensor, size: int = INPUT_SIZE, center_crop: bool = False) -> torch.Tensor:
    """``(N, 3, H, W)`` -> ``(N, 3, size, size)``: bilinear, ``align_corners=False``, no antialiasing.

    Without ``center_crop`` the frame is stretched to ``size x size`` (cd-fvd, TATS); with it the
    shorter side becomes ``size``, the longer ``ceil(side * (size / shorter))`` in floating point
    (as MM-Diffusion computes it: 150 px at scale 2.24 gives 337, not 336), and the centre
    ``size x size`` is kept (the crop starts at ``(longer - size) // 2``).
    """
    height, width = frames.shape[-2:]
    if not center_crop:
        return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    scale = size / min(height, width)
    target = (size, math.ceil(width * scale)) if height < width else (math.ceil(height * scale), size)
    frames = F.interpolate(frames, size=target, mode="bilinear", align_corners=False)
    top, left = (target[0] - size) // 2, (target[1] - size) // 2
    return frames[..., top:top + size, left:left + size]


def preprocess_clip(frames: Video, device: Union[str, torch.device] = "cpu", size: int = INPUT_SIZE,
                    center_crop: bool = False) -> torch.Tensor:
    """One clip ``(T, H, W, 3)`` (uint8 or float ``[0, 1]``) -> the I3D input ``(3, T, size, size)`` in ``[-1, 1]``."""
    unit = to_unit_range(frames, device).permute(0, 3, 1, 2)            # (T, 3, H, W)
    resized = resize_frames(unit, size, center_crop)                    # (T, 3, size, size)
    return (resized * 2.0 - 1.0).permute(1, 0, 2, 3)                    # (3, T, size, size)


def _videos(videos: Union[Video, Iterable[Video]]) -> Iterable[Video]:
    """A 4-D array/tensor is one video; a 5-D one or any other iterable holds several."""
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 4:
            return [videos]
        if videos.ndim != 5:
            raise InputError("videos must be (frames, H, W, 3) or (videos, frames, H, W, 3), "
                             f"got {tuple(videos.shape)}")
    return videos


def iter_clips(videos: Union[Video, Iterable[Video]], clip_frames: int = CLIP_FRAMES,
               split: str = "consecutive") -> Iterator[Video]:
    """Every clip ``(clip_frames, H, W, 3)`` (a view, not converted) of every video, in order."""
    for video in _videos(videos):
        for start in clip_starts(_as_tensor(video).shape[0], clip_frames, split):
            yield video[start:start + clip_frames]


def i3d_features(model: InceptionI3d, videos: Union[Video, Iterable[Video]], *, batch_size: int = 8,
                 clip_frames: int = CLIP_FRAMES, split: str = "consecutive", center_crop: bool = False) -> np.ndarray:
    """The FVD features of every clip of ``videos``: ``(N_clips, 400)`` float64.

    Args:
        model: the I3D (:func:`.i3d.load_i3d`); its device and dtype are used for the clips.
        videos: one ``(F, H, W, 3)`` video, an ``(N, F, H, W, 3)`` batch, or an iterable of videos
            (sizes and lengths may differ); uint8 ``[0, 255]`` or float ``[0, 1]``.
        batch_size: clips per forward pass (activation memory grows with it).
        clip_frames, split, center_crop: the protocol of the module docstring.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    weight = next(model.parameters())
    chunks: list[np.ndarray] = []
    batch: list[torch.Tensor] = []

    def run() -> None:
        with torch.inference_mode():
            logits = model(torch.stack(batch).to(weight.dtype))
        chunks.append(logits.double().cpu().numpy())
        batch.clear()

    for clip in iter_clips(videos, clip_frames, split):
        batch.append(preprocess_clip(clip, weight.device, INPUT_SIZE, center_crop))
        if len(batch) == batch_size:
            run()
    if batch:
        run()
    if not chunks:
        raise InputError("no videos given: FVD needs at least two clips per set")
    return np.concatenate(chunks)


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """Gaussian statistics of one set's features.

    Attributes:
        mean: ``(D,)`` float64.
        cov: ``(D, D)`` float64, normalised by ``count - ddof``.
        count: number of clips.
        protocol: how the features were made (clip length, split, crop, ddof, ...); statistics with
            different protocols are not compared.
    """

    mean: np.ndarray
    cov: np.ndarray
    count: int
    protocol: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_features(cls, features: Union[np.ndarray, torch.Tensor], ddof: int = 0,
                      protocol: Optional[Mapping[str, Any]] = None) -> "FeatureStats":
        """Statistics of ``(N, D)`` features (``N >= 2``), in float64."""
        x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(
            features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise InputError(f"FVD statistics need (N >= 2, D) features, got shape {x.shape}")
        if ddof not in (0, 1):
            raise InputError(f"ddof must be 0 (cd-fvd, StyleGAN-V) or 1 (TATS, MM-Diffusion), got {ddof}")
        if not np.isfinite(x).all():
            raise InputError("features contain NaN or infinite values")
        mean = x.mean(axis=0)
        centred = x - mean
        cov = centred.T @ centred / (x.shape[0] - ddof)
        return cls(mean, cov, int(x.shape[0]), {**dict(protocol or {}), "ddof": ddof})

    def save(self, path: PathLike) -> Path:
        """Write ``mean`` and ``cov`` as safetensors (atomically), count and protocol in the metadata."""
        meta = {_KIND_KEY: STATS_KIND, _META_KEY: json.dumps({"count": self.count, "protocol": dict(self.protocol)})}
        tensors = {"mean": np.ascontiguousarray(self.mean), "cov": np.ascontiguousarray(self.cov)}
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(cls, path: PathLike) -> "FeatureStats":
        """Read statistics written by :meth:`save`.

        Raises:
            InputError: missing file, not an FVD statistics file, or inconsistent shapes.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"FVD statistics file not found: {path}")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if meta.get(_KIND_KEY) != STATS_KIND:
                    raise InputError(f"{path} is not an FVD statistics file (kind {meta.get(_KIND_KEY)!r})")
                mean, cov = f.get_tensor("mean"), f.get_tensor("cov")
            info = json.loads(meta[_META_KEY])
        except InputError:
            raise
        except Exception as e:
            raise InputError(f"cannot read FVD statistics {path} ({type(e).__name__}: {e})") from None
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise InputError(f"{path}: mean {mean.shape} and cov {cov.shape} do not fit together")
        return cls(mean.astype(np.float64), cov.astype(np.float64), int(info["count"]), dict(info["protocol"]))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root (float64): eigenvalues below ``D * eps * max`` (rounding noise) count as 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    cutoff = max(values.max(initial=0.0), 0.0) * matrix.shape[0] * np.finfo(np.float64).eps
    roots = np.sqrt(np.where(values > cutoff, values, 0.0))
    return (vectors * roots) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr((S_1 S_2)^(1/2))`` for PSD ``S_1``, ``S_2`` as the nuclear norm ``||S_1^(1/2) S_2^(1/2)||_*``.

    ``S_1 S_2 = R_1 (R_1 R_2) R_2`` has the non-zero eigenvalues of ``(R_1 R_2)(R_1 R_2)^T``, i.e. the
    squared singular values of ``R_1 R_2`` (``R_i`` the PSD roots), so its square root's trace is
    the sum of those singular values: real by construction, and no square root is taken of a
    rounding-level eigenvalue of the product (``scipy.linalg.sqrtm`` of ``S_1 S_2`` gives the same
    value for well-conditioned inputs, with tiny imaginary parts that callers drop; the covariances
    of fewer clips than dimensions are singular, where this form stays accurate).
    """
    return float(np.linalg.svd(_psd_sqrt(sigma1) @ _psd_sqrt(sigma2), compute_uv=False).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``, in float64.

    ``||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))`` (see
    :func:`trace_sqrt_product`); clipped at 0 against rounding.

    Args:
        mu1, mu2: ``(D,)`` means; sigma1, sigma2: ``(D, D)`` symmetric PSD covariances.
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise InputError(f"Fréchet distance needs means (D,) and covariances (D, D) of one D; got {mu1.shape}, "
                         f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def fvd_from_stats(real: FeatureStats, fake: FeatureStats) -> float:
    """FVD between two sets' statistics (their protocols must agree).

    Raises:
        InputError: statistics made under different protocols (clip length, split, crop, ddof...).
    """
    keys = set(real.protocol) | set(fake.protocol)
    differ = sorted(k for k in keys if real.protocol.get(k) != fake.protocol.get(k))
    if differ:
        detail = ", ".join(f"{k}: {real.protocol.get(k)!r} vs {fake.protocol.get(k)!r}" for k in differ)
        raise InputError(f"FVD statistics were made under different protocols ({detail}); recompute one set")
    return frechet_distance(real.mean, real.cov, fake.mean, fake.cov)


def video_stats(model: InceptionI3d, videos: Union[Video, Iterable[Video]], *, batch_size: int = 8,
                clip_frames: int = CLIP_FRAMES, split: str = "consecutive", center_crop: bool = False,
                ddof: int = 0) -> FeatureStats:
    """:class:`FeatureStats` of the I3D features of ``videos`` (arguments as :func:`i3d_features`)."""
    features = i3d_features(model, videos, batch_size=batch_size, clip_frames=clip_frames, split=split,
                            center_crop=center_crop)
    protocol = {"features": f"i3d_logits_{model.config.num_classes}", "bn_eps": model.config.bn_eps,
                "clip_frames": clip_frames, "split": split, "center_crop": center_crop, "size": INPUT_SIZE}
    return FeatureStats.from_features(features, ddof=ddof, protocol=protocol)


def compute_fvd(model: InceptionI3d, real_videos: Union[Video, Sequence[Video], FeatureStats],
                fake_videos: Union[Video, Sequence[Video]], **options: Any) -> float:
    """FVD between real and generated videos (``real_videos`` may be cached :class:`FeatureStats`).

    ``options``: ``batch_size``, ``clip_frames``, ``split``, ``center_crop``, ``ddof`` as
    :func:`video_stats`.
    """
    real = real_videos if isinstance(real_videos, FeatureStats) else video_stats(model, real_videos, **options)
    return fvd_from_stats(real, video_stats(model, fake_videos, **options))
