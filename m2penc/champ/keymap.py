"""The one key-mapping function between Champ's checkpoint names and our modules.

Only the motion modules are named differently: Champ keeps AnimateDiff-v2 names
(``motion_modules.N.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q``), we use
diffusers' ``AnimateDiffTransformer3D`` (``motion_modules.N.transformer_blocks.0.attn1.to_q``).
Every other Champ key (spatial U-Nets, guidance encoders) is already ours.

Champ stores the sinusoidal position table twice per motion module (one ``pos_encoder.pe`` per
attention block, identical by construction); diffusers keeps one ``pos_embed.pe`` per block. The
first becomes ``pos_embed.pe``; the second is dropped after checking it equals the first.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..errors import WeightsMismatchError

_MOTION_TOKEN = "temporal_transformer."
_RENAMES: tuple[tuple[str, str], ...] = (
    (".attention_blocks.0.pos_encoder.pe", ".pos_embed.pe"),
    (".attention_blocks.0.", ".attn1."),
    (".attention_blocks.1.", ".attn2."),
    (".norms.0.", ".norm1."),
    (".norms.1.", ".norm2."),
    (".ff_norm.", ".norm3."),
)
_SECOND_PE = ".attention_blocks.1.pos_encoder.pe"


def _rename(key: str) -> str:
    key = key.replace(_MOTION_TOKEN, "")
    for old, new in _RENAMES:
        key = key.replace(old, new)
    return key


def champ_to_m2p_keys(state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> dict[str, torch.Tensor]:
    """Rename a Champ state dict to our module keys (non-motion keys pass through unchanged).

    Raises:
        WeightsMismatchError: a duplicated position table differs from its twin (corrupt file).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if _MOTION_TOKEN in key and key.endswith(_SECOND_PE):
            twin = state_dict.get(key.replace(_SECOND_PE, ".attention_blocks.0.pos_encoder.pe"))
            if twin is None or twin.shape != value.shape or not torch.equal(twin, value):
                raise WeightsMismatchError(f"{source}: {key} does not match its attention_blocks.0 twin")
            continue
        out[_rename(key) if _MOTION_TOKEN in key else key] = value
    return out
