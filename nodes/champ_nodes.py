"""Load Champ, Champ Reference U-Net, and Champ's original pose-driven guidance."""
from __future__ import annotations

import os
from dataclasses import dataclass

from comfy_api.latest import io
from ..m2penc.timeline import DEFAULT_FPS

from ..m2penc.champ import ChampModels, ReferenceState, encode_reference, load_champ_files
from ..m2penc.champ.pose_map_guidance import PoseMapGuidance
from ..m2penc.errors import WeightsNotFoundError
from ..m2penc.reference_image import prepare_reference
from ..weights_manifest import entry
from . import _comfy
from .widgets import check_size, require_size, dtype_input, size_inputs
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


#: Champ's release is .pth; ours are .safetensors; diffusers folders may hold .bin.
CHAMP_EXTENSIONS = (".safetensors", ".pth", ".bin")
#: The VAE and CLIP image encoder: safetensors or torch files (ComfyUI's own folders).
COMPONENT_EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
#: Files that must sit beside ``denoising_unet.*``: manifest id per file stem.
CHAMP_SIBLINGS = {"reference_unet": "champ_reference_unet", "motion_module": "champ_motion_module"}


def _denoising_unet_files() -> list[str]:
    return [f for f in _comfy.model_files("champ", CHAMP_EXTENSIONS)
            if f.rsplit("/", 1)[-1].startswith("denoising_unet.")]


def _check_siblings(unet_path: str) -> None:
    """Refuse early, naming the manifest id, when a file Champ reads beside ``denoising_unet`` is missing.

    Our own files (smoke weights, ``save_champ_models``) have no motion module file; Champ's
    release (``.pth``) needs both.
    """
    folder = os.path.dirname(unet_path)
    ours = unet_path.endswith(".safetensors")
    for stem, entry_id in CHAMP_SIBLINGS.items():
        if ours and stem == "motion_module":
            continue
        if not any(os.path.isfile(os.path.join(folder, stem + ext)) for ext in CHAMP_EXTENSIONS):
            e = entry(entry_id)
            raise WeightsNotFoundError(
                f"{stem}{os.path.splitext(unet_path)[1]} is missing beside {os.path.basename(unet_path)} in {folder}: "
                f"Champ reads it from the same folder. Manifest entry '{entry_id}' ({e.role}); "
                f"`m2pdance weights list` shows where to get it"
                + ("; for the tiny smoke files run `m2pdance weights smoke`" if ours else "") + ".")


class LoadChamp(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceLoadChamp",
            display_name="Load Champ",
            category=CATEGORY,
            description="Champ's ReferenceNet, denoising 3D U-Net (+ motion modules) and guidance encoders from "
                        "models/champ, with the SD-1.5 VAE (models/vae) and the CLIP image encoder (models/clip_vision).",
            inputs=[
                io.Combo.Input("champ", options=_denoising_unet_files(),
                               tooltip="The denoising_unet file; reference_unet, motion_module and "
                                       "guidance_encoder_* are read from the same folder."),
                io.Combo.Input("vae", options=_comfy.model_files("vae", COMPONENT_EXTENSIONS),
                               tooltip="sd-vae-ft-mse (SD-1.5 VAE) in models/vae."),
                io.Combo.Input("clip_vision", options=_comfy.model_files("clip_vision", COMPONENT_EXTENSIONS),
                               tooltip="The sd-image-variations CLIP image encoder in models/clip_vision."),
                dtype_input(),
            ],
            outputs=[ChampModel.Output(display_name="champ", tooltip="Champ's U-Nets, guidance encoders, VAE and CLIP image encoder, for Champ Reference U-Net, Champ Pose Guidance and the sampler.")],
        )

    @classmethod
    def execute(cls, champ, vae, clip_vision, dtype) -> io.NodeOutput:
        unet = _comfy.model_path("champ", champ, entry("champ_denoising_unet").hint())
        _check_siblings(unet)
        return io.NodeOutput(load_champ_files(
            unet,
            _comfy.model_path("vae", vae, entry("vae_sd_vae_ft_mse").hint()),
            _comfy.model_path("clip_vision", clip_vision, entry("clip_image_encoder").hint()),
            device=_comfy.device(), dtype=_comfy.dtype(dtype)))


class ChampReferenceUNet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceChampReference",
            display_name="Champ Reference U-Net",
            category=CATEGORY,
            description="Encode the reference photo once per video: VAE latent, CLIP image embedding and the "
                        "ReferenceNet's attention bank. Any size, RGBA or grayscale photo works: it is "
                        "centre-cropped to the video's aspect ratio, never stretched.",
            inputs=[
                io.Image.Input("reference", tooltip="Photo of the person who will dance."),
                ChampModel.Input("champ", tooltip="From Load Champ."),
                *size_inputs(),
            ],
            outputs=[Reference.Output(display_name="reference", tooltip="The encoded photo (latent, CLIP embedding, ReferenceNet bank) at this video size, for the sampler.")],
        )

    @classmethod
    def validate_inputs(cls, width, height) -> bool | str:
        return check_size(width, height)

    @classmethod
    def execute(cls, reference, champ: ChampModels, width, height) -> io.NodeOutput:
        require_size(width, height)
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
            display_name="Champ Pose Guidance",
            category=CATEGORY,
            description="Champ's original pose-driven mode: depth / normal / semantic / skeleton image batches "
                        "-> pose guidance for the dance sampler (encoders summed, computed per segment).",
            inputs=[ChampModel.Input("champ", tooltip="From Load Champ (its guidance encoders are used)."),
                    io.Float.Input("fps", default=DEFAULT_FPS, min=1.0, max=120.0, step=0.5,
                                   tooltip="Frame rate of the guidance maps."),
                    *maps],
            outputs=[PoseGuidance.Output(display_name="pose_guidance", tooltip="Summed guidance-encoder features per frame, computed per segment by the sampler.")],
        )

    @classmethod
    def execute(cls, champ: ChampModels, fps, **maps) -> io.NodeOutput:
        given = {name: image for name, image in maps.items() if image is not None}
        source = PoseMapGuidance(champ.guidance_encoders, given, fps, chunk_size=POSE_CHUNK)
        return io.NodeOutput(source)
