"""Video out: segmented long-video sampling and file writing with the music muxed in.

* :func:`render_long_video` samples a video of any length segment by segment (paper §3.4: 5 s
  segments joined by noise conditioning) and streams decoded frames into a sink.
* :class:`VideoWriter` is that sink: mp4/webm/gif/PNG through PyAV, music muxed, written to a
  temporary file and renamed when complete.
* :mod:`.champ_adapter` (imported on demand: it pulls in the Champ models) plugs Champ in:
  ``render_champ_video(models, ref_state, guidance_fn, num_frames, sink, seed=...)``.
"""
from .options import JOIN_MODES, LongVideoOptions
from .plan import Segment, frames_for_duration, plan_segments, segment_frames_for
from .render import FrameSink, LatentDecoder, plan_for, render_long_video
from .segments import GuidanceFn, SamplingContext, SegmentLatents, iter_segment_latents, sample_segment
from .guidance import guidance_from_tensor
from .overlap import iter_averaged_latents, sample_whole_video
from .windows import NoisePredictor, context_windows, windowed_prediction
from .formats import FORMATS, VideoFormat, get_format
from .writer import VideoWriter, open_video_writer

__all__ = [
    "JOIN_MODES", "LongVideoOptions", "Segment", "frames_for_duration", "plan_segments", "segment_frames_for",
    "FrameSink", "LatentDecoder", "plan_for", "render_long_video",
    "GuidanceFn", "SamplingContext", "SegmentLatents", "guidance_from_tensor", "iter_segment_latents",
    "sample_segment", "iter_averaged_latents", "sample_whole_video",
    "NoisePredictor", "context_windows", "windowed_prediction",
    "FORMATS", "VideoFormat", "get_format", "VideoWriter", "open_video_writer",
]
