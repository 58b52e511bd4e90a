"""The :class:`ChampModels` container and how to build, load and save it.

* :func:`build_champ` - randomly initialised models from a preset (tests, benchmarks).
* :func:`load_champ` - Champ's released checkpoints (seven ``.pth`` files) plus the SD VAE and
  the CLIP image encoder. Full-size modules are built on the meta device and filled strictly;
  any key/shape mismatch raises :class:`~..errors.WeightsMismatchError` naming the file.
* :func:`save_champ_models` / :func:`load_champ_models` - our own self-describing safetensors
  (config inside every file), one file per module.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, TypeVar, Union

import torch
from diffusers import AutoencoderKL
from torch import nn
from transformers import CLIPVisionModelWithProjection

from ..checkpoint import PathLike, load_state_dict, read_config, save_model
from ..config import ModelConfig
from ..device import resolve_device, resolve_dtype
from ..errors import InputError
from .autoencoder import build_vae, load_vae
from .config import (GUIDANCE_TYPES, DenoisingUNetConfig, GuidanceEncoderConfig, ImageEncoderConfig, UNetConfig,
                     VAEConfig)
from .denoising_unet import DenoisingUNet3D
from .guidance_encoder import GuidanceEncoder
from .image_encoder import _reset_position_ids, build_image_encoder, load_image_encoder
from .keymap import champ_to_m2p_keys
from .loading import build_on_meta, find_weights, finish_loading, place, read_weights
from .reference_unet import ReferenceUNet

DeviceLike = Union[str, torch.device]
DtypeLike = Union[str, torch.dtype]
M = TypeVar("M", bound=nn.Module)


@dataclass
class ChampModels:
    """Every network of the Champ pipeline, on one device and dtype.

    Attributes:
        reference_unet: ReferenceNet; writes the reference bank once per video.
        denoising_unet: 3-D U-Net predicting v for latents ``(B, 4, F, h, w)``.
        guidance_encoders: guidance type -> encoder; outputs ``(B, C0, F, h, w)`` are summed.
        vae: ``AutoencoderKL`` (8x spatial downsampling, ``config.scaling_factor`` 0.18215).
        image_encoder: CLIP vision tower; ``image_embeds`` ``(B, D)`` condition both U-Nets.
    """

    reference_unet: ReferenceUNet
    denoising_unet: DenoisingUNet3D
    guidance_encoders: dict[str, GuidanceEncoder]
    vae: AutoencoderKL
    image_encoder: CLIPVisionModelWithProjection

    @property
    def device(self) -> torch.device:
        """Device of the denoising U-Net (all modules share it)."""
        return self.denoising_unet.device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the denoising U-Net."""
        return self.denoising_unet.dtype

    def modules(self) -> dict[str, nn.Module]:
        """File stem -> module, for saving and iteration."""
        named: dict[str, nn.Module] = {"reference_unet": self.reference_unet, "denoising_unet": self.denoising_unet,
                                       "vae": self.vae, "image_encoder": self.image_encoder}
        named.update({f"guidance_encoder_{k}": v for k, v in self.guidance_encoders.items()})
        return named


def _check_types(guidance_types: Iterable[str]) -> tuple[str, ...]:
    types = tuple(guidance_types)
    unknown = sorted(set(types) - set(GUIDANCE_TYPES))
    if unknown or not types:
        raise InputError(f"guidance_types must be a non-empty subset of {GUIDANCE_TYPES}, got {types}")
    return types


