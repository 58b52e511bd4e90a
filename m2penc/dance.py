"""Music (or pose maps) + an encoded photo -> dance frames: the whole generation in one call.

This is the library entry point the Segmented Dance Sampler node wraps: it checks that the pose
guidance fits the Champ model, then renders segment by segment (:mod:`.video`), streaming
decoded frames into ``sink`` and, optionally, collecting the latents.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from .champ import ChampModels, ReferenceState, make_scheduler
from .errors import InputError
from .guidance_source import GuidanceSource
from .progress import NO_CONTROL, RunControl
from .video import FrameSink, LongVideoOptions, render_long_video
from .video.champ_adapter import CHAMP_GUIDANCE_SCALE, champ_decoder, champ_predictor

#: UniAnimate's noise-prior timestep (configs/UniAnimate_infer_long.yaml: noise_prior_value 939).
NOISE_PRIOR_T = 939


def check_guidance_fits(models: ChampModels, guidance: GuidanceSource) -> None:
    """The guidance channels must equal the U-Net's ``conv_in`` width (320 for SD-1.5)."""
    expected = models.denoising_unet.m2p_config.block_out_channels[0]
    if guidance.channels != expected:
        raise InputError(f"the pose guidance has {guidance.channels} channels but this Champ U-Net adds "
                         f"{expected} after conv_in; use an M2PEnc (or guidance encoders) made for this Champ model")


def render_dance(models: ChampModels, reference: ReferenceState, guidance: GuidanceSource, sink: FrameSink, *,
                 seed: int, options: LongVideoOptions = LongVideoOptions(),
                 guidance_scale: float = CHAMP_GUIDANCE_SCALE, num_frames: Optional[int] = None,
                 latents_out: Optional[list[torch.Tensor]] = None, control: RunControl = NO_CONTROL) -> int:
    """Generate ``num_frames`` (default: all the guidance has) frames into ``sink``; returns the count.

    Args:
        reference: from :func:`.champ.encode_reference`; its latent fixes the video size.
        guidance: per-frame pose guidance (M2PEnc or Champ pose maps), computed per segment.
        latents_out: if given, each decoded chunk's latents ``(1, 4, f, h, w)`` (CPU) are appended.
    """
    check_guidance_fits(models, guidance)
    total = guidance.num_frames if num_frames is None else num_frames
    if not 1 <= total <= guidance.num_frames:
        raise InputError(f"can generate 1..{guidance.num_frames} frames from this guidance, asked for {total}")
    max_len = models.denoising_unet.m2p_config.motion_max_seq_length
    if options.context_size > max_len:
        raise InputError(f"context_size {options.context_size} exceeds the motion module's length {max_len}")
    latent_hw = tuple(reference.latents.shape[-2:])
    decode = champ_decoder(models.vae)

    def guidance_fn(frames: torch.Tensor) -> torch.Tensor:
        return guidance.frames(frames, latent_hw, models.device, models.dtype)

    def decode_and_keep(latents: torch.Tensor) -> torch.Tensor:
        if latents_out is not None:
            latents_out.append(latents.detach().float().cpu())
        return decode(latents)

    return render_long_video(
        champ_predictor(models, reference, guidance_scale), make_scheduler(options.num_steps), total,
        seed=seed, latent_shape=tuple(reference.latents.shape), decode=decode_and_keep, sink=sink,
        device=models.device, dtype=torch.float32, guidance_fn=guidance_fn, options=options,
        reference_latent=reference.latents.float(), control=control)


def make_dance_video(music: str, photo: str, out: str, *, m2penc_path: str, champ_path: str, vae_path: str,
                     image_encoder_path: str, feature_kind: Optional[str] = None, vqvae_path: Optional[str] = None,
                     prior_path: Optional[str] = None, layer: int = 66, start: float = 0.0,
                     duration: Optional[float] = None, width: int = 512, height: int = 512, seed: int = 0,
                     segment_seconds: float = 5.0, options: LongVideoOptions = LongVideoOptions(), guidance_scale: float = CHAMP_GUIDANCE_SCALE,
                     video_format: str = "mp4", device: str = "auto", dtype: str = "auto",
                     control: RunControl = NO_CONTROL) -> str:
    """Music file + photo file -> dance video file, streaming: memory stays flat however long the song.

    Each decoded chunk goes straight into the video writer (frames never pile up in RAM), which
    is what a minutes-long dance at 512 px needs; the ComfyUI sampler node, by contrast, returns
    the frames as one IMAGE batch as ComfyUI requires. Segments last ``segment_seconds`` at the
    music features' frame rate (``options.segment_frames`` is derived from it). Returns the path.
    """
    import numpy as np
    from PIL import Image

    from .audio.features import extract_music_features
    from .audio.io import load_audio
    from .champ import encode_reference, load_champ_files
    from .device import resolve_device, resolve_dtype
    from .encoder import load_m2penc
    from .guidance_source import M2PEncGuidance
    from .reference_image import prepare_reference
    from .video import VideoWriter

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    encoder = load_m2penc(m2penc_path, device=dev, dtype=dt)
    kind = feature_kind or encoder.config.feature_kind
    audio = load_audio(music, start=start, duration=duration)
    features = extract_music_features(audio, kind=kind, fps=encoder.config.fps, layer=layer,
                                      vqvae_path=vqvae_path, prior_path=prior_path, device=dev, dtype=dt,
                                      control=control)
    encoder.check_music(features)
    models = load_champ_files(champ_path, vae_path, image_encoder_path, device=dev, dtype=dt)
    pixels = torch.from_numpy(np.asarray(Image.open(photo).convert("RGBA"), dtype=np.float32) / 255.0)[None]
    reference = encode_reference(models, prepare_reference(pixels, height, width))
    guidance = M2PEncGuidance(encoder, features.features, fps=features.fps)
    options = dataclasses.replace(options, segment_frames=max(1, round(segment_seconds * features.fps)))
    with VideoWriter(out, fps=features.fps, format=video_format, audio=audio) as writer:
        render_dance(models, reference, guidance, writer.write, seed=seed, options=options,
                     guidance_scale=guidance_scale, control=control)
    return str(writer.path)
