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

**Champ's image stage** (``guidance_encoders`` given; ``Stage2Config.guidance = "maps"``): the same step guided
by the target frame's rendered maps instead of M2PEnc: Champ's four guidance encoders turn the batch's ``maps``
into ``guidance_fea`` (:func:`.guidance_targets.encode_maps`) and are trained with both U-Nets, as Champ's
``train_s1`` trains them (its ``conv_out`` zero-initialised at the start). No M2PEnc is involved. This is how the
Champ weights the paper starts from were made; the demo recipe runs it because no trained Champ exists at its
sizes, then teaches M2PEnc the encoders it trained (stage 1) and trains stage 3 on top.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from ..m2penc.champ.denoising_unet import is_motion_parameter
from ..m2penc.champ.guidance_encoder import GuidanceEncoder
from ..m2penc.champ.models import ChampModels
from ..m2penc.champ.reference import encode_image_latents
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.errors import InputError
from .champ_module import CHAMP_COND_DROP, Batch, ChampStageModule, inert_with_one_token, unit_images
from .diffusion_loss import Draws, diffusion_loss
from .guidance_targets import MAP_ORDER, encode_maps


class Stage2Module(ChampStageModule):
    """Paper stage 2: the spatial denoising U-Net + ReferenceNet on single frames; M2PEnc frozen.

    Batch (see :class:`.video_data.Stage2Pairs`):
        ``reference (B, 3, H, W)``, ``target (B, 3, H, W)``: float in [0, 1];
        ``features (B, L, D)``: the music-feature window the target frame lies in;
        ``frame (B,)`` long: the target's index in that window.

    With ``guidance_encoders`` (Champ's image stage, module docstring) the batch also holds ``maps (B, 4, S, S, 3)``
    uint8, the target frame's maps in Champ's guidance-type order, and ``m2penc`` may be ``None``.

    ``forward(batch)`` returns ``{"loss", "l_pix", "timestep", "kept"}`` (``kept``: share of
    samples trained with their condition); ``loss`` is a float32 scalar. Other arguments: see
    :class:`ChampStageModule`.
    """

    def __init__(self, champ: ChampModels, m2penc: Optional[M2PEnc], cond_drop: float = CHAMP_COND_DROP,
                 noise_offset: float = 0.0, snr_gamma: Optional[float] = None,
                 bank_dtype: torch.dtype = torch.float32,
                 guidance_encoders: Optional[Mapping[str, GuidanceEncoder]] = None) -> None:
        super().__init__(champ, m2penc, cond_drop, noise_offset, snr_gamma, bank_dtype)
        if guidance_encoders is None and m2penc is None:
            raise InputError("stage 2 is guided by M2PEnc or, in Champ's image stage, by guidance encoders on the "
                             "rendered maps: pass one of them")
        if guidance_encoders is not None:
            missing = [t for t in MAP_ORDER if t not in guidance_encoders]
            if missing:
                raise InputError(f"Champ's image stage needs the guidance encoders {list(MAP_ORDER)}; missing {missing}")
            width = champ.denoising_unet.m2p_config.block_out_channels[0]
            channels = {int(e.m2p_config.embedding_channels) for e in guidance_encoders.values()}
            if channels != {width}:
                raise InputError(f"the guidance encoders output {sorted(channels)} channels but Champ's U-Net adds "
                                 f"{width} after conv_in")
            self.guidance_encoders = nn.ModuleDict({t: guidance_encoders[t] for t in MAP_ORDER})
        else:
            self.guidance_encoders = None
        self._reference_top = f"reference_unet.up_blocks.{len(self.reference_unet.up_blocks) - 1}."
        self._finish_init()

    def is_trainable(self, name: str) -> bool:
        """Denoising U-Net minus motion modules; ReferenceNet minus its last up block (Champ's ``train_s1``);
        neither U-Net's :func:`inert_with_one_token` parameters; in the image stage also the guidance encoders
        (only the parts their forward uses: Champ's unused ``attentions[0..-2]`` and ``guidance_attention``
        get no gradient)."""
        if name.startswith("guidance_encoders."):
            return self._encoder_used(name)
        if inert_with_one_token(name):
            return False
        if name.startswith("denoising_unet."):
            return not is_motion_parameter(name)
        return name.startswith("reference_unet.") and not name.startswith(self._reference_top)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One loss evaluation; see the class docstring for the batch and the result."""
        reference = unit_images(batch, "reference", 4)
        target = unit_images(batch, "target", 4)
        b, _, height, width = target.shape
        if reference.shape[0] != b:
            raise InputError(f"reference {tuple(reference.shape)} and target {tuple(target.shape)} must have the same "
                             "batch size")
        if self.guidance_encoders is not None:
            guidance_fea = self._maps_guidance(batch, b, height, width)
        else:
            guidance_fea = self._m2penc_guidance(batch, b, height, width)
        with torch.no_grad():
            latents = encode_image_latents(self._champ, target).float().unsqueeze(2)          # (B, 4, 1, h, w)
        draws = Draws(batch.get("seed"), latents.device)
        embeds, context, kept, tie = self.condition(reference, track_grad=True, draws=draws)

        def unet_call(noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
            return self.denoising_unet(noisy, timesteps, embeds, guidance_fea, reference=context,
                                       motion_modules=False)

        loss, parts = diffusion_loss(unet_call, latents, self.scheduler, self.noise_offset, self.snr_gamma, draws)
        return {"loss": loss + tie, **parts, "kept": kept.float().mean()}

    def _encoder_used(self, name: str) -> bool:
        """Whether guidance-encoder parameter ``name`` takes part in the encoder's forward."""
        unused = tuple(f".attentions.{i}." for i in range(len(next(iter(self.guidance_encoders.values())).attentions) - 1))
        return not any(part in name for part in unused) and ".guidance_attention." not in name

    def _maps_guidance(self, batch: Batch, b: int, height: int, width: int) -> torch.Tensor:
        """The image stage's ``guidance_fea`` ``(B, C, 1, h, w)``: the trained encoders on the batch's maps."""
        maps = batch.get("maps")
        if maps is None or maps.shape != (b, len(MAP_ORDER), height, width, 3) or maps.dtype != torch.uint8:
            got = None if maps is None else (maps.dtype, tuple(maps.shape))
            raise InputError(f"Champ's image stage needs the target's maps, uint8 ({b}, {len(MAP_ORDER)}, {height}, "
                             f"{width}, 3), got {got}; serve them with Stage2Pairs(..., maps=True)")
        guidance = encode_maps(self.guidance_encoders, maps.to(self.device).unsqueeze(1))      # (B, 1, C, G, G)
        return self.guidance_fea(guidance.transpose(1, 2), height, width)

    def _m2penc_guidance(self, batch: Batch, b: int, height: int, width: int) -> torch.Tensor:
        """The paper's ``guidance_fea`` ``(B, C, 1, h, w)``: frozen M2PEnc's guidance of the window at the target."""
        features = self.m2penc_features(batch)
        if features.shape[0] != b:
            raise InputError(f"features {tuple(features.shape)} and target must have the same batch size {b}")
        frame = batch.get("frame")
        if frame is None or frame.shape != (b,) or frame.is_floating_point():
            raise InputError(f"frame must be the target's index in its feature window, (B,) = ({b},) integers, "
                             f"got {None if frame is None else (frame.dtype, tuple(frame.shape))}")
        frame = frame.to(features.device).long()
        if frame.min() < 0 or frame.max() >= features.shape[1]:
            raise InputError(f"frame indices must lie in the {features.shape[1]}-frame feature window, got "
                             f"{frame.tolist()}")
        with torch.no_grad():
            guidance = self.m2penc(features).guidance                                          # (B, C, L, G, G)
            guidance = guidance[torch.arange(b, device=guidance.device), :, frame].unsqueeze(2)  # (B, C, 1, G, G)
            return self.guidance_fea(guidance, height, width)
