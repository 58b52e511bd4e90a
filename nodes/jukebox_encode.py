"""Load Jukebox and Jukebox Encode: music -> per-frame music features (cached on disk)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from comfy_api.latest import io

from ..m2penc.audio.cache import FeatureCache
from ..m2penc.audio.features import extract_music_features
from ..m2penc.jukebox.config import DEFAULT_LAYER
from ..m2penc.timeline import DEFAULT_FPS
from ..weights_manifest import entry
from . import _comfy
from .widgets import dtype_input
from .types import JukeboxModel, MusicFeatures

CATEGORY = "M2PDance/music"
#: Backend choice shown to users -> (feature kind, Jukebox backend).
BACKENDS = {
    "light (librosa, 35-d, CPU)": ("baseline", "auto"),
    "jukebox (4800-d, built in)": ("jukebox", "own"),
    "jukebox (4800-d, jukemirlib)": ("jukebox", "jukemirlib"),
}
JUKEBOX_LAYERS = 72  # depth of the 5B top-level prior


@dataclass(frozen=True)
class JukeboxHandle:
    """What Load Jukebox passes on: the checkpoint paths and where to run (loaded on first use)."""

    vqvae_path: str
    prior_path: str
    device: torch.device
    dtype: torch.dtype


def feature_cache() -> FeatureCache:
    """The on-disk feature cache ($M2PDANCE_CACHE_DIR, else ~/.cache/m2pdance/music_features)."""
    return FeatureCache()


#: Jukebox's release is ``*.pth.tar``; converted files are .safetensors (or .pth).
JUKEBOX_EXTENSIONS = (".tar", ".safetensors", ".pth")


def jukebox_choices(files: list[str], role: str, default: str) -> tuple[list[str], str | None]:
    """(options, default) of one Load Jukebox dropdown, by file name alone (no file is opened).

    ``role`` is ``"vqvae"`` or ``"prior"``: files whose base name contains it come first, then files
    that name neither role (a renamed conversion may be either); files naming the *other* role are
    left out. The default is the manifest's file name when present, else the first option, so the
    default is always one of the options.
    """
    other = "prior" if role == "vqvae" else "vqvae"
    base = {f: f.rsplit("/", 1)[-1].lower() for f in files}
    named = [f for f in files if role in base[f]]
    neither = [f for f in files if role not in base[f] and other not in base[f]]
    options = named + neither
    return options, (default if default in options else (options[0] if options else None))


class LoadJukebox(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = _comfy.model_files("jukebox", JUKEBOX_EXTENSIONS)
        vqvaes, vqvae_default = jukebox_choices(files, "vqvae", entry("jukebox_vqvae").filename)
        priors, prior_default = jukebox_choices(files, "prior", entry("jukebox_prior_5b").filename)
        return io.Schema(
            node_id="M2PDanceLoadJukebox",
            display_name="Load Jukebox",
            category=CATEGORY,
            description="OpenAI Jukebox 5B (VQ-VAE + top-level prior) from models/jukebox, for 4800-d music "
                        "features. Only the prior layers up to the chosen one are loaded.",
            inputs=[
                io.Combo.Input("vqvae", options=vqvaes, default=vqvae_default,
                               tooltip="vqvae.pth.tar (or a converted .safetensors) in models/jukebox."),
                io.Combo.Input("prior", options=priors, default=prior_default,
                               tooltip="prior_level_2.pth.tar (5B top-level prior, ~10 GB) in models/jukebox."),
                dtype_input(),
            ],
            outputs=[JukeboxModel.Output(display_name="jukebox", tooltip="The Jukebox files and device (loaded on first use), for Jukebox Encode or Music to Motion (EDGE).")],
        )

    @classmethod
    def execute(cls, vqvae, prior, dtype) -> io.NodeOutput:
        return io.NodeOutput(JukeboxHandle(
            _comfy.model_path("jukebox", vqvae, entry("jukebox_vqvae").hint()),
            _comfy.model_path("jukebox", prior, entry("jukebox_prior_5b").hint()),
            _comfy.device(), _comfy.dtype(dtype)))


class JukeboxEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceJukeboxEncode",
            display_name="Jukebox Encode",
            category=CATEGORY,
            description="Per-video-frame music features: Jukebox 5B activations (the paper) or EDGE's light "
                        "35-d librosa set. Results are cached on disk by audio content, so swapping the "
                        "reference photo never recomputes them.",
            inputs=[
                io.Audio.Input("music", tooltip="The music (from Load Music)."),
                io.Combo.Input("backend", options=list(BACKENDS), default=next(iter(BACKENDS)),
                               tooltip="light: fast, CPU, needs no weights. jukebox: the paper's 4800-d "
                                       "features; needs Load Jukebox (built in) or jukemirlib."),
                io.Int.Input("layer", default=DEFAULT_LAYER, min=1, max=JUKEBOX_LAYERS,
                             tooltip="Jukebox prior layer (EDGE uses 66; jukemirlib's default is 36)."),
                io.Int.Input("fps", default=int(DEFAULT_FPS), min=1, max=60,
                             tooltip="Video frame rate; one feature row per frame (paper: 15)."),
                JukeboxModel.Input("jukebox", optional=True, tooltip="From Load Jukebox (jukebox backends)."),
            ],
            outputs=[MusicFeatures.Output(display_name="music_features", tooltip="One feature row per video frame (35-d light or 4800-d Jukebox), for M2PEnc Guidance.")],
        )

    @classmethod
    def execute(cls, music, backend, layer, fps, jukebox=None) -> io.NodeOutput:
        kind, jukebox_backend = BACKENDS[backend]
        if kind == "jukebox" and jukebox is None:  # both backends read the files Load Jukebox names
            raise ValueError(f"the {backend} backend needs the Jukebox weights: connect a "
                             "'Load Jukebox' node to the jukebox input, or pick the light backend")
        options = {}
        if jukebox is not None:
            options = dict(vqvae_path=jukebox.vqvae_path, prior_path=jukebox.prior_path,
                           device=jukebox.device, dtype=jukebox.dtype)
        features = extract_music_features(music, kind=kind, fps=float(fps), layer=layer,
                                          jukebox_backend=jukebox_backend, cache=feature_cache(),
                                          control=_comfy.run_control(), **options)
        return io.NodeOutput(features)
