"""Video Combine: IMAGE frames (+ music) -> an mp4/webm/gif/PNG sequence in ComfyUI's output folder."""
from __future__ import annotations

import os
from fractions import Fraction

from comfy_api.latest import InputImpl, Types, io, ui

from ..m2penc.timeline import DEFAULT_FPS
from ..m2penc.video import FORMATS, VideoWriter
from . import _comfy

CATEGORY = "M2PDance/video"
#: Frames handed to the encoder at a time (bounds the uint8 copy made per batch).
WRITE_BATCH = 16
#: A PNG sequence's preview lists at most this many of its frames (evenly spread, first and last
#: included): the frontend fetches every listed image, and a long dance has thousands.
PREVIEW_MAX_FRAMES = 32


def _output_path(prefix: str, suffix: str) -> tuple[str, str, str]:
    """(full path, file name, subfolder) for the next free ``<prefix>_NNNNN_<suffix>``."""
    import folder_paths

    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, folder_paths.get_output_directory())
    while True:
        filename = f"{name}_{counter:05}_{suffix}"
        path = os.path.join(folder, filename)
        if not os.path.exists(path):
            return path, filename, subfolder
        counter += 1


def _preview_frames(names: list[str], limit: int = PREVIEW_MAX_FRAMES) -> list[str]:
    """At most ``limit`` of the sorted frame ``names``, evenly spread, the first and last included."""
    if len(names) <= limit:
        return list(names)
    if limit <= 1:
        return names[:1]
    picks = sorted({round(i * (len(names) - 1) / (limit - 1)) for i in range(limit)})
    return [names[i] for i in picks]


def _ui(fmt, folder, filename: str, subfolder: str) -> dict:
    """What the frontend shows, as entries ComfyUI's ``/view`` route serves.

    ``/view`` joins the output folder, ``subfolder`` and the *file* name and answers only for a
    file, so a PNG sequence lists its frame files (the folder becomes part of the subfolder) as an
    image list; a video file is shown as the video (``animated``), as core's SaveVideo does."""
    if not fmt.is_sequence:
        return ui.PreviewVideo([ui.SavedResult(filename, subfolder, io.FolderType.output)]).as_dict()
    frames_subfolder = os.path.join(subfolder, filename) if subfolder else filename
    frames = sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))
    return {"images": [ui.SavedResult(name, frames_subfolder, io.FolderType.output)
                       for name in _preview_frames(frames)]}


def _video(fmt, path: str, images, fps: float, audio):
    """The VIDEO output, a ``VideoInput`` core's video nodes take (SaveVideo, GetVideoComponents).

    mp4 and webm: the file written (it holds the music; SaveVideo copies its streams). gif (no audio,
    frame delays in 1/100 s) and png (a folder, no container): the frames, fps and music as core's
    CreateVideo makes them, so the music and the exact rate still reach core's nodes."""
    if fmt.audio_codec is not None:
        return InputImpl.VideoFromFile(str(path))
    return InputImpl.VideoFromComponents(Types.VideoComponents(images=images, audio=audio, frame_rate=Fraction(fps)))


class VideoCombine(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceVideoCombine",
            display_name="Video Combine",
            category=CATEGORY,
            description="Write frames as a video with the music muxed in (trimmed or padded to the video's "
                        "length). The file appears only when complete; a failed or cancelled run leaves nothing.",
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="Frames (from the dance sampler or any IMAGE batch)."),
                io.Float.Input("fps", default=DEFAULT_FPS, min=1.0, max=120.0, step=0.5,
                               tooltip="Frames per second; connect the sampler's fps output to keep them in sync."),
                io.Combo.Input("format", options=list(FORMATS), default="mp4",
                               tooltip="mp4 (H.264 + AAC), webm (VP9 + Opus), gif, or png (a folder of frames; "
                                       f"the node previews up to {PREVIEW_MAX_FRAMES} of them)."),
                io.Int.Input("crf", default=19, min=0, max=63,
                             tooltip="Quality for mp4/webm: lower is better and larger (H.264 takes 0-51)."),
                io.String.Input("filename_prefix", default="M2PDance/dance",
                                tooltip="Output path under ComfyUI's output folder."),
                io.Audio.Input("audio", optional=True, tooltip="Music to mux in, from its first sample."),
            ],
            outputs=[io.String.Output(display_name="filename", tooltip="Path of the written file (or frames folder) under ComfyUI's output folder."),
                     io.Video.Output(display_name="video",
                                     tooltip="For core's SaveVideo / GetVideoComponents: the file (mp4, webm), or "
                                             "the frames with fps and music (gif, png).")],
        )

    @classmethod
    def validate_inputs(cls, format, crf) -> bool | str:
        if format == "mp4" and crf is not None and crf > 51:
            return f"H.264 (mp4) takes crf 0-51, got {crf}"
        return True

    @classmethod
    def execute(cls, images, fps, format, crf, filename_prefix, audio=None) -> io.NodeOutput:
        fmt = FORMATS[format]
        path, filename, subfolder = _output_path(filename_prefix, fmt.suffix or "frames")
        control = _comfy.run_control()
        with VideoWriter(path, fps=fps, format=format, crf=crf, audio=audio) as writer:
            for start in range(0, images.shape[0], WRITE_BATCH):
                writer.write(images[start:start + WRITE_BATCH])
                control.tick("write", min(start + WRITE_BATCH, images.shape[0]), images.shape[0])
        video = _video(fmt, writer.path, images, fps, audio)
        return io.NodeOutput(os.path.join(subfolder, filename), video, ui=_ui(fmt, writer.path, filename, subfolder))
