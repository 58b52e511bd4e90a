"""Stage 3 of the paper (sec. 3.4, 4.1): motion modules and M2PEnc trained jointly on video clips.

``L_total = pix_weight * L_pix + guid_weight * L_guid`` (paper: 0.5 / 0.5,
:data:`~..m2penc.encoder.losses.STAGE3_PIXEL_WEIGHT`) on clips of F frames (paper: 24):

* ``L_guid``: :func:`~..m2penc.encoder.losses.guidance_loss` (L1, the paper's mean ``|f - f_hat|``
  over H W C_guid, here also over frames and batch) between M2PEnc's guidance of the clip's music
  features and Champ's pose guidance of the clip (stored, or encoded from the stored maps by
  ``guidance_targets``, Champ's frozen encoders);
* ``L_pix``: :func:`.diffusion_loss.diffusion_loss` of the 3-D U-Net (motion modules on) on the
  clip's latents ``(B, 4, F, h, w)``, guided by M2PEnc's guidance **with gradient**: ``L_pix``
  trains M2PEnc through the guidance path too (the point of joint training), not only the motion
  modules.

Trained: every motion-module parameter of the denoising U-Net, and M2PEnc except its heatmap head
(the stage-3 loss has no heatmap term, so the head gets no gradient; it keeps its stage-1 weights).
Frozen, in eval mode: the ReferenceNet (its bank is written without gradients), the spatial
U-Net, the VAE, the CLIP image encoder, and the guidance encoders. Condition dropout as in stage 2
(:class:`.stage2.ChampStageModule`; Champ's ``train_s2`` keeps ``uncond_ratio`` 0.1).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from einops import rearrange

from ..m2penc.champ.denoising_unet import is_motion_parameter
from ..m2penc.champ.models import ChampModels
from ..m2penc.champ.reference import encode_image_latents
from ..m2penc.encoder.guidance import resize_guidance
from ..m2penc.encoder.losses import STAGE3_GUIDANCE_WEIGHT, STAGE3_PIXEL_WEIGHT, guidance_loss
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.errors import InputError
from .diffusion_loss import Draws, diffusion_loss
from .champ_module import CHAMP_COND_DROP, Batch, ChampStageModule, unit_images

#: ``maps (B, F, 4, S, S, 3)`` uint8 -> guidance ``(B, F, C, S/8, S/8)``
#: (e.g. :class:`.guidance_targets.GuidanceTargets`).
GuidanceTargetFn = Callable[[torch.Tensor], torch.Tensor]


class Stage3Module(ChampStageModule):
    """Paper stage 3: motion modules + M2PEnc, ``pix_weight * L_pix + guid_weight * L_guid``.

    Batch (see :class:`.video_data.Stage3Clips`):
        ``reference (B, 3, H, W)`` and ``frames (B, F, 3, H, W)``: float in [0, 1];
        ``features (B, F, D)``: the clip's music features;
        the guidance target: ``guidance (B, F, C, G, G)`` float, or ``maps (B, F, 4, S, S, 3)``
        uint8 (Champ's guidance-type order) turned into guidance by ``guidance_targets``.

    Args:
        guidance_targets: maps -> guidance (the engine passes
            :class:`.guidance_targets.GuidanceTargets`; it is not a submodule: move it yourself).
        pix_weight, guid_weight: loss weights (paper: 0.5 and 0.5).
        cond_drop, noise_offset, snr_gamma, bank_dtype: see :class:`.stage2.ChampStageModule`.

    ``forward(batch)`` returns ``{"loss", "l_pix", "l_guid", "timestep", "kept"}``.
    """

    def __init__(self, champ: ChampModels, m2penc: M2PEnc, guidance_targets: Optional[GuidanceTargetFn] = None,
                 pix_weight: float = STAGE3_PIXEL_WEIGHT, guid_weight: float = STAGE3_GUIDANCE_WEIGHT,
                 cond_drop: float = CHAMP_COND_DROP, noise_offset: float = 0.0, snr_gamma: Optional[float] = None,
                 bank_dtype: torch.dtype = torch.float32) -> None:
        super().__init__(champ, m2penc, cond_drop, noise_offset, snr_gamma, bank_dtype)
        if pix_weight < 0 or guid_weight < 0 or pix_weight + guid_weight == 0:
            raise InputError(f"pix_weight and guid_weight must be >= 0 and not both 0, got {pix_weight}, {guid_weight}")
        channels = getattr(guidance_targets, "channels", None)
        if channels is not None and channels != m2penc.config.guidance_channels:
            raise InputError(f"the guidance encoders output {channels} channels but M2PEnc predicts "
                             f"{m2penc.config.guidance_channels}; use the Champ encoders the model is for")
        self.guidance_targets = guidance_targets
        self.pix_weight, self.guid_weight = float(pix_weight), float(guid_weight)
        self._finish_init()

    def is_trainable(self, name: str) -> bool:
        """Motion modules of the denoising U-Net, and M2PEnc without its heatmap head."""
        if name.startswith("denoising_unet."):
            return is_motion_parameter(name)
        return name.startswith("m2penc.") and not name.startswith("m2penc.heatmap_head.")

    def guidance_target(self, batch: Batch, frames: int) -> torch.Tensor:
        """The clip's pose guidance ``(B, C, F, G, G)`` float32 on the models' device (no gradient)."""
        if "guidance" in batch:
            target = batch["guidance"]
        elif "maps" in batch:
            if self.guidance_targets is None:
                raise InputError("this batch holds guidance maps, which Champ's guidance encoders turn into the "
                                 "L_guid target: pass guidance_targets (training.guidance_targets.GuidanceTargets)")
            target = self.guidance_targets(batch["maps"])
        else:
            raise InputError(f"the batch needs the guidance target: 'guidance' (B, F, C, G, G) or 'maps' "
                             f"(B, F, 4, S, S, 3); it has {sorted(batch)}")
        if target.ndim != 5 or target.shape[1] != frames:
            raise InputError(f"the guidance target must be (B, {frames}, C, G, G), got {tuple(target.shape)}")
        return rearrange(target, "b f c h w -> b c f h w").to(self.device, torch.float32)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One loss evaluation; see the class docstring for the batch and the result."""
        reference = unit_images(batch, "reference", 4)
        frames = unit_images(batch, "frames", 5)
        b, f, _, height, width = frames.shape
        features = self.m2penc_features(batch, f)
        target = self.guidance_target(batch, f)
        if reference.shape[0] != b or features.shape[0] != b or target.shape[0] != b:
            raise InputError(f"reference {tuple(reference.shape)}, frames {tuple(frames.shape)}, features "
                             f"{tuple(features.shape)} and the guidance target must have the same batch size")
        with torch.no_grad():
            latents = encode_image_latents(self._champ, frames.flatten(0, 1)).float()
            latents = rearrange(latents, "(b f) c h w -> b c f h w", b=b)                  # (B, 4, F, h, w)
        draws = Draws(batch.get("seed"), latents.device)
        embeds, context, kept, _ = self.condition(reference, track_grad=False, draws=draws)
        guidance = self.m2penc(features).guidance                                         # (B, C, F, G, G)
        if guidance.shape[:3] != target.shape[:3]:
            raise InputError(f"M2PEnc predicts guidance {tuple(guidance.shape)} but the target is "
                             f"{tuple(target.shape)}: the channels must be those of Champ's guidance encoders")
        # maps of another size than 8 x M2PEnc's grid (the paper's 640 px: an 80-grid target) are compared on
        # M2PEnc's grid, bilinearly resampled with antialiasing (inference resamples M2PEnc's guidance to the
        # latent grid the other way)
        target = resize_guidance(target, tuple(guidance.shape[-2:]), antialias=True)
        l_guid = guidance_loss(guidance.float(), target)
        guidance_fea = self.guidance_fea(guidance, height, width)

        def unet_call(noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
            return self.denoising_unet(noisy, timesteps, embeds, guidance_fea, reference=context)

        l_pix, parts = diffusion_loss(unet_call, latents, self.scheduler, self.noise_offset, self.snr_gamma, draws)
        loss = self.pix_weight * l_pix + self.guid_weight * l_guid
        return {"loss": loss, **parts, "l_guid": l_guid.detach(), "kept": kept.float().mean()}
