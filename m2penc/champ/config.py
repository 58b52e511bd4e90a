"""Architecture configs of every Champ component, as frozen dataclasses with presets.

Each config fully describes one module, travels inside the weights files we write
(:func:`..checkpoint.save_model`) and has three presets:

* ``tiny``  - a few-thousand-parameter model for tests (CPU, seconds);
* ``small`` - a mid-size model for benchmarks;
* ``sd15``  - the real Champ sizes (SD-1.5 U-Nets, sd-vae-ft-mse, CLIP ViT-L/14 image encoder).

The U-Net fields use SD-1.5 conventions: ``num_attention_heads`` is the number of heads in every
spatial attention (SD-1.5's ``attention_head_dim: 8`` is really a head count), and
``down_block_types`` lists diffusers' 2-D block names; the up path mirrors it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import ModelConfig
from ..errors import InputError

#: Guidance types in Champ's order; their encoder outputs are summed.
GUIDANCE_TYPES: tuple[str, ...] = ("depth", "normal", "semantic_map", "dwpose")

_CROSS_DOWN = "CrossAttnDownBlock2D"
_PLAIN_DOWN = "DownBlock2D"
_SD15_DOWN = (_CROSS_DOWN, _CROSS_DOWN, _CROSS_DOWN, _PLAIN_DOWN)


@dataclass(frozen=True)
class UNetConfig(ModelConfig):
    """Spatial SD-1.5-style U-Net (the ReferenceNet, and the spatial part of the denoiser)."""

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = _SD15_DOWN
    layers_per_block: int = 2
    num_attention_heads: int = 8
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {
            "block_out_channels": (32, 64),
            "down_block_types": (_CROSS_DOWN, _PLAIN_DOWN),
            "layers_per_block": 1,
            "cross_attention_dim": 32,
        },
        "small": {"block_out_channels": (64, 128, 256, 256), "layers_per_block": 1, "cross_attention_dim": 256},
        "sd15": {},
    }

    def __post_init__(self) -> None:
        if len(self.down_block_types) != len(self.block_out_channels):
            raise InputError(
                f"down_block_types {self.down_block_types} and block_out_channels "
                f"{self.block_out_channels} must have the same length"
            )
        unknown = set(self.down_block_types) - {_CROSS_DOWN, _PLAIN_DOWN}
        if unknown:
            raise InputError(f"unsupported down_block_types {sorted(unknown)}; use {_CROSS_DOWN} or {_PLAIN_DOWN}")

    @property
    def up_block_types(self) -> tuple[str, ...]:
        """diffusers 2-D up-block names mirroring ``down_block_types``."""
        names = {_CROSS_DOWN: "CrossAttnUpBlock2D", _PLAIN_DOWN: "UpBlock2D"}
        return tuple(names[t] for t in reversed(self.down_block_types))

    def diffusers_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of diffusers' ``UNet2DConditionModel`` for this config."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "block_out_channels": self.block_out_channels,
            "down_block_types": self.down_block_types,
            "up_block_types": self.up_block_types,
            "layers_per_block": self.layers_per_block,
            "attention_head_dim": self.num_attention_heads,
            "cross_attention_dim": self.cross_attention_dim,
            "norm_num_groups": self.norm_num_groups,
            "norm_eps": self.norm_eps,
        }


@dataclass(frozen=True)
class DenoisingUNetConfig(UNetConfig):
    """The denoising 3-D U-Net: :class:`UNetConfig` plus AnimateDiff-v2 motion modules.

    One motion module follows every spatial layer (down, mid and up), as in Champ with
    ``motion_module_resolutions=(1, 2, 4, 8)`` and ``motion_module_mid_block=True``; hence at most
    four resolution levels. ``motion_max_seq_length`` is the positional-encoding length, i.e.
    the longest clip one forward pass may see.
    """

    motion_num_attention_heads: int = 8
    motion_max_seq_length: int = 32
    motion_layers: int = 1

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = UNetConfig.PRESETS

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.block_out_channels) > 4:
            raise InputError(
                "Champ places motion modules at resolutions (1, 2, 4, 8): at most 4 U-Net levels, "
                f"got {len(self.block_out_channels)}"
            )

    def spatial(self) -> UNetConfig:
        """The matching ReferenceNet config (same spatial architecture)."""
        fields = {k: v for k, v in self.to_dict().items() if not k.startswith("motion_")}
        return UNetConfig.from_dict(fields)

    def motion_diffusers_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of diffusers' ``UNetMotionModel`` for this config."""
        motion_types = {"CrossAttnDownBlock2D": "CrossAttnDownBlockMotion", "DownBlock2D": "DownBlockMotion",
                        "CrossAttnUpBlock2D": "CrossAttnUpBlockMotion", "UpBlock2D": "UpBlockMotion"}
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "block_out_channels": self.block_out_channels,
            "down_block_types": tuple(motion_types[t] for t in self.down_block_types),
            "up_block_types": tuple(motion_types[t] for t in self.up_block_types),
            "layers_per_block": self.layers_per_block,
            "num_attention_heads": self.num_attention_heads,
            "cross_attention_dim": self.cross_attention_dim,
            "norm_num_groups": self.norm_num_groups,
            "norm_eps": self.norm_eps,
            "motion_num_attention_heads": self.motion_num_attention_heads,
            "motion_max_seq_length": self.motion_max_seq_length,
            "temporal_transformer_layers_per_block": self.motion_layers,
            "temporal_transformer_layers_per_mid_block": self.motion_layers,
            "use_motion_mid_block": True,
        }


