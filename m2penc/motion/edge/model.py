"""EDGE's denoiser ``DanceDecoder``: noisy motion + music + step -> predicted clean motion (x0).

A faithful re-implementation of EDGE ``model/model.py`` (REPORT.md §5) so the released
``checkpoint.pt`` loads with ``strict=True`` under its own key names. The network predicts x0
(``predict_epsilon = False``); classifier-free guidance runs two forwards, one with the music
and one with the learned null condition, and mixes them (:meth:`DanceDecoder.guided`).

Shapes: motion ``x`` ``(B, L, 151)`` in EDGE's normalised space, music ``cond`` ``(B, L, C)``
(C = 4800 Jukebox or 35 baseline), steps ``t`` ``(B,)`` long in ``[0, 1000)``; L must equal
``config.seq_len`` (150 for the released weights) because the null condition is per frame.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from ...errors import InputError
from .config import EDGEConfig
from .layers import DecoderLayerStack, EncoderLayer, FiLMDecoderLayer, SinusoidalPosEmb
from .rotary import RotaryEmbedding

#: Music encoder depth; EDGE hard-codes it (it is not ``num_layers``).
COND_ENCODER_LAYERS = 2


class DanceDecoder(nn.Module):
    """EDGE's FiLM transformer denoiser, built from an :class:`EDGEConfig`."""

    def __init__(self, config: EDGEConfig):
        super().__init__()
        self.config = config
        d, heads, ff, p = config.latent_dim, config.num_heads, config.ff_size, config.dropout
        # Parameters first, then modules in EDGE's order: the state-dict order of the checkpoint.
        self.null_cond_embed = nn.Parameter(torch.randn(1, config.seq_len, d))
        self.null_cond_hidden = nn.Parameter(torch.randn(1, d))
        self.rotary = RotaryEmbedding(d)
        self.time_mlp = nn.Sequential(SinusoidalPosEmb(d), nn.Linear(d, d * 4), nn.Mish())
        self.to_time_cond = nn.Sequential(nn.Linear(d * 4, d))
        self.to_time_tokens = nn.Sequential(nn.Linear(d * 4, d * 2))
        self.norm_cond = nn.LayerNorm(d)
        self.input_projection = nn.Linear(config.nfeats, d)
        self.cond_encoder = nn.Sequential(*(EncoderLayer(d, heads, ff, p, self.rotary)
                                            for _ in range(COND_ENCODER_LAYERS)))
        self.cond_projection = nn.Linear(config.cond_feature_dim, d)
        self.non_attn_cond_projection = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.seqTransDecoder = DecoderLayerStack(nn.ModuleList(
            FiLMDecoderLayer(d, heads, ff, p, self.rotary) for _ in range(config.num_layers)))
        self.final_layer = nn.Linear(d, config.nfeats)

    def check_inputs(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``x (B, L, nfeats)``, ``cond (B, L, C)``, ``t (B,)`` fit."""
        cfg = self.config
        if x.ndim != 3 or x.shape[1:] != (cfg.seq_len, cfg.nfeats):
            raise InputError(
                f"EDGE motion must be (batch, {cfg.seq_len}, {cfg.nfeats}), got {tuple(x.shape)}; "
                f"EDGE denoises fixed windows of seq_len={cfg.seq_len} frames, so cut longer motion into "
                "windows (long_ddim_sample joins them)")
        if cond.shape != (x.shape[0], cfg.seq_len, cfg.cond_feature_dim):
            raise InputError(
                f"EDGE ({cfg.feature_kind}) music features must be (batch={x.shape[0]}, {cfg.seq_len}, "
                f"{cfg.cond_feature_dim}), got {tuple(cond.shape)}; extract {cfg.feature_kind!r} features "
                f"at {cfg.fps:g} fps and window them like the motion")
        if t.shape != (x.shape[0],):
            raise InputError(f"EDGE steps t must be (batch={x.shape[0]},) integers, got {tuple(t.shape)}")

    def forward(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
                keep_cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predicted clean motion.

        Args:
            x: ``(B, L, nfeats)`` noisy motion x_t.
            cond: ``(B, L, C)`` music features.
            t: ``(B,)`` integer diffusion steps (a 0-d tensor is broadcast).
            keep_cond: ``(B,)`` bool; False rows see the null condition (``null_cond_embed`` for
                every music token after the encoder and ``null_cond_hidden`` for the pooled
                vector), as EDGE's classifier-free dropout. None keeps every row's music.
        Returns:
            ``(B, L, nfeats)`` predicted x0, in the model's dtype.
        """
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        self.check_inputs(x, cond, t)
        dtype = self.input_projection.weight.dtype
        x, cond = x.to(dtype), cond.to(dtype)
        if keep_cond is None:
            keep_cond = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        keep_cond = keep_cond.to(device=x.device, dtype=torch.bool)

        h = self.input_projection(x)                                              # (B, L, D)
        tokens = self.cond_encoder(self.cond_projection(cond))                    # (B, L, D)
        tokens = torch.where(keep_cond[:, None, None], tokens, self.null_cond_embed.to(tokens.dtype))
        cond_hidden = self.non_attn_cond_projection(tokens.mean(dim=-2))           # (B, D)

        t_hidden = self.time_mlp[1:](self.time_mlp[0](t).to(dtype))                 # (B, 4D)
        t_vec = self.to_time_cond(t_hidden)                                       # (B, D)
        t_tokens = self.to_time_tokens(t_hidden).unflatten(-1, (2, -1))           # (B, 2, D)
        cond_hidden = torch.where(keep_cond[:, None], cond_hidden, self.null_cond_hidden.to(t_vec.dtype))
        t_vec = t_vec + cond_hidden

        memory = self.norm_cond(torch.cat((tokens, t_tokens), dim=-2))            # (B, L + 2, D)
        return self.final_layer(self.seqTransDecoder(h, memory, t_vec))

    def guided(self, x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
               weight: Union[float, torch.Tensor]) -> torch.Tensor:
        """Classifier-free guidance, EDGE's ``guided_forward``: ``uncond + w (cond - uncond)``.

        Two full forwards (null condition for every row, then music for every row). ``weight`` is
        a float or a ``(B,)`` tensor (one weight per row). Shapes as :meth:`forward`.
        """
        batch = x.shape[0]
        device = x.device
        uncond = self.forward(x, cond, t, torch.zeros(batch, dtype=torch.bool, device=device))
        conditioned = self.forward(x, cond, t, torch.ones(batch, dtype=torch.bool, device=device))
        if isinstance(weight, torch.Tensor) and weight.ndim > 0:
            weight = weight.to(device=device, dtype=uncond.dtype).reshape(-1, 1, 1)
        return uncond + (conditioned - uncond) * weight
