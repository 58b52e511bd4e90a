"""Segmented Dance Sampler: Champ + pose guidance + reference -> dance frames of any length."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..m2penc.champ.long_video import render_champ_video
from ..m2penc.sampling import LongVideoOptions
from ..m2penc.sampling.noise import UNIANIMATE_NOISE_PRIOR_T
from ..m2penc.sampling.plan import segment_frames_for
from . import _comfy
from .types import ChampModel, PoseGuidance, Reference

CATEGORY = "M2PDance/sampling"
#: Join choices shown to users -> LongVideoOptions.join.
#: Join labels -> sampler joins. "in-paint previous tail" is training-free in-painting in time (Champ has no
#: UniAnimate first-frame branch to condition on); the last label is its old name, kept so saved workflows load.
JOINS = {"in-paint previous tail": "condition", "overlap averaging": "average", "none": "none",
         "noise conditioning (paper)": "condition"}


class SegmentedDanceSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceSegmentedSampler",
            display_name="Segmented Dance Sampler",
            category=CATEGORY,
            description="Generate the dance in 5-second segments joined without seams (the paper's noise "
                        "conditioning, after UniAnimate); inside a segment Champ's 24-frame context windows "
                        "keep the motion module within its length. Memory does not grow with the song.",
            inputs=[
                ChampModel.Input("champ", tooltip="From Load Champ."),
                Reference.Input("reference", tooltip="From Champ Reference U-Net (computed once per photo)."),
                PoseGuidance.Input("pose_guidance", tooltip="From M2PEnc Guidance (music) or Champ Pose Guidance."),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                             tooltip="Same seed, same dance; each segment's noise derives from (seed, segment)."),
                io.Int.Input("steps", default=20, min=1, max=200, tooltip="DDIM steps (Champ: 20)."),
                io.Float.Input("cfg", default=3.5, min=1.0, max=20.0, step=0.1,
                               tooltip="Classifier-free guidance scale (Champ: 3.5)."),
                io.Float.Input("segment_seconds", default=5.0, min=1.0, max=60.0, step=0.5,
                               tooltip="Length of one segment (paper: 5 s)."),
                io.Combo.Input("join", options=list(JOINS), default=next(iter(JOINS)),
                               tooltip="How segments are joined. in-paint previous tail: each segment is denoised "
                                       "around the previous one's last frames, re-noised at every step (training-"
                                       "free; streams, flat memory; the paper's UniAnimate-style conditioning needs "
                                       "a trained first-frame branch Champ lacks). overlap averaging: the whole "
                                       "video at once with averaged windows (memory grows with length). 'noise "
                                       "conditioning (paper)' is the old name of the first."),
                io.Int.Input("overlap", default=4, min=0, max=16,
                             tooltip="Frames of segment s that segment s+1 in-paints around."),
                io.Boolean.Input("noise_prior", default=False,
                                 tooltip="Start from the reference latent diffused to t=939 (UniAnimate's long-video prior)."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="The video frames as one IMAGE batch (B = frames), for Video Combine."),
                     io.Latent.Output(display_name="latents", tooltip="The final latents (SD-1.5 layout, frames as batch), e.g. to decode again."),
                     io.Float.Output(display_name="fps", tooltip="Frame rate of the frames (the pose guidance's).")],
        )

    @classmethod
    def execute(cls, champ, reference, pose_guidance, seed, steps, cfg, segment_seconds, join, overlap,
                noise_prior) -> io.NodeOutput:
        options = LongVideoOptions(segment_frames=segment_frames_for(segment_seconds, pose_guidance.fps),
                                   join=JOINS[join], cond_frames=overlap, num_steps=steps,
                                   noise_prior_t=UNIANIMATE_NOISE_PRIOR_T if noise_prior else None)
        frames: list[torch.Tensor] = []
        latents: list[torch.Tensor] = []
        render_champ_video(champ, reference.state, pose_guidance, frames.append, seed=seed, options=options,
                           guidance_scale=cfg, latents_out=latents, control=_comfy.run_control())
        # ComfyUI's SD-1.5 LATENT: one (4, h, w) latent per frame, unscaled (its VAE Decode does not
        # divide by the scaling factor), i.e. (F, 4, h, w), not Champ's scaled (1, 4, F, h, w).
        samples = torch.cat(latents, dim=2)[0].transpose(0, 1) / champ.vae.config.scaling_factor
        return io.NodeOutput(torch.cat(frames), {"samples": samples.contiguous()}, float(pose_guidance.fps))
