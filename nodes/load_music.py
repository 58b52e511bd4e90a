"""Load Music: a music file from ComfyUI's input folder (with upload) or an AUDIO input, trimmed."""
from __future__ import annotations

import hashlib
import os

from comfy_api.latest import io

from ..m2penc.audio.io import MAX_AUDIO_SECONDS, load_audio, trim_audio, validate_audio
from ..m2penc.errors import InputError
from . import _comfy

CATEGORY = "M2PDance/music"
#: The frontend's audio player widget. ComfyUI's frontend gives an ``audio_upload`` combo its upload
#: button only when the combo is a required input named ``audio`` and the node has this widget.
AudioPlayer = io.Custom("AUDIO_UI")


def _input_audio_files() -> list[str]:
    import folder_paths

    root = folder_paths.get_input_directory()
    files = [f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f))] if os.path.isdir(root) else []
    return sorted(folder_paths.filter_files_content_types(files, ["audio", "video"]))


class LoadMusic(io.ComfyNode):
    """Decode music (wav/flac/mp3/ogg/m4a) into AUDIO, keeping only [start, start + duration)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceLoadMusic",
            display_name="Load Music",
            category=CATEGORY,
            description="Load the music to dance to. The dance is generated for exactly this window.",
            inputs=[
                io.Combo.Input("audio", options=_input_audio_files(), upload=io.UploadType.audio,
                               tooltip="A music file in ComfyUI's input folder (upload one with the button)."),
                io.Float.Input("start", default=0.0, min=0.0, max=MAX_AUDIO_SECONDS, step=0.1,
                               tooltip="Seconds to skip at the beginning of the music."),
                io.Float.Input("duration", default=0.0, min=0.0, max=MAX_AUDIO_SECONDS, step=0.1,
                               tooltip="Seconds to keep after start; 0 keeps the rest of the music."),
                io.Audio.Input("audio_in", optional=True,
                               tooltip="Use this AUDIO (from another node) instead of the file; start and "
                                       "duration still apply."),
                AudioPlayer.Input("audioUI", optional=True, tooltip="Player for the chosen music file."),
            ],
            outputs=[io.Audio.Output(display_name="music", tooltip="The music window [start, start + duration) "
                                                                         "as ComfyUI AUDIO (waveform, sample rate).")],
        )

    @classmethod
    def validate_inputs(cls, audio) -> bool | str:
        """Only ``audio`` is checked here: ComfyUI repeats a custom message once per argument this
        method takes, and checks start/duration against their ranges itself. Unsafe names are
        refused before anything reads the file (``fingerprint_inputs`` runs after validation)."""
        if not audio:
            return True
        try:
            path = _comfy.input_file(audio, "music file")
        except InputError as e:
            return str(e)
        if not os.path.isfile(path):
            return f"music file not found in the input folder: {audio!r}; upload it or pick another file"
        return True

    @classmethod
    def fingerprint_inputs(cls, audio, start, duration, **_unused) -> str:
        """Hash of the file's bytes, so replacing the file under the same name re-runs the graph.
        An unsafe name is never opened (validation has refused it already)."""
        digest = hashlib.sha256()
        try:
            path = _comfy.input_file(audio, "music file") if audio else ""
        except InputError:
            path = ""
        if path and os.path.isfile(path):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return f"{digest.hexdigest()}:{start}:{duration}"

    @classmethod
    def execute(cls, audio, start, duration, audio_in=None, audioUI=None) -> io.NodeOutput:
        keep = duration if duration > 0 else None
        if audio_in is not None:
            return io.NodeOutput(trim_audio(validate_audio(audio_in), start, keep))
        return io.NodeOutput(load_audio(_comfy.input_file(audio, "music file"), start=start, duration=keep))
