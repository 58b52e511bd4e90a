"""Load Motion, Render Pose Maps, Save Motion: SMPL dances in and out of the graph, and Champ's maps from them."""
from __future__ import annotations

import os

from comfy_api.latest import io, ui

from ..m2penc.body import make_body
from ..m2penc.errors import InputError
from ..m2penc.motion import SMPLMotion, load_motion, save_motion
from ..m2penc.pose.pose_keypoint import keypoints_to_pose_keypoint
from ..m2penc.render.pose_maps import motion_camera, render_pose_maps
from ..m2penc.timeline import DEFAULT_FPS
from . import _comfy
from .types import Motion, PoseKeypoint
from .widgets import check_size, require_size, size_inputs

CATEGORY = "M2PDance/motion"
MOTION_EXTENSIONS = (".pkl", ".npz", ".bvh")
SAVE_FORMATS = ("npz", "bvh")
BODIES = ("open body (no files)", "SMPL (models/smpl)")
#: Frames rendered per batch (bounds memory; one progress tick each).
RENDER_BATCH = 8
#: Largest map batch built in memory (five float32 IMAGE batches), in bytes.
MAX_RENDER_BYTES = 6 * 1024**3


def _motion_files() -> list[str]:
    import folder_paths

    root = folder_paths.get_input_directory()
    if not os.path.isdir(root):
        return []
    return sorted(f for f in os.listdir(root) if f.lower().endswith(MOTION_EXTENSIONS)
                  and os.path.isfile(os.path.join(root, f)))


def _input_file(name: str) -> str:
    """The input-folder file ``name``, refusing unsafe names (the one check, :mod:`m2penc.safe_names`)."""
    return _comfy.input_file(name, "motion file")


class LoadMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceLoadMotion",
            display_name="Load Motion",
            category=CATEGORY,
            description="An SMPL dance from ComfyUI's input folder: AIST++ or EDGE .pkl (read without running "
                        "any code), our .npz, or a BVH from Blender/Maya.",
            inputs=[io.Combo.Input("motion", options=_motion_files(), upload=io.UploadType.model,
                                   tooltip="A .pkl / .npz / .bvh motion file in ComfyUI's input folder.")],
            outputs=[Motion.Output(display_name="motion", tooltip="SMPL poses (frames, 24, 3), root path, fps."),
                     io.Float.Output(display_name="fps", tooltip="The motion's own frame rate.")],
        )

    @classmethod
    def validate_inputs(cls, motion) -> bool | str:
        if motion is None:                                # linked: checked when it runs
            return True
        try:
            path = _input_file(motion)
        except InputError as e:
            return str(e)
        return True if os.path.isfile(path) else f"motion file not found in the input folder: {motion!r}"

    @classmethod
    def fingerprint_inputs(cls, motion) -> str:
        try:
            path = _input_file(motion)
        except InputError:
            return f"unsafe:{motion!r}"
        stat = os.stat(path) if os.path.isfile(path) else None
        return f"{motion}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}"

    @classmethod
    def execute(cls, motion) -> io.NodeOutput:
        loaded = load_motion(_input_file(motion))
        return io.NodeOutput(loaded, float(loaded.fps))


class RenderPoseMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceRenderPoseMaps",
            display_name="Render Pose Maps",
            category=CATEGORY,
            description="Render a dance as Champ sees it: depth, normal, semantic and DWPose skeleton images, the "
                        "body mask and OpenPose keypoints, from one fixed camera framing the whole dance.",
            inputs=[
                Motion.Input("motion", tooltip="From Load Motion (or a motion generator)."),
                io.Combo.Input("body", options=list(BODIES), default=BODIES[0],
                               tooltip="The open body needs no files; SMPL needs your licensed SMPL_NEUTRAL file "
                                       "in models/smpl."),
                *size_inputs(),
                io.Float.Input("fps", default=DEFAULT_FPS, min=1.0, max=120.0, step=0.5,
                               tooltip="Frame rate of the maps (the motion is resampled to it)."),
            ],
            outputs=[io.Image.Output(display_name="depth", tooltip="Depth: nearest 255, farthest and background 0."),
                     io.Image.Output(display_name="normal", tooltip="Camera-space normals, background black."),
                     io.Image.Output(display_name="semantic", tooltip="SMPL part colours (viridis), background black."),
                     io.Image.Output(display_name="skeleton", tooltip="DWPose-style skeleton on black."),
                     io.Mask.Output(display_name="mask", tooltip="Body silhouette."),
                     PoseKeypoint.Output(display_name="pose_keypoint", tooltip="OpenPose-18 keypoints, pixels."),
                     io.Float.Output(display_name="fps", tooltip="Frame rate of the maps.")],
        )

    @classmethod
    def validate_inputs(cls, width, height) -> bool | str:
        return check_size(width, height)

    @classmethod
    def execute(cls, motion: SMPLMotion, body, width, height, fps) -> io.NodeOutput:
        require_size(width, height)
        motion = motion.to_up_axis("y").resample(fps)
        if motion.num_frames * width * height * 13 * 4 > MAX_RENDER_BYTES:
            raise InputError(f"{motion.num_frames} frames of maps at {width}x{height} would need "
                             f"{motion.num_frames * width * height * 52 / 1024**3:.1f} GB; shorten the motion "
                             "or lower width/height")
        smpl = _comfy.model_path("smpl", "SMPL_NEUTRAL.pkl") if body == BODIES[1] else None
        model = make_body("smpl" if smpl else "open", smpl_path=smpl, device=_comfy.device())
        poses, trans = motion.to_torch()
        camera = motion_camera(model, poses, trans, width, height)
        maps = render_pose_maps(model, poses, trans, camera, width, height, batch_size=RENDER_BATCH,
                                control=_comfy.run_control())
        pose = keypoints_to_pose_keypoint(maps["keypoints"], width, height)
        return io.NodeOutput(maps["depth"], maps["normal"], maps["semantic"], maps["skeleton"], maps["mask"],
                             pose, float(fps))


class SaveMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceSaveMotion",
            display_name="Save Motion",
            category=CATEGORY,
            description="Write the dance to ComfyUI's output folder: .npz (exact) or .bvh for Blender, Maya and "
                        "game engines (centimetres, y up; import with scale 0.01 in Blender).",
            inputs=[Motion.Input("motion", tooltip="The dance to save."),
                    io.Combo.Input("format", options=list(SAVE_FORMATS), default="bvh",
                                   tooltip="bvh for animation tools, npz to load it back exactly."),
                    io.String.Input("filename_prefix", default="m2pdance/motion",
                                    tooltip="Prefix inside the output folder; a counter is appended.")],
            outputs=[io.String.Output(display_name="filename", tooltip="Path of the written file.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, motion: SMPLMotion, format, filename_prefix) -> io.NodeOutput:
        import folder_paths

        if format not in SAVE_FORMATS:
            raise InputError(f"format must be one of {SAVE_FORMATS}, got {format!r}")
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory())
        path = save_motion(motion, os.path.join(folder, f"{name}_{counter:05}_.{format}"))
        return io.NodeOutput(str(path), ui=ui.PreviewText(f"saved {os.path.basename(path)} "
                                                          f"({motion.num_frames} frames at {motion.fps:g} fps)"))
