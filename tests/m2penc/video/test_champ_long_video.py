"""The long-video sampler driving the tiny random-init Champ model (real U-Net, VAE, ReferenceNet)."""
from __future__ import annotations

import av
import pytest
import torch

from m2pdance.m2penc.champ import build_champ, context_windows as champ_context_windows, encode_reference
from m2pdance.m2penc.champ import make_scheduler
from m2pdance.m2penc.video import (
    LongVideoOptions, SamplingContext, VideoWriter, context_windows, guidance_from_tensor, iter_segment_latents,
    plan_for, sample_segment,
)
from m2pdance.m2penc.video.champ_adapter import champ_predictor, render_champ_video

NUM_FRAMES = 40
# small windows and few steps keep the tiny model at a few seconds per video on 2 CPU cores
OPTIONS = LongVideoOptions(segment_frames=16, cond_frames=4, num_steps=3, context_size=8, context_overlap=2)


@pytest.fixture(scope="module")
def champ():
    models = build_champ("tiny", seed=0, device="cpu", dtype=torch.float32)
    photo = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ref_state = encode_reference(models, photo)
    channels = models.denoising_unet.conv_in.out_channels
    fea = torch.randn(1, channels, NUM_FRAMES, 8, 8, generator=torch.Generator().manual_seed(2))
    return models, ref_state, guidance_from_tensor(fea)


def _segment_latents(champ, seed: int) -> list[torch.Tensor]:
    models, ref_state, guidance_fn = champ
    segments = plan_for(NUM_FRAMES, OPTIONS)
    ctx = SamplingContext(champ_predictor(models, ref_state), make_scheduler(OPTIONS.num_steps), guidance_fn, seed,
                          tuple(ref_state.latents.shape), models.device, torch.float32, OPTIONS,
                          total_segments=len(segments))
    return [item.latents for item in iter_segment_latents(ctx, segments)], ctx, segments


def test_champ_video_file_without_rerunning_the_reference_net(tmp_path, champ, monkeypatch):
    models, ref_state, guidance_fn = champ

    def no_reference_pass(*args, **kwargs):
        raise AssertionError("the ReferenceNet must run once per video, before sampling")

    monkeypatch.setattr(models.reference_unet, "forward", no_reference_pass)
    with VideoWriter(tmp_path / "champ.mp4", 15, "mp4") as writer:
        written = render_champ_video(models, ref_state, guidance_fn, NUM_FRAMES, writer.write, seed=0, options=OPTIONS)
    assert written == NUM_FRAMES
    with av.open(str(writer.path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == NUM_FRAMES and frames[0].shape == (64, 64, 3)


def test_champ_segments_are_deterministic_and_regenerate_alone(champ):
    first, ctx, segments = _segment_latents(champ, seed=5)
    second, _, _ = _segment_latents(champ, seed=5)
    other, _, _ = _segment_latents(champ, seed=6)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.allclose(first[1], other[1])
    alone = sample_segment(ctx, segments[2], first[1][:, :, -segments[2].cond:])
    assert torch.equal(alone, first[2])


def test_closed_loop_windows_match_champ():
    for frames in (10, 24, 25, 79, 150):
        ours = context_windows(frames, 24, 4, closed_loop=True)
        assert ours == champ_context_windows(frames, 24, 4, closed_loop=True)
