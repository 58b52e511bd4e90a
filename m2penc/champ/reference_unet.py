"""The ReferenceNet: an SD-1.5 ``UNet2DConditionModel`` that only fills the reference bank.

Champ removed the output head (``conv_norm_out``, ``conv_out``) from its reference U-Net: its
output is discarded, only the self-attention inputs written during the pass matter. We keep
diffusers' class (so the state-dict keys are Champ's: SD-1.5 keys minus those four) and drop the
head the same way.
"""
from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from .config import UNetConfig
from .reference_attention import ReferenceWrite, install_reference_processors


class ReferenceUNet(UNet2DConditionModel):
    """SD-1.5 U-Net without output head, with bank-writing self-attention processors."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__(**config.diffusers_kwargs())
        self.m2p_config = config
        self.conv_norm_out = None
        self.conv_out = nn.Identity()
        install_reference_processors(self)

    def write_bank(
        self,
        ref_latents: torch.Tensor,
        image_embeds: torch.Tensor,
        bank_dtype: torch.dtype = torch.float16,
        track_grad: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Run once at timestep 0 and return the bank.

        Args:
            ref_latents: ``(B, 4, h, w)`` scaled VAE latents of the reference image(s)
                (inference: B = 1).
            image_embeds: ``(B, 1, D)`` CLIP image embeddings.
            bank_dtype: dtype the bank is stored in (Champ: float16).
            track_grad: keep the autograd graph (training the ReferenceNet through the
                denoiser's loss); default: run without gradients, bank detached.

        Returns:
            block path -> ``(B, h_l * w_l, C_l)`` reference tokens, one per spatial block.
        """
        writer = ReferenceWrite(dtype=bank_dtype, detach=not track_grad)
        timestep = torch.zeros(ref_latents.shape[0], dtype=torch.long, device=ref_latents.device)
        with torch.set_grad_enabled(track_grad and torch.is_grad_enabled()):
            self(
                ref_latents.to(self.dtype),
                timestep,
                encoder_hidden_states=image_embeds.to(self.dtype),
                cross_attention_kwargs={"reference": writer},
                return_dict=False,
            )
        writer.closed = True            # a checkpointed block recomputed in the backward pass writes nothing
        return writer.bank
