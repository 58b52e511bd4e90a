"""Load M2PEnc and M2PEnc Guidance: music features -> pose guidance, keypoints, skeleton preview."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..m2penc.encoder import load_m2penc
from ..m2penc.errors import InputError
from ..m2penc.encoder.streaming import M2PEncGuidance
from ..m2penc.pose.heatmaps import heatmap_to_canvas, heatmaps_to_keypoints
from ..m2penc.pose.pose_keypoint import keypoints_to_pose_keypoint
from ..m2penc.pose.render import render_pose_keypoint
from ..weights_manifest import entry
from . import _comfy
from .widgets import check_size, require_size, dtype_input, size_inputs
from .types import M2PEncModel, MusicFeatures, PoseGuidance, PoseKeypoint

CATEGORY = "M2PDance/pose"
#: M2PEnc files are our self-describing safetensors (the config lives in their metadata).
M2PENC_EXTENSIONS = (".safetensors",)
#: Largest skeleton preview batch built in memory (float32 IMAGE), in bytes.
MAX_PREVIEW_BYTES = 4 * 1024**3


class LoadM2PEnc(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceLoadM2PEnc",
            display_name="Load M2PEnc",
            category=CATEGORY,
            description="The Music-to-Pose Encoder from models/m2penc. The file records which music "
                        "features (jukebox or light) and frame rate it was trained on.",
            inputs=[
                io.Combo.Input("m2penc", options=_comfy.model_files("m2penc", M2PENC_EXTENSIONS),
                               tooltip="M2PEnc weights (.safetensors written by m2pdance-train)."),
                dtype_input(),
            ],
            outputs=[M2PEncModel.Output(display_name="m2penc", tooltip="The Music-to-Pose Encoder with its feature kind and frame rate, for M2PEnc Guidance.")],
        )

    @classmethod
    def execute(cls, m2penc, dtype) -> io.NodeOutput:
        path = _comfy.model_path("m2penc", m2penc, entry("m2penc_paper").hint())
        return io.NodeOutput(load_m2penc(path, device=_comfy.device(), dtype=_comfy.dtype(dtype)))


def _skeleton_frames(source: M2PEncGuidance, width: int, height: int, control) -> torch.Tensor:
    """Keypoints of every frame ``(N, K, 3)`` in canvas pixels, from cross-faded heatmaps."""
    points = []
    for heatmaps in source.keypoint_heatmaps(control):
        kp = heatmaps_to_keypoints(heatmaps.cpu())
        points.append(heatmap_to_canvas(kp, tuple(heatmaps.shape[-2:]), (height, width)))
    return torch.cat(points)


class M2PEncGuidanceNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceM2PEncGuidance",
            display_name="M2PEnc Guidance",
            category=CATEGORY,
            description="Music features -> pose guidance for the dance sampler, plus the predicted "
                        "keypoints (POSE_KEYPOINT) and an OpenPose skeleton preview. Guidance is "
                        "computed window by window when the sampler needs it, so long songs fit in memory.",
            inputs=[
                MusicFeatures.Input("music_features", tooltip="From Jukebox Encode."),
                M2PEncModel.Input("m2penc", tooltip="From Load M2PEnc."),
                *size_inputs(),
            ],
            outputs=[PoseGuidance.Output(display_name="pose_guidance", tooltip="Pose guidance for the Segmented Dance Sampler, computed window by window."),
                     PoseKeypoint.Output(display_name="pose_keypoint", tooltip="Predicted OpenPose keypoints per frame (the layout core's SDPose nodes read)."),
                     io.Image.Output(display_name="skeleton", tooltip="OpenPose skeleton preview, one image per frame."),
                     io.Float.Output(display_name="fps", tooltip="Frame rate of the guidance (the features').")],
        )

    @classmethod
    def validate_inputs(cls, width, height) -> bool | str:
        return check_size(width, height)

    @classmethod
    def execute(cls, music_features, m2penc, width, height) -> io.NodeOutput:
        require_size(width, height)
        m2penc.check_music(music_features)
        frames = music_features.num_frames
        if frames * width * height * 3 * 4 > MAX_PREVIEW_BYTES:
            raise InputError(f"the skeleton preview of {frames} frames at {width}x{height} would need "
                             f"{frames * width * height * 12 / 1024**3:.1f} GB; shorten the music or lower width/height")
        source = M2PEncGuidance(m2penc, music_features.features, fps=music_features.fps)
        points = _skeleton_frames(source, width, height, _comfy.run_control())
        pose = keypoints_to_pose_keypoint(points, width, height)
        return io.NodeOutput(source, pose, render_pose_keypoint(pose), float(music_features.fps))
