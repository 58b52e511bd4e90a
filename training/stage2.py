"""Stage 2 of the paper (sec. 3.4, 4.1): per-frame training of the denoising U-Net and the ReferenceNet.

Trained: the denoising U-Net's spatial layers (its motion modules are excluded and not run: the
U-Net is Champ's image-stage network, ``train_s1``'s ``use_motion_module=False``) and the
ReferenceNet, both initialised from Champ's weights. Frozen: M2PEnc, which provides the pose
guidance from the music features, the VAE and the CLIP image encoder. The loss is
:func:`.diffusion_loss.diffusion_loss` (Champ's v-prediction MSE; how it relates to the paper's
"pixel-wise MSE" is in that module).

One training sample is a (reference frame, target frame) pair of one clip plus the window of music
features the target lies in (:class:`.video_data.Stage2Pairs`). Per batch, in :meth:`Stage2Module.forward`:

1. without gradients: VAE latents of the target and the reference (the core's
   :func:`~..m2penc.champ.reference.encode_image_latents`: ``[0, 1] -> [-1, 1]``, distribution
   mean x 0.18215; Champ samples the distribution instead, a ~1e-2-scale jitter), CLIP image
   embeddings of the reference, M2PEnc's guidance of the window at the target's frame resized to
   the latent grid (:func:`~..m2penc.encoder.guidance.to_guidance_fea`);
2. condition dropout (Champ's ``uncond_fwd``, ``uncond_ratio`` 0.1): a dropped sample gets zero CLIP
   embeddings and no reference tokens (plain self-attention; its bank entry is not read),
   exactly the unconditional branch of classifier-free guidance at inference
   (:func:`~..m2penc.champ.sampler.predict_noise_branches`). Decided **per sample** (Champ draws
   one coin per batch). NB Champ's training zeroes the CLIP *input pixels* (so its "unconditional"
   embedding is CLIP of a mean-grey image) while its inference uses zero *embeddings*; we train
   what inference uses;
3. the ReferenceNet writes its bank from the kept references' latents at timestep 0 (as at
   inference, :mod:`~..m2penc.champ.reference`), keeping the graph so the loss trains it; the bank
   is kept in ``bank_dtype``: float32 by default (Champ casts it to float16, which it can afford
   because it trains in fp16 with loss scaling; without that, the ReferenceNet's gradients through
   an fp16 bank underflow);
4. the denoising U-Net predicts v for the noisy target latents ``(B, 4, 1, h, w)`` (F = 1).

Trainable parameters follow Champ's ``train_s1``: every denoising U-Net parameter except the motion
modules, every ReferenceNet parameter except its last up block (``up_blocks.3`` in SD-1.5: the
ReferenceNet's output is discarded, Champ freezes that block). Also left out, in both U-Nets: the
spatial cross-attention's ``norm2``, ``attn2.to_q`` and ``attn2.to_k`` (:func:`inert_with_one_token`).
The CLIP context is a single token, so the attention weights are softmax over one key, always 1;
these parameters cannot change the output and their gradient is zero (up to rounding). Champ keeps
them in the optimizer, where only weight decay moves them.

Randomness (condition dropout, noise, timesteps) comes, in that order, from each sample's own
generator when the batch carries per-sample ``seed`` s (the engine's data: N processes then train
exactly what one does), else from torch's global RNG on the models' device (:class:`.diffusion_loss.Draws`).
Shared with stage 3: :class:`.champ_module.ChampStageModule` (model registration, freezing, eval mode of
frozen parts, the conditioning, FSDP units).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..m2penc.champ.denoising_unet import is_motion_parameter
from ..m2penc.champ.models import ChampModels
from ..m2penc.champ.reference import encode_image_latents
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.errors import InputError
from .champ_module import CHAMP_COND_DROP, Batch, ChampStageModule, inert_with_one_token, unit_images
from .diffusion_loss import Draws, diffusion_loss


class Stage2Module(ChampStageModule):
    """Paper stage 2: the spatial denoising U-Net + ReferenceNet on single frames; M2PEnc frozen.

    Batch (see :class:`.video_data.Stage2Pairs`):
        ``reference (B, 3, H, W)``, ``target (B, 3, H, W)``: float in [0, 1];
        ``features (B, L, D)``: the music-feature window the target frame lies in;
        ``frame (B,)`` long: the target's index in that window.

    ``forward(batch)`` returns ``{"loss", "l_pix", "timestep", "kept"}`` (``kept``: share of
    samples trained with their condition); ``loss`` is a float32 scalar. Other arguments: see
    :class:`ChampStageModule`.
    """

    def __init__(self, champ: ChampModels, m2penc: M2PEnc, cond_drop: float = CHAMP_COND_DROP,
                 noise_offset: float = 0.0, snr_gamma: Optional[float] = None,
                 bank_dtype: torch.dtype = torch.float32) -> None:
        super().__init__(champ, m2penc, cond_drop, noise_offset, snr_gamma, bank_dtype)
        self._reference_top = f"reference_unet.up_blocks.{len(self.reference_unet.up_blocks) - 1}."
        self._finish_init()

    def is_trainable(self, name: str) -> bool:
        """Denoising U-Net minus motion modules; ReferenceNet minus its last up block (Champ's ``train_s1``);
        neither U-Net's :func:`inert_with_one_token` parameters."""
        if inert_with_one_token(name):
            return False
        if name.startswith("denoising_unet."):
            return not is_motion_parameter(name)
        return name.startswith("reference_unet.") and not name.startswith(self._reference_top)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One loss evaluation; see the class docstring for the batch and the result."""
        reference = unit_images(batch, "reference", 4)
        target = unit_images(batch, "target", 4)
        features = self.m2penc_features(batch)
        frame = batch.get("frame")
        b, _, height, width = target.shape
        if reference.shape[0] != b or features.shape[0] != b:
            raise InputError(f"reference {tuple(reference.shape)}, target {tuple(target.shape)} and features "
                             f"{tuple(features.shape)} must have the same batch size")
        if frame is None or frame.shape != (b,) or frame.is_floating_point():
            raise InputError(f"frame must be the target's index in its feature window, (B,) = ({b},) integers, "
                             f"got {None if frame is None else (frame.dtype, tuple(frame.shape))}")
        frame = frame.to(features.device).long()
        if frame.min() < 0 or frame.max() >= features.shape[1]:
            raise InputError(f"frame indices must lie in the {features.shape[1]}-frame feature window, got "
                             f"{frame.tolist()}")
        with torch.no_grad():
            latents = encode_image_latents(self._champ, target).float().unsqueeze(2)          # (B, 4, 1, h, w)
            guidance = self.m2penc(features).guidance                                          # (B, C, L, G, G)
            guidance = guidance[torch.arange(b, device=guidance.device), :, frame].unsqueeze(2)  # (B, C, 1, G, G)
            guidance_fea = self.guidance_fea(guidance, height, width)
        draws = Draws(batch.get("seed"), latents.device)
        embeds, context, kept, tie = self.condition(reference, track_grad=True, draws=draws)

        def unet_call(noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
            return self.denoising_unet(noisy, timesteps, embeds, guidance_fea, reference=context,
                                       motion_modules=False)

        loss, parts = diffusion_loss(unet_call, latents, self.scheduler, self.noise_offset, self.snr_gamma, draws)
        return {"loss": loss + tie, **parts, "kept": kept.float().mean()}
