"""I3D (Inception-v1 inflated to 3D) on Kinetics-400: the FVD feature network, under the key names of
the public ``i3d_pretrained_400.pt``.

**The file.** ``i3d_pretrained_400.pt`` is what TATS (``tats/fvd/fvd.py:load_fvd_model``), cd-fvd
(``cdfvd/third_party/i3d/utils.py:load_i3d_model``, which downloads it from TATS) and MM-Diffusion
(``evaluations/fvd/download.py:load_i3d_pretrained``, VideoGPT's Google Drive copy) load strictly
into ``InceptionI3d(400, in_channels=3)``. It is a plain ``torch.save``-d ``OrderedDict`` of float32
tensors written by ``convert_tf_pretrained.py`` (TATS / MM-Diffusion, from VideoGPT) out of
DeepMind's TF-Hub ``i3d-kinetics-400`` module, the network of the original FVD (Unterthiner et al.
2018). What that converter implies, and what this module reproduces:

* per unit ``<unit>.conv3d.weight`` ``(out, in, kt, kh, kw)`` (TF ``w`` permuted), no conv bias;
  ``<unit>.bn.bias`` (TF ``beta``), ``.bn.running_mean`` / ``.bn.running_var`` (TF moving
  statistics) and ``<unit>.bn.weight`` (all ones: TF-Hub's batch norm has no scale, the converter
  adds it); **no** ``num_batches_tracked`` (nothing in TF makes one; a copy re-saved from a PyTorch
  module may have them, :func:`read_i3d_state_dict` drops them);
* ``logits.conv3d.weight`` ``(400, 1024, 1, 1, 1)`` and ``logits.conv3d.bias`` ``(400,)``;
* units ``Conv3d_1a_7x7``, ``Conv3d_2b_1x1``, ``Conv3d_2c_3x3`` and ``Mixed_{3b,3c,4b..4f,5b,5c}``
  with branches ``b0``, ``b1a``, ``b1b``, ``b2a``, ``b2b``, ``b3b`` (``b3a`` is a max pool): 57 units
  with batch norm x 5 tensors + 2 = 287 tensors, 12.7 M float32 numbers (~51 MB).

The key list is ``weights_manifest/keys/i3d_pretrained_400.keys.json`` (manifest entry
:data:`ENTRY_ID`).

The network follows ``pytorch_i3d.py`` of TATS / cd-fvd / MM-Diffusion (piergiaj/pytorch-i3d with one
change) exactly, since that code produced the published FVD numbers:

* every convolution and max pool pads like TensorFlow's ``SAME`` from the input size, per axis:
  ``pad = max(k - s, 0)`` if ``size % s == 0`` else ``max(k - size % s, 0)``, ``pad // 2`` in front
  and the rest behind (zeros, also before max pools: their inputs are ReLU outputs, >= 0);
* batch norm in inference form with **eps = 1e-5** (TATS / cd-fvd / MM-Diffusion; piergiaj's
  original and DeepMind's TF network use 1e-3; :attr:`I3DConfig.bn_eps` picks), then ReLU;
* after ``Mixed_5c`` an average pool ``(2, 7, 7)`` stride 1, (dropout: identity at inference), the
  ``logits`` 1x1x1 convolution with bias, spatial squeeze and the **mean over the remaining time
  steps**: 16 frames at 224 x 224 give one time step, so the output is the 400 class logits.

Only inference is supported (batch norm always uses the stored statistics).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_state_dict, load_strict
from ..device import resolve_device, resolve_dtype
from ..errors import InputError, WeightsError, WeightsNotFoundError

PathLike = Union[str, os.PathLike]
#: The weights manifest entry of the file, named in every loading error.
ENTRY_ID = "i3d_kinetics400"
#: Where ComfyUI users put it (``models/<folder>/<file>``) and where it is published.
MODELS_FOLDER = "i3d"
FILENAME = "i3d_pretrained_400.pt"
SOURCE_URL = "https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt"
#: Kinetics-400 classes: the width of the logits FVD uses.
KINETICS_CLASSES = 400
#: Spatial size and frame count the network's final average pool ``(2, 7, 7)`` is made for.
INPUT_SIZE = 224
CLIP_FRAMES = 16

Triple = tuple[int, int, int]
#: The stem: (name, output channels, kernel, stride) of each unit, or of each max pool (channels 0).
_STEM: tuple[tuple[str, int, Triple, Triple], ...] = (
    ("Conv3d_1a_7x7", 64, (7, 7, 7), (2, 2, 2)),
    ("MaxPool3d_2a_3x3", 0, (1, 3, 3), (1, 2, 2)),
    ("Conv3d_2b_1x1", 64, (1, 1, 1), (1, 1, 1)),
    ("Conv3d_2c_3x3", 192, (3, 3, 3), (1, 1, 1)),
    ("MaxPool3d_3a_3x3", 0, (1, 3, 3), (1, 2, 2)),
)
#: Inception modules and the pools between them, in order. A module's six numbers are the output
#: channels of ``b0``, ``b1a``, ``b1b``, ``b2a``, ``b2b``, ``b3b``; a pool is (kernel, stride).
_BODY: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", (3, 3, 3, 2, 2, 2)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", (2, 2, 2, 2, 2, 2)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
#: The final average pool (time, height, width), stride 1.
_AVG_POOL: Triple = (2, 7, 7)


@dataclass(frozen=True)
class I3DConfig:
    """The I3D's size.

    Attributes:
        num_classes: logits width (Kinetics-400: 400).
        in_channels: input channels (RGB: 3).
        width: channel multiplier applied to every unit (1.0 = the real network; smaller values
            keep the module tree and key names for fast tests, never for real FVD).
        bn_eps: batch-norm epsilon (1e-5 as TATS / cd-fvd / MM-Diffusion; 1e-3 as DeepMind's TF).
    """

    num_classes: int = KINETICS_CLASSES
    in_channels: int = 3
    width: float = 1.0
    bn_eps: float = 1e-5

    def channels(self, count: int) -> int:
        """``count`` scaled by :attr:`width` (at least 1)."""
        return max(1, int(round(count * self.width)))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding of one axis as ``(front, back)``; the back gets the odd one."""
    pad = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return pad // 2, pad - pad // 2


def _pad_same(x: torch.Tensor, kernel: Triple, stride: Triple) -> torch.Tensor:
    """Zero-pad ``(B, C, T, H, W)`` for a ``SAME`` window of ``kernel``/``stride``."""
    (tf, tb), (hf, hb), (wf, wb) = (same_padding(s, k, st) for s, k, st in zip(x.shape[2:], kernel, stride))
    return F.pad(x, (wf, wb, hf, hb, tf, tb))


class BatchNormInference(nn.Module):
    """Batch norm with stored statistics only: ``weight``, ``bias``, ``running_mean``, ``running_var``.

    The file has no ``num_batches_tracked``, so ``nn.BatchNorm3d`` (which has one) would not match
    its keys; the arithmetic is ``F.batch_norm(..., training=False)``.
    """

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W) -> (B, C, T, H, W)``."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class Unit3D(nn.Module):
    """``SAME``-padded 3D convolution, then batch norm and ReLU (or, for ``logits``, bias and nothing).

    Keys: ``conv3d.weight`` ``(out, in, kt, kh, kw)`` and either ``bn.{weight,bias,running_mean,
    running_var}`` or ``conv3d.bias``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1), *, bn_eps: float = 1e-5, logits: bool = False):
        super().__init__()
        self.kernel, self.stride, self.is_logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=logits)
        self.bn = None if logits else BatchNormInference(out_channels, bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, T, H, W) -> (B, C_out, ceil(T / s_t), ceil(H / s_h), ceil(W / s_w))``."""
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        return x if self.bn is None else F.relu(self.bn(x))


