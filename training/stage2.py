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
   embeddings and no reference tokens (plain self-attention; the ReferenceNet is not run for it),
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
Shared with stage 3: :class:`ChampStageModule` (model registration, freezing, eval mode of frozen parts,
the conditioning).
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from ..m2penc.champ.denoising_unet import is_motion_parameter
from ..m2penc.champ.models import ChampModels
from ..m2penc.champ.reference import encode_clip_image, encode_image_latents
from ..m2penc.champ.reference_attention import ReferenceContext, ReferenceRead
from ..m2penc.encoder.guidance import to_guidance_fea
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.errors import InputError
from .diffusion_loss import Draws, diffusion_loss, make_train_scheduler

#: Champ's ``uncond_ratio``: the share of training samples without reference / CLIP condition.
CHAMP_COND_DROP = 0.1
Batch = Mapping[str, torch.Tensor]


#: Spatial cross-attention parts that a one-token context makes irrelevant (see the module docstring).
_ONE_TOKEN_INERT = (".norm2.", ".attn2.to_q.", ".attn2.to_k.")


def inert_with_one_token(name: str) -> bool:
    """True for a spatial cross-attention parameter without effect when the context is one token (CLIP's)."""
    return (".attentions." in name and ".transformer_blocks." in name and not is_motion_parameter(name)
            and any(part in name for part in _ONE_TOKEN_INERT))


def unit_images(batch: Batch, name: str, ndim: int) -> torch.Tensor:
    """``batch[name]``: float images in [0, 1] with channels at dim ``ndim - 3`` (3 of them), ``ndim`` dims."""
    if name not in batch:
        raise InputError(f"the batch has no {name!r}; it has {sorted(batch)}")
    images = batch[name]
    layout = "(B, 3, H, W)" if ndim == 4 else "(B, F, 3, H, W)"
    if images.ndim != ndim or images.shape[-3] != 3 or not images.is_floating_point():
        raise InputError(f"{name} must be float images {layout} in [0, 1], got {images.dtype} {tuple(images.shape)}")
    if images.shape[-2] % 8 or images.shape[-1] % 8:
        raise InputError(f"{name} must be multiples of 8 pixels (the VAE downsamples by 8), got "
                         f"{images.shape[-1]}x{images.shape[-2]}; crop or resize the video")
    low, high = torch.aminmax(images)
    if low < 0 or high > 1:
        raise InputError(f"{name} must be in [0, 1] (ComfyUI/PIL convention), got [{float(low):.3g}, "
                         f"{float(high):.3g}]; divide uint8 frames by 255")
    return images


