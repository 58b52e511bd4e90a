"""LPIPS (Zhang et al. 2018, ``lpips`` v0.1) on AlexNet or VGG16, without torchvision (paper §4.2, Table 1).

The network is richzhang's ``lpips.LPIPS(net="alex" | "vgg", version="0.1")``:

1. input ``[-1, 1]`` (our ``[0, 1]`` frames as ``2 x - 1``, lpips' ``normalize=True``), then the
   scaling layer ``(x - shift) / scale`` with ``shift = (-0.030, -0.088, -0.188)`` and
   ``scale = (0.458, 0.448, 0.450)`` per RGB channel (constants, not weights);
2. torchvision's ``features`` stack of the backbone, tapped after five ReLUs: AlexNet
   ``features.1/4/7/9/11`` (64, 192, 384, 256, 256 channels), VGG16 ``features.3/8/15/22/29``
   (relu1_2 ... relu5_3: 64, 128, 256, 512, 512);
3. per tap, unit-normalisation over channels ``f / (||f||_2 + 1e-10)`` (lpips' ``normalize_tensor``;
   torchmetrics' copy uses ``f / sqrt(||f||^2 + 1e-8)``, which differs only for near-zero features);
4. squared difference, the linear head ``lin<k>`` (a 1x1 convolution to one channel, no bias),
   the mean over positions, and the sum over the five taps: one distance per frame.

Key names are the public files': ``features.<i>.weight`` / ``.bias`` as in torchvision's
``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth`` (the convolution at the same index of our own
``features`` stack), ``lin<k>.model.1.weight`` ``(1, C_k, 1, 1)`` as in lpips' ``weights/v0.1/alex.pth``
/ ``vgg.pth`` (index 1 because lpips puts a dropout at index 0; here an identity, since the metric
never trains). The module's state dict is exactly the lin-head file's keys plus the backbone file's
``features.*`` keys; the backbone file's ``classifier.*`` tensors (torchvision's ImageNet head) are
checked and left unused. The key lists are ``weights_manifest/keys/lpips_*.keys.json``.

Weights come only from local files (:func:`load_lpips`; ComfyUI layout ``models/lpips/``, see
:func:`lpips_paths`), read by :func:`~..checkpoint.load_state_dict` (``torch.load(weights_only=True)``:
nothing in the file runs; it also reads the lin-head files' legacy, non-zip format with CUDA-tagged
storages) or as safetensors. A missing file names itself and its weights-manifest entry.

Resolution: LPIPS runs at the frames' native size (no resize; lpips' default). The paper scores
640 x 640 dancer-centred crops, so crop both videos to 640 x 640 before calling :func:`lpips`.
Frames must be at least :data:`MIN_SIDE` pixels on each side. AlexNet ("alex") is the paper's
default (lpips' recommended forward metric); VGG16 is optional.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..checkpoint import compare_state_dict, load_state_dict, load_strict, mismatch_message
from ..device import resolve_device
from ..errors import InputError, WeightsError, WeightsMismatchError, WeightsNotFoundError
from .image_metrics import FrameScores, Frames, frame_chunks, video_pair

PathLike = Union[str, os.PathLike]
#: ``models/<folder>/`` holding all four LPIPS files (ComfyUI layout).
MODELS_FOLDER = "lpips"
#: lpips' scaling layer, per RGB channel, applied to ``[-1, 1]`` input.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
#: lpips' ``normalize_tensor`` epsilon (added to the channel norm).
NORM_EPS = 1e-10
#: Smallest frame side both backbones accept (AlexNet's stride-4 stem and two 3x3/2 pools need 31).
MIN_SIDE = 32
#: Frames per forward pass.
LPIPS_CHUNK = 4

# A layer of torchvision's ``features``: ("conv", in, out, kernel, stride, padding), ("relu",) or
# ("pool", kernel, stride).
Layer = tuple


def _vgg16_features() -> tuple[Layer, ...]:
    """torchvision's VGG16 ``features`` (config "D") up to relu5_3 (index 29; the last pool is unused)."""
    layers: list[Layer] = []
    channels = 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if width == "M":
            layers.append(("pool", 2, 2))
        else:
            layers += [("conv", channels, width, 3, 1, 1), ("relu",)]
            channels = width
    return tuple(layers)


