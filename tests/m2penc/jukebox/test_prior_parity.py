"""Layer-L activations of the truncated extractor equal independent forwards of the full model.

1. Hooks: a full tiny prior (all layers + logits head) is run end to end by code written here
   (embedding and conditioning recomputed from the raw parameters); forward hooks capture each
   layer's output, which must equal the truncated extractor's layer-L output (<= 1e-5).
2. jukebox-infer (MIT port of OpenAI's code): the same weights loaded into its modules and run
   the way jukemirlib runs them (``sample=True``, cache cleared per layer) give the same
   activations, and its VQ-VAE encoder + codebook give the same tokens.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from m2pdance.m2penc.jukebox import JukeboxConfig, TopLevelPrior
from m2pdance.m2penc.jukebox.checkpoint_io import keys_up_to_layer
from m2pdance.m2penc.jukebox.config import CONDITIONING_TOTAL_SECONDS, SAMPLE_RATE
from m2pdance.m2penc.jukebox.extractor import JukeboxFeatureExtractor
from m2pdance.m2penc.jukebox.random_weights import randomize_, tiny_models

CONFIG = JukeboxConfig.preset("tiny")
N_TOKENS = 700  # not a multiple of block_ctx: exercises padding


@pytest.fixture(scope="module")
def full_prior() -> TopLevelPrior:
    return randomize_(TopLevelPrior(CONFIG), seed=3).eval()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, CONFIG.l_bins, (N_TOKENS,), generator=torch.Generator().manual_seed(1))


def _time_signal(prior: TopLevelPrior, n: int) -> torch.Tensor:
    """Label time signal recomputed from the embedding tables (Jukebox's fp32 binning)."""
    y, sr, hop, bins = prior.y_emb, SAMPLE_RATE, CONFIG.hop_length, CONFIG.t_bins
    total = float((CONDITIONING_TOTAL_SECONDS * sr // hop) * hop)
    length = float(CONFIG.n_ctx * hop)
    frac = torch.arange(CONFIG.n_ctx, dtype=torch.float32) / CONFIG.n_ctx
    absolute = ((length * frac) / (CONFIG.max_duration * sr) * bins).floor().long()
    end_rel = torch.tensor(length, dtype=torch.float32) / total
    relative = ((end_rel * frac) * bins).floor().long()
    total_bin = int((total - CONFIG.min_duration * sr) / ((CONFIG.max_duration - CONFIG.min_duration) * sr) * bins)
    signal = (y.total_length_emb.emb.weight[total_bin] + y.absolute_pos_emb.emb.weight[absolute]
              + y.relative_pos_emb.emb.weight[relative])
    return signal[:n]


def _reference_layer_outputs(prior: TopLevelPrior, tokens: torch.Tensor) -> list[torch.Tensor]:
    core = prior.prior
    start = prior.y_emb.bow_genre_emb.emb.weight[0] + prior.y_emb.artist_emb.emb.weight[0]
    x = core.x_emb.weight[tokens]
    x = torch.roll(x, 1, dims=0)
    x[0] = start
    x = (x + core.pos_emb.pos_emb[: len(tokens)] + _time_signal(prior, len(tokens)))[None]
    captured: list[torch.Tensor] = []
    hooks = [block.register_forward_hook(lambda m, i, out: captured.append(out.detach().clone()))
             for block in core.transformer._attn_mods]
    try:
        for block in core.transformer._attn_mods:
            x = block(x)
        core.x_out(x)  # the full model's logits head runs too
    finally:
        for hook in hooks:
            hook.remove()
    return [c[0] for c in captured]


@torch.no_grad()
@pytest.mark.parametrize("layer", [1, 3, CONFIG.prior_depth])
def test_truncated_extractor_equals_hooked_full_forward(full_prior, tokens, layer):
    reference = _reference_layer_outputs(full_prior, tokens)
    truncated = TopLevelPrior(CONFIG, n_layers=layer, with_head=False)
    keep = keys_up_to_layer(layer)
    truncated.load_state_dict({k: v for k, v in full_prior.state_dict().items() if keep(k)}, strict=True)
    vqvae, _ = tiny_models(1)
    ours = JukeboxFeatureExtractor(vqvae, truncated).token_features(tokens)
    assert ours.shape == (N_TOKENS, CONFIG.prior_width)
    np.testing.assert_allclose(ours, reference[layer - 1].numpy(), atol=1e-5, rtol=0)
    if layer > 1:  # and it is that layer, not its neighbour
        assert not np.allclose(ours, reference[layer - 2].numpy(), atol=1e-3)


needs_jukebox_infer = pytest.mark.skipif(importlib.util.find_spec("jukebox_infer") is None,
                                         reason="jukebox-infer not installed (pip install jukebox-infer)")


def _their_transformer(prior: TopLevelPrior):
    from jukebox_infer.transformer.transformer import Transformer

    theirs = Transformer(n_in=CONFIG.prior_width, n_ctx=CONFIG.n_ctx, n_head=CONFIG.heads,
                         n_depth=CONFIG.prior_depth, mask=True, m_attn=CONFIG.m_attn, m_mlp=CONFIG.m_mlp,
                         attn_order=CONFIG.attn_order, blocks=CONFIG.blocks).eval()
    prefix = "prior.transformer."
    theirs.load_state_dict({k[len(prefix):]: v for k, v in prior.state_dict().items() if k.startswith(prefix)})
    return theirs


def _their_time_signal(prior: TopLevelPrior, n: int) -> torch.Tensor:
    from jukebox_infer.prior.conditioners import RangeEmbedding

    sr, hop, bins, w = SAMPLE_RATE, CONFIG.hop_length, CONFIG.t_bins, CONFIG.prior_width
    total = torch.tensor([[float((CONDITIONING_TOTAL_SECONDS * sr // hop) * hop)]])
    start, end = torch.zeros(1, 1), torch.tensor([[float(CONFIG.n_ctx * hop)]])
    parts = [(RangeEmbedding(1, bins, (CONFIG.min_duration * sr, CONFIG.max_duration * sr), w, 1.0),
              prior.y_emb.total_length_emb, (total,)),
             (RangeEmbedding(CONFIG.n_ctx, bins, (0.0, CONFIG.max_duration * sr), w, 1.0),
              prior.y_emb.absolute_pos_emb, (start, end)),
             (RangeEmbedding(CONFIG.n_ctx, bins, (0.0, 1.0), w, 1.0, clamp=True),
              prior.y_emb.relative_pos_emb, (start / total, end / total))]
    signal = 0
    for module, ours, args in parts:
        module.load_state_dict(ours.state_dict())
        signal = signal + module(*args)
    return signal[:, :n]


@needs_jukebox_infer
@torch.no_grad()
def test_activations_match_jukebox_infer_run_like_jukemirlib(full_prior, tokens):
    theirs = _their_transformer(full_prior)
    core, y = full_prior.prior, full_prior.y_emb
    x = torch.nn.functional.embedding(tokens[None], core.x_emb.weight)
    x = torch.cat((x[:, -1:], x[:, :-1]), dim=1)  # jukemirlib's roll(x, 1)
    x[:, 0] = y.bow_genre_emb.emb.weight[0] + y.artist_emb.emb.weight[0]
    x = x + core.pos_emb.pos_emb[: len(tokens)] + _their_time_signal(full_prior, len(tokens))
    extractor = JukeboxFeatureExtractor(tiny_models(1)[0], full_prior)
    for index, block in enumerate(theirs._attn_mods):
        block.attn.del_cache()
        x = block(x, encoder_kv=None, sample=True)
        block.attn.del_cache()
        ours = extractor.token_features(tokens, layer=index + 1)
        np.testing.assert_allclose(ours, x[0].numpy(), atol=1e-5, rtol=0, err_msg=f"layer {index + 1}")


@needs_jukebox_infer
@torch.no_grad()
def test_tokens_match_jukebox_infer_vqvae(make_music):
    from jukebox_infer.vqvae.bottleneck import BottleneckBlock
    from jukebox_infer.vqvae.encdec import Encoder

    vqvae, _ = tiny_models(1, seed=5)
    top = CONFIG.levels - 1
    encoder = Encoder(1, CONFIG.emb_width, CONFIG.levels, CONFIG.downs_t, CONFIG.strides_t,
                      width=CONFIG.vq_width, depth=CONFIG.vq_depth, m_conv=CONFIG.m_conv,
                      dilation_growth_rate=CONFIG.dilation_growth_rate)
    encoder.load_state_dict(vqvae.encoders[top].state_dict())
    codebook = BottleneckBlock(CONFIG.l_bins, CONFIG.emb_width, 0.99)
    codebook.load_state_dict(vqvae.bottleneck.level_blocks[top].state_dict())
    audio = torch.from_numpy(make_music(3.0))[None, None]
    latents = encoder(audio)[-1]  # (1, emb, T)
    their_tokens, _ = codebook.quantise(latents.permute(0, 2, 1).reshape(-1, CONFIG.emb_width))
    ours = vqvae.encode_top(audio[:, 0])[0]
    assert len(torch.unique(ours)) > 4
    assert torch.equal(ours, their_tokens)
