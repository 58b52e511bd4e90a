"""What stages 2 and 3 share: Champ's networks and M2PEnc as one trainable module, and its conditioning.

:class:`ChampStageModule` registers the networks (``reference_unet``, ``denoising_unet``, ``vae``,
``image_encoder``, ``m2penc``), freezes what a stage does not train (each stage says what it
trains in ``is_trainable``), keeps frozen parts in eval mode, runs the ReferenceNet with Champ's
condition dropout (:meth:`ChampStageModule.condition`) and names the FSDP units. The stages are
:class:`.stage2.Stage2Module` and :class:`.stage3.Stage3Module`.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..m2penc.champ.denoising_unet import is_motion_parameter
from ..m2penc.champ.models import ChampModels
from ..m2penc.champ.reference import encode_clip_image, encode_image_latents
from ..m2penc.champ.reference_attention import ReferenceContext, ReferenceRead
from ..m2penc.encoder.guidance import to_guidance_fea
from ..m2penc.encoder.model import M2PEnc
from ..m2penc.errors import InputError
from .diffusion_loss import Draws, make_train_scheduler
from .sharding import FSDPUnit
from .trainer import Batch

#: Champ's ``uncond_ratio``: the share of training samples without reference / CLIP condition.
CHAMP_COND_DROP = 0.1


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
        m2penc: M2PEnc; its ``guidance_channels`` must equal the U-Net's first block width. ``None`` only for
            Champ's image stage (stage 2 with ``guidance = "maps"``), which guides with the rendered maps.
        cond_drop: probability that a sample is trained unconditionally (Champ: 0.1).
        noise_offset, snr_gamma: see :func:`.diffusion_loss.diffusion_loss` (defaults: plain MSE).
        bank_dtype: dtype of the reference bank (default float32; Champ: float16 under fp16 loss scaling).
    """

    def __init__(self, champ: ChampModels, m2penc: Optional[M2PEnc], cond_drop: float = CHAMP_COND_DROP,
                 noise_offset: float = 0.0, snr_gamma: Optional[float] = None,
                 bank_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not 0.0 <= cond_drop <= 1.0:
            raise InputError(f"cond_drop is a probability in [0, 1], got {cond_drop}")
        width = champ.denoising_unet.m2p_config.block_out_channels[0]
        if m2penc is not None and m2penc.config.guidance_channels != width:
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

    def fsdp_units(self) -> list[FSDPUnit]:
        """The FSDP units under ``sharding = "fsdp"`` (:mod:`.sharding`): every block of both U-Nets, the VAE
        (also through ``encode``), the CLIP image encoder and M2PEnc; the root keeps the U-Nets' stems and heads.

        The ReferenceNet's blocks stay gathered from forward to backward when it is trained (stage 2:
        its gradients arrive through the reference bank, not through its outputs); frozen, they are
        freed after the forward like every other unit.
        """
        reference_trained = any(p.requires_grad for p in self.reference_unet.parameters())
        blocks = [FSDPUnit(block, reshard_after_forward=unet is self.denoising_unet or not reference_trained)
                  for unet in (self.reference_unet, self.denoising_unet)
                  for block in (*unet.down_blocks, unet.mid_block, *unet.up_blocks)]
        units = [*blocks, FSDPUnit(self.vae, methods=("encode",)), FSDPUnit(self.image_encoder)]
        return units + ([FSDPUnit(self.m2penc)] if self.m2penc is not None else [])

    @property
    def champ(self) -> ChampModels:
        """Champ's models as the sampler takes them (the same modules this stage trains)."""
        return self._champ

    @property
    def device(self) -> torch.device:
        """Device of the denoising U-Net (all parts share it)."""
        return self.denoising_unet.device

    def guidance_fea(self, guidance: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """M2PEnc guidance ``(B, C, F, G, G)`` -> ``guidance_fea`` ``(B, C, F, height/8, width/8)``, U-Net dtype."""
        return to_guidance_fea(guidance, height, width, self.denoising_unet.dtype)

    def m2penc_features(self, batch: Batch, frames: Optional[int] = None) -> torch.Tensor:
        """``batch["features"]`` ``(B, L, D)`` on M2PEnc's device and dtype (``L == frames`` if given)."""
        if self.m2penc is None:
            raise InputError("this stage module has no M2PEnc (Champ's image stage guides with the rendered maps)")
        features = batch.get("features")
        if features is None or features.ndim != 3 or (frames is not None and features.shape[1] != frames):
            want = f"(B, {frames if frames is not None else 'L'}, {self.m2penc.config.in_dim})"
            got = None if features is None else tuple(features.shape)
            raise InputError(f"features must be music features {want}, got {got}")
        param = next(self.m2penc.parameters())
        return features.to(param.device, param.dtype)

    def condition(self, reference: torch.Tensor, track_grad: bool, draws: Optional[Draws] = None
                  ) -> tuple[torch.Tensor, ReferenceContext, torch.Tensor, torch.Tensor]:
        """CLIP context and reference bank of a batch of references, with condition dropout.

        The ReferenceNet runs on every call, even when every sample is dropped: under FSDP each
        process must gather the same blocks in the same order, and under DDP every trained
        parameter then gets a gradient (zero when unused), so N processes train what one does.

        Args:
            reference: ``(B, 3, H, W)`` in [0, 1].
            track_grad: keep the ReferenceNet's graph (stage 2 trains it).
            draws: where the dropout coins come from (default: torch's global RNG).

        Returns:
            ``(embeds (B, 1, D), reference context, kept (B,) bool, tie ())``: dropped samples have zero
            embeddings and read no bank; the context is ``None`` when every sample is dropped, and
            ``tie`` is then 0 times the unused bank (add it to the loss), else 0.
        """
        b = reference.shape[0]
        with torch.no_grad():
            ref_latents = encode_image_latents(self._champ, reference)
            embeds = encode_clip_image(self._champ, reference)
        kept = (draws or Draws(None, embeds.device)).rand(b) >= self.cond_drop
        embeds = embeds * kept.view(b, 1, 1).to(embeds.dtype)
        flags = tuple(bool(k) for k in kept.tolist())
        rows = kept.nonzero().squeeze(1) if any(flags) else torch.zeros(1, dtype=torch.long, device=kept.device)
        bank = self.reference_unet.write_bank(ref_latents[rows], embeds[rows], self.bank_dtype, track_grad=track_grad)
        if not any(flags):
            return embeds, None, kept, 0.0 * sum(v.float().sum() for v in bank.values())
        if len(rows) < b:      # one entry per batch element; dropped elements' entries are never read
            bank = {k: v.new_zeros((b, *v.shape[1:])).index_copy(0, rows, v) for k, v in bank.items()}
        return embeds, ReferenceRead(bank, flags), kept, embeds.new_zeros(())