@dataclass(frozen=True)
class LPIPSNet:
    """One LPIPS variant: its backbone layout, taps and the two public files it loads."""

    name: str
    features: tuple[Layer, ...]
    taps: tuple[int, ...]
    #: torchvision's ImageNet classifier in the backbone file: (index, in, out) of each Linear.
    classifier: tuple[tuple[int, int, int], ...]
    lin_entry: str
    lin_file: str
    lin_source: str
    backbone_entry: str
    backbone_file: str
    backbone_source: str

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels at each tap: the input widths of ``lin0..lin4``."""
        return tuple(self._conv_before(t)[2] for t in self.taps)

    def _conv_before(self, index: int) -> Layer:
        return next(self.features[i] for i in range(index, -1, -1) if self.features[i][0] == "conv")


_LPIPS_WEIGHTS = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
NETS: dict[str, LPIPSNet] = {
    "alex": LPIPSNet(
        name="alex",
        features=(("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
                  ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
                  ("conv", 192, 384, 3, 1, 1), ("relu",),
                  ("conv", 384, 256, 3, 1, 1), ("relu",),
                  ("conv", 256, 256, 3, 1, 1), ("relu",)),
        taps=(1, 4, 7, 9, 11),
        classifier=((1, 256 * 6 * 6, 4096), (4, 4096, 4096), (6, 4096, 1000)),
        lin_entry="lpips_alex_lin", lin_file="alex.pth", lin_source=_LPIPS_WEIGHTS + "alex.pth",
        backbone_entry="lpips_alexnet_backbone", backbone_file="alexnet-owt-7be5be79.pth",
        backbone_source="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    ),
    "vgg": LPIPSNet(
        name="vgg",
        features=_vgg16_features(),
        taps=(3, 8, 15, 22, 29),
        classifier=((0, 512 * 7 * 7, 4096), (3, 4096, 4096), (6, 4096, 1000)),
        lin_entry="lpips_vgg_lin", lin_file="vgg.pth", lin_source=_LPIPS_WEIGHTS + "vgg.pth",
        backbone_entry="lpips_vgg16_backbone", backbone_file="vgg16-397923af.pth",
        backbone_source="https://download.pytorch.org/models/vgg16-397923af.pth",
    ),
}


def lpips_net(name: str) -> LPIPSNet:
    """The variant called ``name`` (``"alex"`` or ``"vgg"``)."""
    if name not in NETS:
        raise InputError(f"unknown LPIPS network {name!r}; choose one of {sorted(NETS)}")
    return NETS[name]


def _build_features(spec: LPIPSNet) -> nn.Sequential:
    modules: list[nn.Module] = []
    for layer in spec.features:
        if layer[0] == "conv":
            _, c_in, c_out, kernel, stride, padding = layer
            modules.append(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding))
        elif layer[0] == "relu":
            modules.append(nn.ReLU())
        else:
            modules.append(nn.MaxPool2d(layer[1], stride=layer[2]))
    return nn.Sequential(*modules)


class LinearHead(nn.Module):
    """lpips' ``NetLinLayer``: a 1x1 convolution ``C -> 1`` without bias, at ``model.1``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, h, w)`` -> ``(N, 1, h, w)``."""
        return self.model(x)


