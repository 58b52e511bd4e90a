"""The single Champ -> m2p key-mapping function and the per-frame GroupNorm patch."""
from __future__ import annotations

import pytest
import torch

from m2pdance.m2penc.champ import MotionModule, MotionModuleConfig, champ_to_m2p_keys
from m2pdance.m2penc.champ.motion_norm import FrameGroupNorm
from m2pdance.m2penc.errors import WeightsMismatchError

PREFIX = "up_blocks.1.motion_modules.2.temporal_transformer."


def test_motion_keys_are_renamed_and_other_keys_pass_through():
    pe = torch.randn(1, 32, 8)
    champ = {
        PREFIX + "norm.weight": torch.ones(8),
        PREFIX + "transformer_blocks.0.attention_blocks.0.to_q.weight": torch.ones(8, 8),
        PREFIX + "transformer_blocks.0.attention_blocks.1.to_out.0.bias": torch.ones(8),
        PREFIX + "transformer_blocks.0.attention_blocks.0.pos_encoder.pe": pe,
        PREFIX + "transformer_blocks.0.attention_blocks.1.pos_encoder.pe": pe.clone(),
        PREFIX + "transformer_blocks.0.norms.0.weight": torch.ones(8),
        PREFIX + "transformer_blocks.0.norms.1.bias": torch.ones(8),
        PREFIX + "transformer_blocks.0.ff_norm.weight": torch.ones(8),
        PREFIX + "transformer_blocks.0.ff.net.2.weight": torch.ones(8, 32),
        "up_blocks.1.attentions.0.transformer_blocks.0.norm1.weight": torch.ones(8),
        "conv_in.weight": torch.ones(1),
    }
    out = champ_to_m2p_keys(champ)
    mm = "up_blocks.1.motion_modules.2."
    assert sorted(out) == sorted([
        mm + "norm.weight", mm + "transformer_blocks.0.attn1.to_q.weight", mm + "transformer_blocks.0.attn2.to_out.0.bias",
        mm + "transformer_blocks.0.pos_embed.pe", mm + "transformer_blocks.0.norm1.weight",
        mm + "transformer_blocks.0.norm2.bias", mm + "transformer_blocks.0.norm3.weight",
        mm + "transformer_blocks.0.ff.net.2.weight",
        "up_blocks.1.attentions.0.transformer_blocks.0.norm1.weight", "conv_in.weight",
    ])
    assert out[mm + "transformer_blocks.0.pos_embed.pe"] is pe


def test_differing_duplicate_position_table_is_an_error():
    champ = {
        "temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe": torch.zeros(1, 4, 8),
        "temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe": torch.ones(1, 4, 8),
    }
    with pytest.raises(WeightsMismatchError, match="mm.pth"):
        champ_to_m2p_keys(champ, "mm.pth")


def test_champ_position_table_equals_diffusers_buffer():
    module = MotionModule(MotionModuleConfig.preset("tiny"))
    c = module.m2p_config.channels
    pos = torch.arange(32).unsqueeze(1)
    div = torch.exp(torch.arange(0, c, 2) * (-torch.log(torch.tensor(10000.0)) / c))
    champ_pe = torch.zeros(1, 32, c)
    champ_pe[0, :, 0::2], champ_pe[0, :, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    assert torch.allclose(module.transformer_blocks[0].pos_embed.pe, champ_pe)


def test_frame_group_norm_normalises_each_frame_alone():
    norm = FrameGroupNorm(4, 8)
    x = torch.randn(2, 8, 5, 3, 3) * torch.arange(1, 6).view(1, 1, 5, 1, 1) + torch.arange(5).view(1, 1, 5, 1, 1)
    per_frame = torch.stack([torch.nn.functional.group_norm(x[:, :, i], 4, eps=norm.eps) for i in range(5)], dim=2)
    assert torch.allclose(norm(x), per_frame, atol=1e-5)
    assert not torch.allclose(torch.nn.GroupNorm(4, 8)(x), per_frame, atol=1e-2)
