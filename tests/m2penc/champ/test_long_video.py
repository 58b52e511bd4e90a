"""The long-video sampler driving the tiny random-init Champ model (real U-Net, VAE, ReferenceNet)."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from m2pdance.m2penc.champ import build_champ, champ_predictor, decode_latents, encode_reference, make_scheduler
from m2pdance.m2penc.champ.long_video import render_champ_video
from m2pdance.m2penc.sampling import (
    LongVideoOptions, SamplingContext, context_windows, guidance_from_tensor, iter_segment_latents, plan_for,
    sample_segment,
)
from m2pdance.m2penc.video import VideoWriter

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
    return models, ref_state, guidance_from_tensor(fea), fea


class TensorSource:
    """A GuidanceSource over a precomputed ``(1, C, N, h, w)`` tensor at the latent size."""

    def __init__(self, fea: torch.Tensor, fps: float = 15.0):
        self.fea, self.fps = fea, fps
        self.num_frames, self.channels = fea.shape[2], fea.shape[1]

    def frames(self, indices, latent_hw, device, dtype):
        assert tuple(self.fea.shape[-2:]) == tuple(latent_hw)
        return self.fea.index_select(2, indices).to(device=device, dtype=dtype)


def _segment_latents(champ, seed: int) -> list[torch.Tensor]:
    models, ref_state, guidance_fn, _ = champ
    segments = plan_for(NUM_FRAMES, OPTIONS)
    ctx = SamplingContext(champ_predictor(models, ref_state), make_scheduler(OPTIONS.num_steps), guidance_fn, seed,
                          tuple(ref_state.latents.shape), models.device, torch.float32, OPTIONS,
                          total_segments=len(segments))
    return [item.latents for item in iter_segment_latents(ctx, segments)], ctx, segments


def test_champ_video_file_holds_the_sampled_segments(tmp_path, champ, monkeypatch):
    models, ref_state, _, fea = champ
    expected = torch.cat([decode_latents(models.vae, latents) for latents in _segment_latents(champ, seed=0)[0]])

    def no_reference_pass(*args, **kwargs):
        raise AssertionError("the ReferenceNet must run once per video, before sampling")

    monkeypatch.setattr(models.reference_unet, "forward", no_reference_pass)
    sunk: list[torch.Tensor] = []
    with VideoWriter(tmp_path / "champ.mp4", 15, "mp4") as writer:
        def sink(frames: torch.Tensor) -> None:
            sunk.append(frames)
            writer.write(frames)

        written = render_champ_video(models, ref_state, TensorSource(fea), sink, seed=0, options=OPTIONS)
    assert written == NUM_FRAMES
    # the frames handed to the writer are exactly the segment loop's latents, decoded
    assert torch.equal(torch.cat(sunk), expected)
    with av.open(str(writer.path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert frames.shape == (NUM_FRAMES, 64, 64, 3)
    # ... and the file holds them in order, up to lossy H.264 (random weights draw noise, which H.264 keeps badly)
    target = expected.numpy() * 255
    error = np.abs(frames.astype(np.float32) - target).mean()
    shifted = np.abs(frames.astype(np.float32) - np.roll(target, 1, axis=0)).mean()
    assert error < 16 and error < 0.5 * shifted, (error, shifted)


def test_champ_video_refuses_guidance_of_the_wrong_width(champ):
    models, ref_state, _, fea = champ
    with pytest.raises(Exception, match="channels"):
        render_champ_video(models, ref_state, TensorSource(fea[:, :3]), lambda f: None, seed=0, options=OPTIONS)


def test_champ_segments_are_deterministic_and_regenerate_alone(champ):
    first, ctx, segments = _segment_latents(champ, seed=5)
    second, _, _ = _segment_latents(champ, seed=5)
    other, _, _ = _segment_latents(champ, seed=6)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.allclose(first[1], other[1])
    alone = sample_segment(ctx, segments[2], first[1][:, :, -segments[2].cond:])
    assert torch.equal(alone, first[2])


def test_closed_loop_windows_match_champs_uniform_scheduler():
    # Champ's context.uniform at step 0, stride 1: starts 0, 20, 40, ... while < F, indices mod F.
    for frames in (10, 24, 25, 79, 150):
        champ = [list(range(frames))] if frames <= 24 else \
            [[(s + j) % frames for j in range(24)] for s in range(0, frames, 20)]
        assert context_windows(frames, 24, 4, closed_loop=True) == champ
