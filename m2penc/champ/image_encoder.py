"""The CLIP image encoder (``CLIPVisionModelWithProjection``; sd-image-variations at full size).

Champ conditions both U-Nets on ``image_embeds`` (the projected pooled output, not
L2-normalised) of the reference image, as a single token ``(B, 1, D)``.

Loading note: transformers <= 4.30 saved ``vision_model.embeddings.position_ids`` in the state
dict (lambdalabs' file has it); modern transformers makes it a non-persistent buffer. We drop it
from the file after checking it is ``arange``, and rebuild it after a meta-device load.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from ..checkpoint import PathLike
from ..errors import WeightsMismatchError
from .config import ImageEncoderConfig
from .loading import build_on_meta, find_weights, finish_loading, folder_config, read_weights

_POSITION_IDS = "vision_model.embeddings.position_ids"
#: OpenAI CLIP normalisation (``CLIPImageProcessor`` defaults).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def build_image_encoder(config: ImageEncoderConfig) -> CLIPVisionModelWithProjection:
    """A randomly initialised CLIP vision tower with projection, SDPA attention."""
    clip_config = CLIPVisionConfig(**config.transformers_kwargs())
    clip_config._attn_implementation = "sdpa"
    model = CLIPVisionModelWithProjection(clip_config)
    model.m2p_config = config
    return model


def image_encoder_config_from_folder(path: PathLike) -> Optional[ImageEncoderConfig]:
    """Read a transformers ``config.json`` into an :class:`ImageEncoderConfig`, if present."""
    raw = folder_config(path)
    raw = raw.get("vision_config", raw)
    if not raw:
        return None
    names = ImageEncoderConfig.__dataclass_fields__.keys()
    return ImageEncoderConfig.from_dict({k: raw[k] for k in names if k in raw})


def _reset_position_ids(model: CLIPVisionModelWithProjection) -> None:
    embeddings = model.vision_model.embeddings
    ids = torch.arange(embeddings.num_positions).expand((1, -1))
    embeddings.register_buffer("position_ids", ids, persistent=False)


def _drop_position_ids(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    ids = state_dict.pop(_POSITION_IDS, None)
    if ids is not None and not torch.equal(ids.reshape(-1).long(), torch.arange(ids.numel())):
        raise WeightsMismatchError(f"{source}: {_POSITION_IDS} is not 0..N-1")
    return state_dict


def load_image_encoder(path: PathLike, config: Optional[ImageEncoderConfig] = None,
                       device: Union[str, torch.device] = "cpu",
                       dtype: torch.dtype = torch.float32) -> CLIPVisionModelWithProjection:
    """Load from a transformers folder or a single file; strict, meta-built."""
    config = config or image_encoder_config_from_folder(path) or ImageEncoderConfig.preset("sd15")
    file = find_weights(path)
    model = build_on_meta(lambda: build_image_encoder(config))
    _reset_position_ids(model)
    state_dict = _drop_position_ids(dict(read_weights(file)), str(file))
    return finish_loading(model, state_dict, str(file), device, dtype)
