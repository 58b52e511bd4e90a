"""Champ's denoising 3-D U-Net on top of diffusers' ``UNetMotionModel``.

Frames are folded into the batch (``(B F) C h w``) for every 2-D op, exactly like Champ's
"inflated" convolutions and GroupNorms. What Champ adds and diffusers lacks is handled here:

* ``guidance_fea`` ``(B, C0, F, h, w)`` is added right after ``conv_in`` (the pose / music hook);
* spatial self-attention reads the ReferenceNet bank (:mod:`.reference_attention`);
* motion modules normalise per frame (:mod:`.motion_norm`);
* the motion modules can be skipped (``forward(..., motion_modules=False)``): the spatial-only
  U-Net of Champ's image stage (``train_s1`` builds it with ``use_motion_module=False``; a
  motion module is a residual block, so skipping it is exactly that network).

State-dict keys: the spatial keys equal Champ's ``denoising_unet.pth`` (= SD-1.5 U-Net keys);
the motion keys are diffusers' ``MotionAdapter`` names (Champ's ``motion_module.pth`` goes through
:func:`.keymap.champ_to_m2p_keys`).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator, Optional, Union

import torch
from torch.utils.checkpoint import checkpoint
from diffusers import UNetMotionModel
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

from ..errors import InputError
from .config import DenoisingUNetConfig
from .motion_norm import use_frame_group_norm
from .reference_attention import ReferenceContext, install_reference_processors
from .video_layout import batch_to_frames, frames_to_batch


#: Path component of every motion-module parameter (diffusers' and Champ's names alike).
MOTION_MODULES = "motion_modules"


def is_motion_parameter(name: str) -> bool:
    """True for a parameter/buffer name of a motion module (e.g. ``down_blocks.0.motion_modules.0.proj_in.weight``)."""
    return MOTION_MODULES in name.split(".")


class SwitchableMotion(AnimateDiffTransformer3D):
    """diffusers' motion module with an off switch: switched off it returns its input unchanged.

    :class:`DenoisingUNet3D` re-types its motion modules to this class (same state, same keys);
    the switch is set by every U-Net forward (``motion_modules=``). With ``m2p_checkpointing`` its
    activations are recomputed in the backward pass (diffusers' gradient-checkpointing switch
    covers the blocks' resnets and attentions, not the motion modules, which hold most of a
    24-frame clip's activations).
    """

    m2p_enabled: bool = True
    m2p_checkpointing: bool = False

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """``hidden_states`` ``(B F, C, h, w)``; the motion module's output, or the input itself when off."""
        if not self.m2p_enabled:
            return hidden_states
        if self.m2p_checkpointing and torch.is_grad_enabled():
            return checkpoint(partial(AnimateDiffTransformer3D.forward, self), hidden_states, *args,
                              use_reentrant=False, **kwargs)
        return super().forward(hidden_states, *args, **kwargs)


def _make_switchable(unet: torch.nn.Module) -> None:
    for module in unet.modules():
        if type(module) is AnimateDiffTransformer3D:
            module.__class__ = SwitchableMotion


class DenoisingUNet3D(UNetMotionModel):
    """SD-1.5 U-Net + AnimateDiff motion modules + guidance features + reference attention."""

    def __init__(self, config: DenoisingUNetConfig) -> None:
        super().__init__(**config.motion_diffusers_kwargs())
        self.m2p_config = config
        use_frame_group_norm(self)
        install_reference_processors(self)
        _make_switchable(self)

    def motion_module_list(self) -> Iterator[SwitchableMotion]:
        """Every motion module (down, mid, up), in registration order."""
        return (m for m in self.modules() if isinstance(m, SwitchableMotion))

    def enable_motion_checkpointing(self, enabled: bool = True) -> None:
        """Recompute every motion module's activations in the backward pass (same values, less memory)."""
        for module in self.motion_module_list():
            module.m2p_checkpointing = enabled

    def _switch_motion(self, enabled: bool) -> None:
        for module in self.motion_module_list():
            module.m2p_enabled = enabled

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
        motion_modules: bool = True,
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
            motion_modules: ``False`` skips every motion module (the per-frame U-Net of the image
                training stage). The switch stays as the latest call set it, so a gradient-
                checkpointing recomputation in that call's backward runs the same network.

        Returns:
            ``(B, 4, F, h, w)`` in the model dtype.
        """
        b, _, f, _, _ = sample.shape
        if f > self.m2p_config.motion_max_seq_length:
            raise InputError(
                f"the motion modules see at most {self.m2p_config.motion_max_seq_length} frames per pass, got {f}; "
                "use context windows for longer clips"
            )
        self._switch_motion(motion_modules)
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