class LPIPS(nn.Module):
    """The LPIPS distance network (inference only).

    Args:
        net: ``"alex"`` (the paper's default) or ``"vgg"``.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        self.spec = lpips_net(net)
        self.features = _build_features(self.spec)
        for k, channels in enumerate(self.spec.channels):
            self.add_module(f"lin{k}", LinearHead(channels))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    @property
    def heads(self) -> list[LinearHead]:
        """``lin0 .. lin4``, one per tap."""
        return [getattr(self, f"lin{k}") for k in range(len(self.spec.taps))]

    def tapped_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(N, 3, H, W)`` scaled input -> the five ReLU outputs ``(N, C_k, h_k, w_k)``."""
        taps, wanted = [], set(self.spec.taps)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                taps.append(x)
        return taps

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS distance of each image pair.

        Args:
            x0, x1: ``(N, 3, H, W)`` images in ``[-1, 1]`` (lpips' convention), same shape.
        Returns:
            ``(N,)`` distances (0 for identical images).
        """
        f0 = self.tapped_features((x0 - self.shift) / self.scale)
        f1 = self.tapped_features((x1 - self.shift) / self.scale)
        total = torch.zeros(x0.shape[0], device=x0.device, dtype=x0.dtype)
        for head, a, b in zip(self.heads, f0, f1):
            diff = (_unit(a) - _unit(b)).square()
            total = total + head(diff).mean(dim=(1, 2, 3))
        return total


def _unit(f: torch.Tensor) -> torch.Tensor:
    """lpips' ``normalize_tensor``: each position's channel vector divided by its norm (+ 1e-10)."""
    return f / (f.square().sum(dim=1, keepdim=True).sqrt() + NORM_EPS)


def lin_key_shapes(net: str = "alex") -> dict[str, tuple[int, ...]]:
    """Key -> shape of lpips' ``weights/v0.1/<net>.pth`` (the linear heads)."""
    return {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(lpips_net(net).channels)}


def backbone_key_shapes(net: str = "alex") -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's whole backbone file (``features.*`` and ``classifier.*``)."""
    spec = lpips_net(net)
    shapes: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(spec.features):
        if layer[0] == "conv":
            _, c_in, c_out, kernel, _, _ = layer
            shapes[f"features.{i}.weight"] = (c_out, c_in, kernel, kernel)
            shapes[f"features.{i}.bias"] = (c_out,)
    for i, c_in, c_out in spec.classifier:
        shapes[f"classifier.{i}.weight"] = (c_out, c_in)
        shapes[f"classifier.{i}.bias"] = (c_out,)
    return shapes


def _hint(entry: str, path: str, source: str) -> str:
    return f"manifest entry '{entry}': put it at models/{path} from {source} (`m2pdance weights list`)"


def lpips_paths(models_dir: PathLike, net: str = "alex") -> tuple[Path, Path]:
    """``(lin-head file, backbone file)`` under ``<models_dir>/lpips/``.

    The manifest's file names (``alex.pth`` + ``alexnet-owt-7be5be79.pth``, or ``vgg.pth`` +
    ``vgg16-397923af.pth``), or a ``.safetensors`` copy with the same stem when only that exists.
    Missing files are reported by :func:`load_lpips`.
    """
    spec = lpips_net(net)
    folder = Path(models_dir) / MODELS_FOLDER

    def pick(filename: str) -> Path:
        path = folder / filename
        twin = path.with_suffix(".safetensors")
        return twin if not path.is_file() and twin.is_file() else path

    return pick(spec.lin_file), pick(spec.backbone_file)


def _read(path: Path, what: str, hint: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsNotFoundError(f"LPIPS {what} not found: {path}; {hint}")
    try:
        return load_state_dict(path)
    except WeightsError as e:
        raise WeightsError(f"{e}\n({hint})") from None


def _check(found: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], source: str,
           optional_prefix: Optional[str] = None) -> None:
    """Zero missing, unexpected or mis-shaped keys (keys under ``optional_prefix`` may be absent)."""
    given = {k: tuple(v.shape) for k, v in found.items()}
    missing, unexpected, mismatched = compare_state_dict(expected, given)
    if optional_prefix is not None:
        missing = [k for k in missing if not k.startswith(optional_prefix)]
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(mismatch_message(source, missing, unexpected, mismatched))


def load_lpips(lin_path: PathLike, backbone_path: PathLike, net: str = "alex",
               device: Union[str, torch.device, None] = "cpu") -> LPIPS:
    """LPIPS with the public weights, frozen, float32, in eval mode.

    Args:
        lin_path: lpips' linear heads, ``weights/v0.1/alex.pth`` (or ``vgg.pth``), or a safetensors copy.
        backbone_path: torchvision's ``alexnet-owt-7be5be79.pth`` (or ``vgg16-397923af.pth``), or a
            safetensors copy; its ``classifier.*`` tensors may be absent (they are unused).
        net: ``"alex"`` or ``"vgg"``; the files must be that network's.
        device: where it runs (``"auto"``: CUDA when available).
    Raises:
        WeightsNotFoundError: a file is missing (the message names it and its manifest entry).
        WeightsError: a file is unreadable.
        WeightsMismatchError: a file has missing, unexpected or mis-shaped keys (all listed).
    """
    spec = lpips_net(net)
    lin_path, backbone_path = Path(lin_path), Path(backbone_path)
    lin_hint = _hint(spec.lin_entry, f"{MODELS_FOLDER}/{spec.lin_file}", spec.lin_source)
    backbone_hint = _hint(spec.backbone_entry, f"{MODELS_FOLDER}/{spec.backbone_file}", spec.backbone_source)
    lin = _read(lin_path, f"{net} linear heads", lin_hint)
    backbone = _read(backbone_path, f"{net} backbone", backbone_hint)
    _check(lin, lin_key_shapes(net), f"{lin_path} ({lin_hint})")
    _check(backbone, backbone_key_shapes(net), f"{backbone_path} ({backbone_hint})", optional_prefix="classifier.")
    state = {**lin, **{k: v for k, v in backbone.items() if k.startswith("features.")}}
    model = LPIPS(net)  # small (2.5 M / 14.7 M numbers): built on the CPU, every tensor then overwritten
    load_strict(model, {k: v.float() for k, v in state.items()}, source=f"{lin_path} + {backbone_path}")
    return model.to(resolve_device(device)).eval().requires_grad_(False)


def lpips(pred: Frames, target: Frames, model: LPIPS) -> FrameScores:
    """LPIPS per frame at native resolution, then :attr:`FrameScores.mean` over frames.

    Args:
        pred: generated video ``(F, H, W, 3)``, float ``[0, 1]`` or uint8, H and W >= :data:`MIN_SIDE`.
        target: ground-truth video, same shape.
        model: from :func:`load_lpips` (or ``LPIPS(net)`` with weights of your own).
    Returns:
        ``FrameScores("lpips_alex" | "lpips_vgg", ...)``: one distance per frame (lower is closer).
    """
    pred_t, target_t = video_pair(pred, target)
    height, width = pred_t.shape[1:3]
    if min(height, width) < MIN_SIDE:
        raise InputError(f"LPIPS needs frames of at least {MIN_SIDE} x {MIN_SIDE} pixels, got {height} x {width}")
    param = next(model.parameters())
    values: list[float] = []
    with torch.inference_mode():
        for a, b in frame_chunks(pred_t, target_t, param.dtype, param.device, chunk=LPIPS_CHUNK):
            values.extend(float(v) for v in model(2 * a - 1, 2 * b - 1))
    return FrameScores(f"lpips_{model.spec.name}", tuple(values))
