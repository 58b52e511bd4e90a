"""Long-video diffusion sampling, model-agnostic: windows, segments, joins, noise, the latent loop.

* :mod:`.windows` -- the one windowing module (window starts, cross-fades, context windows,
  averaged prediction), also used by Jukebox's long-music windows and M2PEnc's streaming guidance.
* :mod:`.plan` / :mod:`.options` -- which frames each 5-second segment generates (paper §3.4).
* :mod:`.segments` / :mod:`.conditioning` / :mod:`.noise` -- the segment loop that joins segments
  by in-painting the previous segment's tail frames; per-segment seeded noise.
* :mod:`.overlap` -- the alternative join: whole-video context-window averaging.
* :mod:`.long_video` -- plan -> sample -> decode in chunks -> sink (usually the video writer).
* :mod:`.guidance` -- the guidance contract the sampler reads (:class:`GuidanceSource`).

A concrete model plugs in as a :data:`NoisePredictor` (Champ: :mod:`..champ.long_video`).
"""
from .guidance import GuidanceFn, GuidanceSource, guidance_from_tensor
from .long_video import FrameSink, LatentDecoder, plan_for, render_long_video
from .options import JOIN_MODES, LongVideoOptions
from .overlap import iter_averaged_latents, sample_whole_video
from .plan import Segment, plan_segments, segment_frames_for
from .segments import SamplingContext, SegmentLatents, iter_segment_latents, sample_segment
from .windows import (NoisePredictor, blend_weights, context_windows, crossfade_weights, window_starts,
                      windowed_prediction)

__all__ = [
    "GuidanceFn", "GuidanceSource", "guidance_from_tensor",
    "FrameSink", "LatentDecoder", "plan_for", "render_long_video",
    "JOIN_MODES", "LongVideoOptions", "iter_averaged_latents", "sample_whole_video",
    "Segment", "plan_segments", "segment_frames_for",
    "SamplingContext", "SegmentLatents", "iter_segment_latents", "sample_segment",
    "NoisePredictor", "blend_weights", "context_windows", "crossfade_weights", "window_starts", "windowed_prediction",
]
