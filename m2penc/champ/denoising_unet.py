"""Champ's denoising 3-D U-Net on top of diffusers' ``UNetMotionModel``.

Frames are folded into the batch (``(B F) C h w``) for every 2-D op, exactly like Champ's
"inflated" convolutions and GroupNorms. What Champ adds and diffusers lacks is handled here:

* ``guidance_fea`` ``(B, C0, F, h, w)`` is added right after ``conv_in`` (the pose / music hook);
* spatial self-attention reads the ReferenceNet bank (:mod:`.reference_attention`);
* motion modules normalise per frame (:mod:`.motion_norm`).

State-dict keys: the spatial keys equal Champ's ``denoising_unet.pth`` (= SD-1.5 U-Net keys);
the motion keys are diffusers' ``MotionAdapter`` names (Champ's ``motion_module.pth`` goes through
:func:`.keymap.champ_to_m2p_keys`).
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from diffusers import UNetMotionModel

from ..errors import InputError
from .config import DenoisingUNetConfig
from .motion_norm import use_frame_group_norm
from .reference_attention import ReferenceContext, install_reference_processors
from .video_layout import batch_to_frames, frames_to_batch


class DenoisingUNet3D(UNetMotionModel):
    """SD-1.5 U-Net + AnimateDiff motion modules + guidance features + reference attention."""

    def __init__(self, config: DenoisingUNetConfig) -> None:
        super().__init__(**config.motion_diffusers_kwargs())
        self.m2p_config = config
        use_frame_group_norm(self)
        install_reference_processors(self)

    def _time_embedding(self, timestep: Union[torch.Tensor, int], batch: int, device: torch.device) -> torch.Tensor:
        """Sinusoidal timestep -> MLP embedding ``(batch, 4 * C0)``."""
        t = torch.as_tensor(timestep, device=device).reshape(-1).expand(batch)
        return self.time_embedding(self.time_proj(t).to(self.dtype))

    def forward(
        self,
        sample: torch.Tensor,
        timestep: Union[torch.Tensor, int],
        encoder_hidden_states: torch.Tensor,
        guidance_fea: Optional[torch.Tensor] = None,
        reference: ReferenceContext = None,
    ) -> torch.Tensor:
        """Predict the model output (v-prediction for Champ).

        Args:
            sample: noisy latents ``(B, 4, F, h, w)``, ``F <= motion_max_seq_length``.
            timestep: scalar or ``(1,)``/``(B,)`` diffusion timestep.
            encoder_hidden_states: CLIP image embeddings ``(B, 1, D)`` (zeros for unconditional).
            guidance_fea: ``(B, C0, F, h, w)`` added after ``conv_in``; ``None`` adds nothing.
            reference: :class:`.reference_attention.ReferenceRead` (bank + per-batch flags);
                ``None`` = plain self-attention everywhere (a ``ReferenceWrite`` records the
                attention inputs instead, which benchmarks use to make a bank of the right shapes).

        Returns:
            ``(B, 4, F, h, w)`` in the model dtype.
        """
        b, _, f, _, _ = sample.shape
        if f > self.m2p_config.motion_max_seq_length:
            raise InputError(
                f"the motion modules see at most {self.m2p_config.motion_max_seq_length} frames per pass, got {f}; "
                "use context windows for longer clips"
            )
        emb = self._time_embedding(timestep, b, sample.device).repeat_interleave(f, dim=0)
        context = encoder_hidden_states.to(self.dtype).repeat_interleave(f, dim=0)
        attn_kwargs = {"reference": reference}

        x = self.conv_in(frames_to_batch(sample.to(self.dtype)))
        if guidance_fea is not None:
            x = x + frames_to_batch(guidance_fea.to(self.dtype))

        skips: tuple[torch.Tensor, ...] = (x,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                x, res = block(hidden_states=x, temb=emb, encoder_hidden_states=context, num_frames=f,
                               cross_attention_kwargs=attn_kwargs)
            else:
                x, res = block(hidden_states=x, temb=emb, num_frames=f)
            skips += res

        x = self.mid_block(x, emb, encoder_hidden_states=context, num_frames=f, cross_attention_kwargs=attn_kwargs)

        for i, block in enumerate(self.up_blocks):
            res, skips = skips[-len(block.resnets):], skips[: -len(block.resnets)]
            size = skips[-1].shape[2:] if i < len(self.up_blocks) - 1 else None
            if getattr(block, "has_cross_attention", False):
                x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res, encoder_hidden_states=context,
                          upsample_size=size, num_frames=f, cross_attention_kwargs=attn_kwargs)
            else:
                x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res, upsample_size=size, num_frames=f)

        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return batch_to_frames(x, b)
