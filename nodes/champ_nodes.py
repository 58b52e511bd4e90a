"""Load Champ, Champ Reference U-Net, and Champ's original pose-driven guidance."""
from __future__ import annotations

from dataclasses import dataclass

from comfy_api.latest import io
from ..m2penc.timeline import DEFAULT_FPS

from ..m2penc.champ import ChampModels, ReferenceState, encode_reference, load_champ_files
from ..m2penc.champ.pose_map_guidance import PoseMapGuidance
from ..m2penc.reference_image import prepare_reference
from ..weights_manifest import entry
from . import _comfy
from .widgets import check_size, dtype_input, size_inputs
from .types import ChampModel, PoseGuidance, Reference

CATEGORY = "M2PDance/champ"
GUIDANCE_INPUTS = ("depth", "normal", "semantic_map", "dwpose")
#: Frames encoded per guidance-encoder call in pose-driven mode (bounds memory).
POSE_CHUNK = 16


@dataclass(frozen=True)
class EncodedReference:
    """What Champ Reference U-Net passes on: the encoded photo and the video size it was made for."""

    state: ReferenceState
    width: int
    height: int


def _denoising_unet_files() -> list[str]:
    return [f for f in _comfy.model_files("champ") if f.rsplit("/", 1)[-1].startswith("denoising_unet.")]


class LoadChamp(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceLoadChamp",
            display_name="Load Champ (M2PDance)",
            category=CATEGORY,
            description="Champ's ReferenceNet, denoising 3D U-Net (+ motion modules) and guidance encoders from "
                        "models/champ, with the SD-1.5 VAE (models/vae) and the CLIP image encoder (models/clip_vision).",
            inputs=[
                io.Combo.Input("champ", options=_denoising_unet_files(),
                               tooltip="The denoising_unet file; reference_unet, motion_module and "
                                       "guidance_encoder_* are read from the same folder."),
                io.Combo.Input("vae", options=_comfy.model_files("vae"),
                               tooltip="sd-vae-ft-mse (SD-1.5 VAE) in models/vae."),
                io.Combo.Input("clip_vision", options=_comfy.model_files("clip_vision"),
                               tooltip="The sd-image-variations CLIP image encoder in models/clip_vision."),
                dtype_input(),
            ],
            outputs=[ChampModel.Output(display_name="champ")],
        )

    @classmethod
    def execute(cls, champ, vae, clip_vision, dtype) -> io.NodeOutput:
        return io.NodeOutput(load_champ_files(
            _comfy.model_path("champ", champ, entry("champ_denoising_unet").hint()),
            _comfy.model_path("vae", vae, entry("vae_sd_vae_ft_mse").hint()),
            _comfy.model_path("clip_vision", clip_vision, entry("clip_image_encoder").hint()),
            device=_comfy.device(), dtype=_comfy.dtype(dtype)))


class ChampReferenceUNet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceChampReference",
            display_name="Champ Reference U-Net (M2PDance)",
            category=CATEGORY,
            description="Encode the reference photo once per video: VAE latent, CLIP image embedding and the "
                        "ReferenceNet's attention bank. Any size, RGBA or grayscale photo works: it is "
                        "centre-cropped to the video's aspect ratio, never stretched.",
            inputs=[
                io.Image.Input("reference", tooltip="Photo of the person who will dance."),
                ChampModel.Input("champ", tooltip="From Load Champ."),
                *size_inputs(),
            ],
            outputs=[Reference.Output(display_name="reference")],
        )

    @classmethod
    def validate_inputs(cls, width, height) -> bool | str:
        return check_size(width, height)

    @classmethod
    def execute(cls, reference, champ: ChampModels, width, height) -> io.NodeOutput:
        photo = prepare_reference(reference, height, width)
        return io.NodeOutput(EncodedReference(encode_reference(champ, photo), width, height))


class PoseDrivenGuidance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        maps = [io.Image.Input(name, optional=True, tooltip=f"Champ {name.replace('_', ' ')} maps, one per frame "
                                                             "(rendered from SMPL, as Champ expects).")
                for name in GUIDANCE_INPUTS]
        return io.Schema(
            node_id="M2PDancePoseDrivenGuidance",
            display_name="Champ Pose Guidance (M2PDance)",
            category=CATEGORY,
            description="Champ's original pose-driven mode: depth / normal / semantic / skeleton image batches "
                        "-> pose guidance for the dance sampler (encoders summed, computed per segment).",
            inputs=[ChampModel.Input("champ", tooltip="From Load Champ (its guidance encoders are used)."),
                    io.Float.Input("fps", default=DEFAULT_FPS, min=1.0, max=120.0, step=0.5,
                                   tooltip="Frame rate of the guidance maps."),
                    *maps],
            outputs=[PoseGuidance.Output(display_name="pose_guidance")],
        )

    @classmethod
    def execute(cls, champ: ChampModels, fps, **maps) -> io.NodeOutput:
        given = {name: image for name, image in maps.items() if image is not None}
        source = PoseMapGuidance(champ.guidance_encoders, given, fps, chunk_size=POSE_CHUNK)
        return io.NodeOutput(source)