class MaxPool3dSame(nn.Module):
    """Max pool with TensorFlow ``SAME`` (zero) padding; no tensors."""

    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W) -> (B, C, ceil(T / s_t), ceil(H / s_h), ceil(W / s_w))``."""
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max pool -> 1x1."""

    def __init__(self, in_channels: int, out: Sequence[int], bn_eps: float):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0], bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, out[1], bn_eps=bn_eps)
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, out[3], bn_eps=bn_eps)
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5], bn_eps=bn_eps)
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, T, H, W) -> (B, out_channels, T, H, W)``."""
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """The I3D under the checkpoint's names; ``forward`` gives the time-averaged logits FVD uses.

    Input ``(B, 3, T, 224, 224)`` RGB in ``[-1, 1]`` (see :mod:`.fvd` for the preprocessing);
    ``T = 16`` for FVD (any ``T >= 9`` runs: the time steps left after the ``(2, 7, 7)`` pool are
    averaged, as the reference code does).
    """

    def __init__(self, config: I3DConfig = I3DConfig()):
        super().__init__()
        self.config = config
        self.trunk: list[str] = []
        channels = config.in_channels
        for name, out, kernel, stride in _STEM:
            if out:
                self.add_module(name, Unit3D(channels, config.channels(out), kernel, stride, bn_eps=config.bn_eps))
                channels = config.channels(out)
            else:
                self.add_module(name, MaxPool3dSame(kernel, stride))
            self.trunk.append(name)
        for name, numbers in _BODY:
            if name.startswith("MaxPool"):
                self.add_module(name, MaxPool3dSame(tuple(numbers[:3]), tuple(numbers[3:])))
            else:
                module = InceptionModule(channels, [config.channels(n) for n in numbers], config.bn_eps)
                self.add_module(name, module)
                channels = module.out_channels
            self.trunk.append(name)
        self.logits = Unit3D(channels, config.num_classes, logits=True)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` in ``[-1, 1]`` -> ``(B, num_classes)`` logits averaged over time.

        Raises:
            InputError: a layout or size the final ``(2, 7, 7)`` pool cannot reduce to one position
                (frames must be 224 x 224, i.e. 7 x 7 after the network's 32x down-sampling).
        """
        if video.ndim != 5 or video.shape[1] != self.config.in_channels:
            raise InputError(f"I3D takes (B, {self.config.in_channels}, T, H, W) clips, got {tuple(video.shape)}")
        x = video
        for name in self.trunk:
            x = self._modules[name](x)
        if x.shape[2] < _AVG_POOL[0] or tuple(x.shape[3:]) != _AVG_POOL[1:]:
            raise InputError(f"I3D needs clips of >= 9 frames at {INPUT_SIZE}x{INPUT_SIZE} pixels (7x7 after "
                             f"its 32x down-sampling); got {tuple(video.shape[2:])} -> {tuple(x.shape[2:])}")
        x = self.logits(F.avg_pool3d(x, _AVG_POOL, stride=1))      # (B, classes, T', 1, 1)
        return x.mean(dim=2).flatten(1)