@dataclass(frozen=True)
class MotionModuleConfig(ModelConfig):
    """One stand-alone motion module (Champ's ``VanillaTemporalModule``)."""

    channels: int = 320
    num_attention_heads: int = 8
    max_seq_length: int = 32
    num_layers: int = 1
    norm_num_groups: int = 32

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {"channels": 32}, "small": {"channels": 128}, "sd15": {}}


@dataclass(frozen=True)
class GuidanceEncoderConfig(ModelConfig):
    """Champ's ``GuidanceEncoder``: RGB guidance frames -> features at 1/8 resolution."""

    embedding_channels: int = 320
    input_channels: int = 3
    block_out_channels: tuple[int, ...] = (16, 32, 96, 256)
    num_attention_heads: int = 8

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"embedding_channels": 32, "block_out_channels": (8, 32, 32, 32)},
        "small": {"embedding_channels": 64},
        "sd15": {},
    }


@dataclass(frozen=True)
class VAEConfig(ModelConfig):
    """SD ``AutoencoderKL`` (sd-vae-ft-mse at full size); 8x spatial downsampling.

    ``mid_block_add_attention`` is diffusers' switch for the attention in the middle blocks (SD: on);
    the ``demo`` preset (the demo set's small VAE) has none, so it sees crops and whole frames alike.
    """

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215
    mid_block_add_attention: bool = True

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"block_out_channels": (16, 16, 16, 16), "layers_per_block": 1, "norm_num_groups": 8},
        "small": {"block_out_channels": (32, 64, 64, 64), "layers_per_block": 1},
        # the demo set's VAE: 8 norm groups (4-8 channels each; 32 groups on 32-64 channels normalise every
        # channel on its own and the frame's overall colour is lost) and no middle attention
        "demo": {"block_out_channels": (32, 64, 64, 64), "layers_per_block": 1, "norm_num_groups": 8,
                 "mid_block_add_attention": False},
        "sd15": {},
    }

    def diffusers_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of diffusers' ``AutoencoderKL``."""
        n = len(self.block_out_channels)
        return {
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ("DownEncoderBlock2D",) * n,
            "up_block_types": ("UpDecoderBlock2D",) * n,
            "block_out_channels": self.block_out_channels,
            "layers_per_block": self.layers_per_block,
            "latent_channels": self.latent_channels,
            "norm_num_groups": self.norm_num_groups,
            "scaling_factor": self.scaling_factor,
            "mid_block_add_attention": self.mid_block_add_attention,
        }


@dataclass(frozen=True)
class ImageEncoderConfig(ModelConfig):
    """CLIP vision tower with projection (lambdalabs sd-image-variations at full size)."""

    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    projection_dim: int = 768
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "image_size": 32, "patch_size": 8, "projection_dim": 32},
        "small": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "image_size": 112, "patch_size": 14, "projection_dim": 256},
        "sd15": {},
    }

    def transformers_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of transformers' ``CLIPVisionConfig``."""
        return self.to_dict()