class ChampStageModule(nn.Module):
    """Champ's networks + M2PEnc as one module for stages 2 and 3; subclasses say what trains.

    Registered submodules (prefixes of the parameter names): ``reference_unet``,
    ``denoising_unet``, ``vae``, ``image_encoder``, ``m2penc``. Champ's pose guidance encoders are
    not part of it (stage 3 gets them through ``guidance_targets``). The modules are the ones
    passed in, trained in place; construction sets their ``requires_grad``.

    Args:
        champ: Champ's models (e.g. :func:`~..m2penc.champ.models.load_champ_files`).
        m2penc: M2PEnc; its ``guidance_channels`` must equal the U-Net's first block width.
        cond_drop: probability that a sample is trained unconditionally (Champ: 0.1).
        noise_offset, snr_gamma: see :func:`.diffusion_loss.diffusion_loss` (defaults: plain MSE).
        bank_dtype: dtype of the reference bank (default float32; Champ: float16 under fp16 loss scaling).
    """

    def __init__(self, champ: ChampModels, m2penc: M2PEnc, cond_drop: float = CHAMP_COND_DROP,
                 noise_offset: float = 0.0, snr_gamma: Optional[float] = None,
                 bank_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not 0.0 <= cond_drop <= 1.0:
            raise InputError(f"cond_drop is a probability in [0, 1], got {cond_drop}")
        width = champ.denoising_unet.m2p_config.block_out_channels[0]
        if m2penc.config.guidance_channels != width:
            raise InputError(f"M2PEnc predicts {m2penc.config.guidance_channels} guidance channels but Champ's U-Net "
                             f"adds {width} after conv_in; use an M2PEnc with guidance_channels={width} "
                             f"(M2PEncConfig.preset(..., guidance_channels={width}))")
        self.reference_unet = champ.reference_unet
        self.denoising_unet = champ.denoising_unet
        self.vae = champ.vae
        self.image_encoder = champ.image_encoder
        self.m2penc = m2penc
        self._champ = champ
        self.cond_drop = float(cond_drop)
        self.noise_offset = float(noise_offset)
        self.snr_gamma = snr_gamma
        self.bank_dtype = bank_dtype
        self.scheduler = make_train_scheduler()

    def _finish_init(self) -> None:
        """Set ``requires_grad`` from :meth:`is_trainable`; remember the frozen subtrees; train mode."""
        for name, param in self.named_parameters():
            param.requires_grad_(self.is_trainable(name))
        self._trainable = [name for name, param in self.named_parameters() if param.requires_grad]
        self._frozen: list[str] = []
        for name, module in self.named_modules():
            if name and any(name.startswith(f"{done}.") for done in self._frozen):
                continue
            params = list(module.parameters())
            if name and params and not any(p.requires_grad for p in params):
                self._frozen.append(name)
        self.train()

    def is_trainable(self, name: str) -> bool:
        """Whether parameter ``name`` (of ``named_parameters()``) is trained by this stage."""
        raise NotImplementedError

    def trainable_parameter_names(self) -> list[str]:
        """Exactly the parameters this stage updates, in ``named_parameters()`` order."""
        return list(self._trainable)

    def train(self, mode: bool = True) -> "ChampStageModule":
        """``nn.Module.train``, except that wholly frozen submodules always stay in eval mode."""
        super().train(mode)
        for name in self._frozen:
            self.get_submodule(name).eval()
        return self

    @property
    def device(self) -> torch.device:
        """Device of the denoising U-Net (all parts share it)."""
        return self.denoising_unet.device

    def guidance_fea(self, guidance: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """M2PEnc guidance ``(B, C, F, G, G)`` -> ``guidance_fea`` ``(B, C, F, height/8, width/8)``, U-Net dtype."""
        return to_guidance_fea(guidance, height, width, self.denoising_unet.dtype)

    def m2penc_features(self, batch: Batch, frames: Optional[int] = None) -> torch.Tensor:
        """``batch["features"]`` ``(B, L, D)`` on M2PEnc's device and dtype (``L == frames`` if given)."""
        features = batch.get("features")
        if features is None or features.ndim != 3 or (frames is not None and features.shape[1] != frames):
            want = f"(B, {frames if frames is not None else 'L'}, {self.m2penc.config.in_dim})"
            got = None if features is None else tuple(features.shape)
            raise InputError(f"features must be music features {want}, got {got}")
        param = next(self.m2penc.parameters())
        return features.to(param.device, param.dtype)

    def condition(self, reference: torch.Tensor, track_grad: bool,
                  draws: Optional[Draws] = None) -> tuple[torch.Tensor, ReferenceContext, torch.Tensor]:
        """CLIP context and reference bank of a batch of references, with condition dropout.

        Args:
            reference: ``(B, 3, H, W)`` in [0, 1].
            track_grad: keep the ReferenceNet's graph (stage 2 trains it).
            draws: where the dropout coins come from (default: torch's global RNG).

        Returns:
            ``(embeds (B, 1, D), reference context, kept (B,) bool)``: dropped samples have zero
            embeddings and read no bank; the context is ``None`` when every sample is dropped.
        """
        b = reference.shape[0]
        with torch.no_grad():
            ref_latents = encode_image_latents(self._champ, reference)
            embeds = encode_clip_image(self._champ, reference)
        kept = (draws or Draws(None, embeds.device)).rand(b) >= self.cond_drop
        embeds = embeds * kept.view(b, 1, 1).to(embeds.dtype)
        flags = tuple(bool(k) for k in kept.tolist())
        if not any(flags):
            return embeds, None, kept
        rows = kept.nonzero().squeeze(1)
        bank = self.reference_unet.write_bank(ref_latents[rows], embeds[rows], self.bank_dtype, track_grad=track_grad)
        if len(rows) < b:      # one entry per batch element; dropped elements' entries are never read
            bank = {k: v.new_zeros((b, *v.shape[1:])).index_copy(0, rows, v) for k, v in bank.items()}
        return embeds, ReferenceRead(bank, flags), kept


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
        embeds, context, kept = self.condition(reference, track_grad=True, draws=draws)

        def unet_call(noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
            return self.denoising_unet(noisy, timesteps, embeds, guidance_fea, reference=context,
                                       motion_modules=False)

        loss, parts = diffusion_loss(unet_call, latents, self.scheduler, self.noise_offset, self.snr_gamma, draws)
        return {"loss": loss, **parts, "kept": kept.float().mean()}