def build_champ(preset: str = "tiny", seed: int = 0, device: DeviceLike = "cpu", dtype: DtypeLike = torch.float32,
                guidance_types: Iterable[str] = GUIDANCE_TYPES) -> ChampModels:
    """Randomly initialised models of the named preset (``tiny``, ``small``, ``sd15``), seeded."""
    dev, dt = resolve_device(device), resolve_dtype(dtype, resolve_device(device))
    unet_cfg = DenoisingUNetConfig.preset(preset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models = ChampModels(
            reference_unet=ReferenceUNet(unet_cfg.spatial()),
            denoising_unet=DenoisingUNet3D(unet_cfg),
            guidance_encoders={t: GuidanceEncoder(GuidanceEncoderConfig.preset(preset)) for t in _check_types(guidance_types)},
            vae=build_vae(VAEConfig.preset(preset)),
            image_encoder=build_image_encoder(ImageEncoderConfig.preset(preset)),
        )
    for module in models.modules().values():
        place(module, dev, dt)
    return models


def _load_file(factory: Callable[[], M], path: Path, device: torch.device, dtype: torch.dtype,
               champ_names: bool = False) -> M:
    state_dict = read_weights(path)
    module = build_on_meta(factory)
    return finish_loading(module, champ_to_m2p_keys(state_dict, str(path)) if champ_names else state_dict,
                          str(path), device, dtype)


def _load_denoiser(champ_dir: Path, config: DenoisingUNetConfig, device: torch.device,
                   dtype: torch.dtype) -> DenoisingUNet3D:
    spatial = find_weights(champ_dir, ["denoising_unet"])
    motion = find_weights(champ_dir, ["motion_module"])
    merged = {**read_weights(spatial), **read_weights(motion)}  # motion file wins, as in Champ
    source = f"{spatial} + {motion}"
    unet = build_on_meta(lambda: DenoisingUNet3D(config))
    return finish_loading(unet, champ_to_m2p_keys(merged, source), source, device, dtype)


def _load_champ_release(champ_dir: PathLike, vae_path: PathLike, image_encoder_path: PathLike,
                        guidance_types: Iterable[str], device: torch.device, dtype: torch.dtype,
                        unet_config: Optional[DenoisingUNetConfig] = None,
                        guidance_config: Optional[GuidanceEncoderConfig] = None) -> ChampModels:
    """Load Champ's released weights (Champ's module names, mapped by :func:`.keymap.champ_to_m2p_keys`).

    Args:
        champ_dir: folder with ``denoising_unet``, ``reference_unet``, ``motion_module`` and
            ``guidance_encoder_<type>`` weights (``.pth`` or ``.safetensors``).
        vae_path: sd-vae-ft-mse folder or single file (diffusers or LDM keys).
        image_encoder_path: sd-image-variations ``image_encoder`` folder or single file.
        guidance_types: which guidance encoders to load.
        device, dtype: target placement (``"auto"``: CUDA + fp16 if available, else CPU + fp32).
        unet_config, guidance_config: architecture overrides (default: ``sd15`` presets).
    """
    dev, dt = device, dtype
    champ_dir = Path(champ_dir)
    unet_cfg = unet_config or DenoisingUNetConfig.preset("sd15")
    guide_cfg = guidance_config or GuidanceEncoderConfig.preset("sd15")
    encoders = {
        t: _load_file(lambda: GuidanceEncoder(guide_cfg), find_weights(champ_dir, [f"guidance_encoder_{t}"]), dev, dt)
        for t in _check_types(guidance_types)
    }
    return ChampModels(
        reference_unet=_load_file(lambda: ReferenceUNet(unet_cfg.spatial()),
                                  find_weights(champ_dir, ["reference_unet"]), dev, dt),
        denoising_unet=_load_denoiser(champ_dir, unet_cfg, dev, dt),
        guidance_encoders=encoders,
        vae=load_vae(vae_path, device=dev, dtype=dt),
        image_encoder=load_image_encoder(image_encoder_path, device=dev, dtype=dt),
    )


_KIND_PREFIX = "champ."
_BUILDERS: dict[str, tuple[type[ModelConfig], Callable[[ModelConfig], nn.Module]]] = {
    "reference_unet": (UNetConfig, ReferenceUNet),
    "denoising_unet": (DenoisingUNetConfig, DenoisingUNet3D),
    "guidance_encoder": (GuidanceEncoderConfig, GuidanceEncoder),
    "vae": (VAEConfig, build_vae),
    "image_encoder": (ImageEncoderConfig, build_image_encoder),
}


def _kind(stem: str) -> str:
    return "guidance_encoder" if stem.startswith("guidance_encoder_") else stem


def save_champ_models(models: ChampModels, folder: PathLike, stems: Optional[Iterable[str]] = None,
                      extra_metadata: Optional[dict[str, str]] = None,
                      state_dicts: Optional[Mapping[str, Mapping[str, torch.Tensor]]] = None) -> list[Path]:
    """Write one self-describing safetensors file per module into ``folder``.

    Args:
        stems: only these modules (file stems of :meth:`ChampModels.modules`, e.g. ``denoising_unet``).
        extra_metadata: more string metadata in every file (e.g. training provenance).
        state_dicts: weights to write instead of a module's own, by stem (e.g. gathered from shards, or EMA).
    """
    folder = Path(folder)
    named = models.modules()
    chosen = list(named) if stems is None else list(stems)
    unknown = sorted(set(chosen) - set(named))
    if unknown:
        raise InputError(f"no Champ modules {unknown}; modules: {sorted(named)}")
    return [
        save_model(folder / f"{stem}.safetensors",
                   state_dicts[stem] if state_dicts and stem in state_dicts else named[stem].state_dict(),
                   _KIND_PREFIX + _kind(stem),
                   named[stem].m2p_config.to_json(), extra_metadata)
        for stem in chosen
    ]


def _load_saved(path: Path, device: torch.device, dtype: torch.dtype) -> nn.Module:
    from ..checkpoint import KIND_KEY, read_metadata

    kind = read_metadata(path).get(KIND_KEY, "").removeprefix(_KIND_PREFIX) or _kind(path.stem)
    if kind not in _BUILDERS:
        raise InputError(f"{path.name} is not a Champ module saved by m2pdance (kind {kind!r}); "
                         f"expected one of {sorted(_BUILDERS)}")
    config_cls, builder = _BUILDERS[kind]
    config = config_cls.from_dict(read_config(path, _KIND_PREFIX + kind))
    module = build_on_meta(lambda: builder(config))
    if kind == "image_encoder":
        _reset_position_ids(module)
    return finish_loading(module, load_state_dict(path), str(path), device, dtype)


def _is_saved_by_us(path: Path) -> bool:
    from ..checkpoint import read_metadata

    return path.suffix == ".safetensors" and read_metadata(path).get("m2pdance.kind", "").startswith(_KIND_PREFIX)


def load_guidance_encoders(folder: PathLike, guidance_types: Iterable[str] = GUIDANCE_TYPES,
                           device: DeviceLike = "cpu", dtype: DtypeLike = torch.float32,
                           guidance_config: Optional[GuidanceEncoderConfig] = None) -> dict[str, GuidanceEncoder]:
    """Only the guidance encoders of a Champ folder, frozen (training targets need nothing else).

    Args:
        folder: a folder holding ``guidance_encoder_<type>`` files: Champ's release (``.pth`` or
            ``.safetensors``, SD-1.5 sizes unless ``guidance_config`` says otherwise) or files we wrote.
        guidance_types: the types to load; every one must be present.
    Returns:
        guidance type -> :class:`GuidanceEncoder` in eval mode with ``requires_grad`` off.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"Champ guidance encoder folder not found: {folder}; pass the folder holding "
                         "guidance_encoder_depth/normal/semantic_map/dwpose (e.g. models/champ/<name>)")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    types = _check_types(guidance_types)
    missing = [t for t in types if not any(folder.glob(f"guidance_encoder_{t}.*"))]
    if missing:
        raise InputError(f"{folder} lacks guidance_encoder_{{{','.join(missing)}}} weights; Champ's release has "
                         f"guidance_encoder_{{{','.join(GUIDANCE_TYPES)}}}.pth: put them there")
    encoders: dict[str, GuidanceEncoder] = {}
    for t in types:
        path = find_weights(folder, [f"guidance_encoder_{t}"])
        if _is_saved_by_us(path):
            module = _load_saved(path, dev, dt)
        else:
            config = guidance_config or GuidanceEncoderConfig.preset("sd15")
            module = _load_file(lambda: GuidanceEncoder(config), path, dev, dt)
        encoders[t] = module.eval().requires_grad_(False)
    return encoders


def load_champ_files(unet_path: PathLike, vae_path: PathLike, image_encoder_path: PathLike,
                     device: DeviceLike = "auto", dtype: DtypeLike = "auto",
                     unet_config: Optional[DenoisingUNetConfig] = None,
                     guidance_config: Optional[GuidanceEncoderConfig] = None) -> ChampModels:
    """The one Champ loader: the three files a user picks (e.g. in ComfyUI's dropdowns), whatever their format.

    Args:
        unet_path: the ``denoising_unet`` file; its folder holds the other Champ files
            (``reference_unet``, ``motion_module`` for Champ's release, ``guidance_encoder_<type>``;
            every guidance encoder present is loaded).
        vae_path, image_encoder_path: files (or folders) of the VAE and the CLIP image encoder.

    Files we wrote (:func:`save_champ_models`, the smoke weights) carry their config and are
    loaded as such; anything else is read as Champ's released checkpoints (SD-1.5 sizes unless
    ``unet_config`` / ``guidance_config`` say otherwise).
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    unet_path, vae_path, image_encoder_path = Path(unet_path), Path(vae_path), Path(image_encoder_path)
    folder = unet_path.parent if unet_path.is_file() else unet_path
    present = [t for t in GUIDANCE_TYPES if any(folder.glob(f"guidance_encoder_{t}.*"))]
    vae_file, clip_file = find_weights(vae_path), find_weights(image_encoder_path)
    vae = _load_saved(vae_file, dev, dt) if _is_saved_by_us(vae_file) else load_vae(vae_path, device=dev, dtype=dt)
    clip = (_load_saved(clip_file, dev, dt) if _is_saved_by_us(clip_file)
            else load_image_encoder(image_encoder_path, device=dev, dtype=dt))
    if _is_saved_by_us(find_weights(unet_path)):
        def load(stem: str) -> nn.Module:
            return _load_saved(find_weights(folder, [stem]), dev, dt)

        return ChampModels(reference_unet=load("reference_unet"), denoising_unet=load("denoising_unet"),
                           guidance_encoders={t: load(f"guidance_encoder_{t}") for t in present},
                           vae=vae, image_encoder=clip)
    if not present:
        raise InputError(f"no guidance_encoder_* file next to {unet_path.name} in {folder}; Champ's release has four "
                         "(depth, normal, semantic_map, dwpose): put at least the ones you use there")
    return _load_champ_release(folder, vae_path, image_encoder_path, present, dev, dt, unet_config, guidance_config)
