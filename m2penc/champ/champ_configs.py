"""Champ's constructor keyword arguments -> our configs (the parity vectors and Champ's YAML use them).

Champ's UNet kwargs follow diffusers-0.24 / AnimateDiff conventions (``attention_head_dim`` is a
head count, 3-D block names, ``motion_module_kwargs``). Settings Champ supports but never uses
(temporal attention in the spatial blocks, decoder-only motion modules, cross-attention motion
blocks, ...) are rejected with :class:`~..errors.InputError` rather than silently ignored.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import InputError
from .config import DenoisingUNetConfig, GuidanceEncoderConfig, MotionModuleConfig, UNetConfig

_BLOCK_2D = {"CrossAttnDownBlock3D": "CrossAttnDownBlock2D", "DownBlock3D": "DownBlock2D",
             "CrossAttnDownBlock2D": "CrossAttnDownBlock2D", "DownBlock2D": "DownBlock2D"}
#: Champ settings we reproduce, with the only value we support.
_FIXED_UNET = {"flip_sin_to_cos": True, "freq_shift": 0, "act_fn": "silu", "downsample_padding": 1,
               "mid_block_scale_factor": 1, "center_input_sample": False}
_FIXED_3D = {"use_inflated_groupnorm": True, "unet_use_cross_frame_attention": False,
             "unet_use_temporal_attention": False, "use_motion_module": True, "motion_module_mid_block": True,
             "motion_module_decoder_only": False, "motion_module_type": "Vanilla"}
_FIXED_MOTION = {"attention_block_types": ["Temporal_Self", "Temporal_Self"], "temporal_position_encoding": True,
                 "temporal_attention_dim_div": 1}


def _require(kwargs: Mapping[str, Any], fixed: Mapping[str, Any], what: str) -> None:
    for key, value in fixed.items():
        got = kwargs.get(key, value)
        if (list(got) if isinstance(got, (list, tuple)) else got) != value:
            raise InputError(f"{what}: unsupported {key}={got!r} (only {value!r} is implemented)")


def unet_config_from_champ(kwargs: Mapping[str, Any]) -> UNetConfig:
    """Champ ``UNet2DConditionModel`` kwargs -> :class:`UNetConfig`."""
    _require(kwargs, _FIXED_UNET, "reference_unet")
    return UNetConfig(
        in_channels=kwargs.get("in_channels", 4),
        out_channels=kwargs.get("out_channels", 4),
        block_out_channels=tuple(kwargs["block_out_channels"]),
        down_block_types=tuple(_BLOCK_2D[t] for t in kwargs["down_block_types"]),
        layers_per_block=kwargs["layers_per_block"],
        num_attention_heads=kwargs["attention_head_dim"],
        cross_attention_dim=kwargs["cross_attention_dim"],
        norm_num_groups=kwargs.get("norm_num_groups", 32),
        norm_eps=kwargs.get("norm_eps", 1e-5),
    )


def denoising_config_from_champ(kwargs: Mapping[str, Any]) -> DenoisingUNetConfig:
    """Champ ``UNet3DConditionModel`` kwargs -> :class:`DenoisingUNetConfig`."""
    _require(kwargs, _FIXED_3D, "denoising_unet")
    motion = kwargs["motion_module_kwargs"]
    _require(motion, _FIXED_MOTION, "motion_module_kwargs")
    resolutions = tuple(kwargs.get("motion_module_resolutions", (1, 2, 4, 8)))
    needed = tuple(2**i for i in range(len(kwargs["block_out_channels"])))
    if not set(needed) <= set(resolutions):
        raise InputError(f"motion modules must sit at every resolution {needed}, got {resolutions}")
    spatial = unet_config_from_champ(kwargs)
    return DenoisingUNetConfig(
        **spatial.to_dict(),
        motion_num_attention_heads=motion["num_attention_heads"],
        motion_max_seq_length=motion["temporal_position_encoding_max_len"],
        motion_layers=motion["num_transformer_block"],
    )


def motion_config_from_champ(kwargs: Mapping[str, Any], channels: int) -> MotionModuleConfig:
    """Champ ``VanillaTemporalModule`` kwargs (+ its channel count) -> :class:`MotionModuleConfig`."""
    _require(kwargs, {**_FIXED_MOTION, "cross_frame_attention_mode": None}, "motion_module")
    return MotionModuleConfig(
        channels=channels,
        num_attention_heads=kwargs["num_attention_heads"],
        max_seq_length=kwargs["temporal_position_encoding_max_len"],
        num_layers=kwargs["num_transformer_block"],
    )


def guidance_config_from_champ(kwargs: Mapping[str, Any]) -> GuidanceEncoderConfig:
    """Champ ``GuidanceEncoder`` kwargs -> :class:`GuidanceEncoderConfig`."""
    return GuidanceEncoderConfig(
        embedding_channels=kwargs["guidance_embedding_channels"],
        input_channels=kwargs.get("guidance_input_channels", 3),
        block_out_channels=tuple(kwargs["block_out_channels"]),
        num_attention_heads=kwargs.get("attention_num_heads", 8),
    )
