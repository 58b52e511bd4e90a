"""Music file + photo file -> dance video file: the whole pipeline without ComfyUI, streaming.

The named steps, in order (each is one call into a lower layer):

1. :func:`load_music_features` -- decode and trim the music, extract the features M2PEnc reads;
2. load M2PEnc and Champ; :func:`encode_photo` -- the reference photo through Champ's
   ReferenceNet, once;
3. :class:`..encoder.streaming.M2PEncGuidance` -- pose guidance, computed per segment;
4. :func:`..champ.long_video.render_champ_video` -- segments denoised and decoded straight into
   the :class:`..video.VideoWriter`, with the music muxed in.

Every decoded chunk goes to the writer (frames never pile up in RAM), which is what a
minutes-long dance at 512 px needs; the ComfyUI sampler node, by contrast, returns the frames as
one IMAGE batch as ComfyUI requires.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .audio.features import extract_music_features
from .audio.featureset import MusicFeatures
from .audio.io import load_audio
from .champ import ChampModels, ReferenceState, encode_reference, load_champ_files
from .champ.long_video import render_champ_video
from .champ.sampler import CHAMP_GUIDANCE_SCALE
from .device import resolve_device, resolve_dtype
from .encoder import M2PEnc, load_m2penc
from .encoder.streaming import M2PEncGuidance
from .jukebox import DEFAULT_LAYER
from .progress import NO_CONTROL, RunControl
from .reference_image import check_photo_file, load_photo, prepare_reference
from .sampling import LongVideoOptions
from .sampling.plan import DEFAULT_SEGMENT_SECONDS, segment_frames_for
from .video import VideoWriter

PathLike = Union[str, Path]


@dataclass(frozen=True)
class DanceWeights:
    """The weights files of one run (Jukebox files only for jukebox-feature M2PEnc models)."""

    m2penc: PathLike
    champ: PathLike
    vae: PathLike
    image_encoder: PathLike
    vqvae: Optional[PathLike] = None
    prior: Optional[PathLike] = None


@dataclass(frozen=True)
class DanceOptions:
    """How to make the video. ``sampling.segment_frames`` is derived from ``segment_seconds``.

    Attributes:
        start, duration: the part of the music to dance to, in seconds (``None``: to the end).
        width, height: video size in pixels (multiples of 8).
        seed: the video's seed (each segment's noise derives from it).
        feature_kind: override the music features (default: what the M2PEnc file records).
        layer: Jukebox prior layer for jukebox features (EDGE's 66).
        device, dtype: ``"auto"`` picks the best available.
    """

    start: float = 0.0
    duration: Optional[float] = None
    width: int = 512
    height: int = 512
    seed: int = 0
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    sampling: LongVideoOptions = LongVideoOptions()
    guidance_scale: float = CHAMP_GUIDANCE_SCALE
    feature_kind: Optional[str] = None
    layer: int = DEFAULT_LAYER
    video_format: str = "mp4"
    device: str = "auto"
    dtype: str = "auto"


def load_music_features(music: PathLike, encoder: M2PEnc, weights: DanceWeights, options: DanceOptions,
                        device: torch.device, dtype: torch.dtype,
                        control: RunControl = NO_CONTROL) -> tuple[dict[str, Any], MusicFeatures]:
    """The trimmed music (AUDIO dict) and its features ``(N, D)`` at the encoder's fps."""
    audio = load_audio(music, start=options.start, duration=options.duration)
    features = extract_music_features(audio, kind=options.feature_kind or encoder.config.feature_kind,
                                      fps=encoder.config.fps, layer=options.layer, vqvae_path=weights.vqvae,
                                      prior_path=weights.prior, device=device, dtype=dtype, control=control)
    encoder.check_music(features)
    return audio, features


def encode_photo(models: ChampModels, photo: PathLike, width: int, height: int) -> ReferenceState:
    """The reference photo, centre-cropped to ``width x height``, through Champ's reference path."""
    return encode_reference(models, prepare_reference(load_photo(photo), height, width))


def make_dance_video(music: PathLike, photo: PathLike, out: PathLike, weights: DanceWeights,
                     options: DanceOptions = DanceOptions(), control: RunControl = NO_CONTROL) -> str:
    """Music file + photo file -> dance video file at ``out``; returns its path.

    Memory stays flat however long the song: guidance is computed per segment and decoded
    frames are written as they come.
    """
    check_photo_file(photo)  # a bad photo fails in the first second, not after the models load
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    encoder = load_m2penc(weights.m2penc, device=device, dtype=dtype)
    audio, features = load_music_features(music, encoder, weights, options, device, dtype, control)
    models = load_champ_files(weights.champ, weights.vae, weights.image_encoder, device=device, dtype=dtype)
    reference = encode_photo(models, photo, options.width, options.height)
    guidance = M2PEncGuidance(encoder, features.features, fps=features.fps)
    sampling = dataclasses.replace(options.sampling,
                                   segment_frames=segment_frames_for(options.segment_seconds, features.fps))
    with VideoWriter(out, fps=features.fps, format=options.video_format, audio=audio) as writer:
        render_champ_video(models, reference, guidance, writer.write, seed=options.seed, options=sampling,
                           guidance_scale=options.guidance_scale, control=control)
    return str(writer.path)
