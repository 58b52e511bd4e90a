"""Motion sources: Load EDGE, Music to Motion (EDGE), Beat Choreographer -> MOTION for Render Pose Maps."""
from __future__ import annotations

from comfy_api.latest import io

from ..m2penc.audio.edge_slices import edge_music_windows
from ..m2penc.audio.rhythm import music_choreography
from ..m2penc.audio.io import trim_audio, validate_audio
from ..m2penc.errors import InputError
from ..m2penc.jukebox.config import DEFAULT_LAYER
from ..m2penc.motion.edge.checkpoint import load_edge
from ..m2penc.motion.edge.generate import edge_motion, edge_motion_from_windows
from ..m2penc.timeline import DEFAULT_FPS
from ..weights_manifest import entry
from . import _comfy
from .types import EDGEModel, JukeboxModel, Motion, MusicFeatures
from .widgets import dtype_input

CATEGORY = "M2PDance/motion"
#: EDGE's release is ``checkpoint.pt`` (torch also writes .pth/.ckpt); ours are .safetensors.
EDGE_EXTENSIONS = (".safetensors", ".pt", ".pth", ".ckpt")
#: Longest music a motion source accepts (seconds); EDGE takes ~minutes per minute of music on CPU.
MAX_SECONDS = 600.0


class LoadEDGE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceLoadEDGE",
            display_name="Load EDGE",
            category=CATEGORY,
            description="EDGE (Tseng et al., CVPR 2023), the paper's music-to-dance teacher, from models/edge: "
                        "its released checkpoint.pt (read without running any code) or a converted .safetensors.",
            inputs=[io.Combo.Input("edge", options=_comfy.model_files("edge", EDGE_EXTENSIONS),
                                   tooltip="EDGE weights: checkpoint.pt from EDGE's release, or our .safetensors."),
                    dtype_input()],
            outputs=[EDGEModel.Output(display_name="edge", tooltip="EDGE denoiser, normalizer and config.")],
        )

    @classmethod
    def execute(cls, edge, dtype) -> io.NodeOutput:
        path = _comfy.model_path("edge", edge, entry("edge_checkpoint").hint())
        return io.NodeOutput(load_edge(path, device=_comfy.device(), dtype=_comfy.dtype(dtype)))


class MusicToMotionEDGE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceMusicToMotionEDGE",
            display_name="Music to Motion (EDGE)",
            category=CATEGORY,
            description="Music -> 3D SMPL dance with EDGE: 5 s windows every 2.5 s, denoised together with "
                        "in-painted overlaps (50 DDIM steps), stitched. The jukebox checkpoint needs Load Jukebox.",
            inputs=[io.Audio.Input("music", optional=True,
                                   tooltip="From Load Music: each 5 s slice is analysed on its own, as EDGE does."),
                    EDGEModel.Input("edge", tooltip="From Load EDGE."),
                    io.Float.Input("seconds", default=0.0, min=0.0, max=MAX_SECONDS, step=0.5,
                                   tooltip="Length of the dance in seconds; 0 = the whole music."),
                    io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                                 tooltip="Same seed, same dance."),
                    io.Float.Input("guidance", default=2.0, min=0.0, max=10.0, step=0.1,
                                   tooltip="Classifier-free guidance weight (EDGE: 2)."),
                    JukeboxModel.Input("jukebox", optional=True,
                                       tooltip="From Load Jukebox; needed by EDGE's jukebox checkpoint."),
                    MusicFeatures.Input("music_features", optional=True,
                                        tooltip="Instead of music: features at 30 fps from Jukebox Encode "
                                                "(one analysis of the whole song, not EDGE's per-slice one).")],
            outputs=[Motion.Output(display_name="motion", tooltip="SMPL dance at 30 fps, z up (EDGE's frame).")],
        )

    @classmethod
    def execute(cls, edge, seconds, seed, guidance, music=None, jukebox=None, music_features=None) -> io.NodeOutput:
        control = _comfy.run_control()
        if music_features is not None:
            if not seconds and music_features.num_frames / music_features.fps > MAX_SECONDS:
                raise InputError(f"music features longer than {MAX_SECONDS:.0f} s; trim the music or set seconds")
            return io.NodeOutput(edge_motion(edge, music_features.features, seed=seed, guidance_weight=guidance,
                                             seconds=seconds or None, control=control,
                                             features_fps=music_features.fps, feature_kind=music_features.kind))
        if music is None:
            raise InputError("connect music (Load Music) or music_features (Jukebox Encode at 30 fps)")
        audio = validate_audio(music)
        if seconds > 0:
            audio = trim_audio(audio, 0.0, min(seconds, audio["waveform"].shape[-1] / audio["sample_rate"]))
        if audio["waveform"].shape[-1] / audio["sample_rate"] > MAX_SECONDS:
            raise InputError(f"music longer than {MAX_SECONDS:.0f} s; trim it in Load Music or set seconds")
        kind = edge.config.feature_kind
        extract = {}
        if kind == "jukebox":
            if jukebox is None:
                raise InputError("this EDGE checkpoint reads Jukebox features: connect Load Jukebox "
                                 f"(vqvae + prior, layer >= {DEFAULT_LAYER}) to the jukebox input")
            extract = {"layer": DEFAULT_LAYER, "extractor": jukebox}
        windows = edge_music_windows(audio, kind, fps=edge.config.fps, window_frames=edge.config.seq_len,
                                     control=control, **extract)
        motion = edge_motion_from_windows(edge, windows.features, windows.num_frames, seed=seed,
                                          guidance_weight=guidance, control=control)
        return io.NodeOutput(motion)


class BeatChoreographer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceBeatChoreographer",
            display_name="Beat Choreographer",
            category=CATEGORY,
            description="A procedural dance on the music's beats (no weights, no GPU): moves from a small library, "
                        "timed so accents land on beats. A stand-in for testing and offline use, not a learned model.",
            inputs=[io.Audio.Input("music", tooltip="From Load Music."),
                    io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                                 tooltip="Which moves are chosen."),
                    io.Float.Input("energy", default=1.0, min=0.0, max=2.0, step=0.05,
                                   tooltip="How big the moves are (1 = normal)."),
                    io.Float.Input("fps", default=DEFAULT_FPS * 2, min=1.0, max=120.0, step=0.5,
                                   tooltip="Frame rate of the motion (Render Pose Maps resamples anyway).")],
            outputs=[Motion.Output(display_name="motion", tooltip="SMPL dance, y up.")],
        )

    @classmethod
    def execute(cls, music, seed, energy, fps) -> io.NodeOutput:
        audio = validate_audio(music)
        return io.NodeOutput(music_choreography(audio, fps=fps, seed=seed, intensity=energy))