def i3d_key_shapes(config: I3DConfig = I3DConfig()) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict (built on the meta device, so free)."""
    with torch.device("meta"):
        model = InceptionI3d(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _manifest_hint() -> str:
    return (f"manifest entry '{ENTRY_ID}': put the Kinetics-400 I3D at models/{MODELS_FOLDER}/{FILENAME} "
            f"from {SOURCE_URL} (`m2pdance weights list`)")


def read_i3d_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """The tensors of ``i3d_pretrained_400.pt`` (or a ``.safetensors`` copy), read without running code.

    ``.pt`` goes through ``torch.load(weights_only=True)`` (:func:`~..checkpoint.load_state_dict`), a
    ``.safetensors`` is memory-mapped. A uniform ``module.`` prefix (a ``DataParallel`` save) and
    ``*.num_batches_tracked`` counters (a re-save from a PyTorch module; unused at inference) are
    dropped; every other key must be the checkpoint's.

    Raises:
        WeightsNotFoundError: no such file (the message names the manifest entry and the source).
        WeightsError: unreadable file, or not a flat mapping of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"I3D weights not found: {path}; {_manifest_hint()}")
    try:
        state = load_state_dict(path)
    except WeightsNotFoundError:
        raise
    except WeightsError as e:
        raise WeightsError(f"{e}\n({_manifest_hint()})") from None
    prefix = "module." if state and all(k.startswith("module.") for k in state) else ""
    return {k[len(prefix):]: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}


def load_i3d(path: PathLike, device: Union[str, torch.device, None] = "cpu",
             dtype: Union[str, torch.dtype] = "fp32", config: I3DConfig = I3DConfig()) -> InceptionI3d:
    """The I3D from ``i3d_pretrained_400.pt`` (or a safetensors copy), frozen, in eval mode.

    Args:
        path: the weights file (ComfyUI: ``models/i3d/i3d_pretrained_400.pt``).
        device: where it runs (``"auto"``: CUDA when available).
        dtype: ``"fp32"`` (default; what the reference FVD code runs in), ``"fp16"``, ``"bf16"``,
            ``"auto"`` (fp16 on CUDA) or a ``torch.dtype``.
        config: the architecture the file must fit (default: the real one).
    Raises:
        WeightsNotFoundError, WeightsError: missing or unreadable file;
        WeightsMismatchError: any missing, unexpected or mis-shaped key (the message lists them
            and names the file and the manifest entry).
    """
    state = read_i3d_state_dict(path)
    with torch.device("meta"):
        model = InceptionI3d(config)
    load_strict(model, state, source=f"{path} ({_manifest_hint()})")
    device_ = resolve_device(device)
    return model.to(device=device_, dtype=resolve_dtype(dtype, device_)).eval().requires_grad_(False)

