"""Beat Alignment: how well a dance's movement pauses land on the music's beats (Bailando's BAS), with a chart."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io, ui

from ..m2penc.audio.io import validate_audio
from ..m2penc.errors import InputError
from ..m2penc.eval.beat_alignment import (
    BeatAlignment as Alignment, beat_alignment, music_beat_frames, pose_keypoint_beat_alignment,
)
from ..m2penc.eval.motion_metrics import motion_joints
from ..m2penc.eval.plots import BEAT_PLOT_SIZE, beat_alignment_plot
from ..m2penc.motion import SMPLMotion
from ..m2penc.pose.pose_keypoint import validate_pose_keypoint
from ..m2penc.timeline import frame_count
from .types import Motion, PoseKeypoint

CATEGORY = "M2PDance/eval"
#: EDGE's evaluation rate; BAS counts its tolerance (sigma^2 = 9) and smoothing (5) in frames.
DEFAULT_EVAL_FPS = 30.0
MIN_FPS, MAX_FPS = 1.0, 120.0
#: Fewest dance frames scored (the speed curve is smoothed over 5 frames each side).
MIN_FRAMES = 8
#: A dance longer than its music by more than this (seconds) is refused: most likely a wrong fps.
MAX_OVERHANG_SECONDS = 1.0


def _dance(motion, pose_keypoint, fps: float) -> tuple[np.ndarray | None, int, str]:
    """``(joints (F, 24, 3) of a motion at fps, or None for POSE_KEYPOINT; F; speed unit)``.

    Checks that exactly one dance is connected and that it is of the expected kind.
    """
    if (motion is None) == (pose_keypoint is None):
        both = "both are" if motion is not None else "neither is"
        raise InputError(f"connect exactly one dance to Beat Alignment, a MOTION (e.g. Load Motion) or a "
                         f"POSE_KEYPOINT (e.g. a pose estimator or M2PEnc Guidance); {both} connected")
    if motion is not None:
        if not isinstance(motion, SMPLMotion):
            raise InputError(f"motion must be an SMPL motion (M2P_MOTION), got {type(motion).__name__}")
        joints = motion_joints(motion, "y", fps)
        return joints, joints.shape[0], "m/s"
    validate_pose_keypoint(pose_keypoint)
    return None, len(pose_keypoint), "px/s"


class BeatAlignment(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M2PDanceBeatAlignment",
            display_name="Beat Alignment",
            category=CATEGORY,
            description="Bailando's Beat Alignment Score of a dance against its music: motion beats (pauses of "
                        "the smoothed mean joint speed) near music beats (librosa's tracker) score up to 1. "
                        "Connect a MOTION or a POSE_KEYPOINT sequence (one of the two). Shows a chart of the "
                        "speed curve, the music beats and the motion beats.",
            is_output_node=True,
            inputs=[
                io.Audio.Input("music", tooltip="The music the dance was made for (from Load Music)."),
                io.Float.Input("fps", default=DEFAULT_EVAL_FPS, min=MIN_FPS, max=MAX_FPS, step=0.5,
                               tooltip="Frame rate the score is measured at: for POSE_KEYPOINT, the rate of its "
                                       "frames (connect the fps of the node that made them); a MOTION is "
                                       "resampled to it. BAS tolerances are in frames (EDGE evaluates at 30)."),
                Motion.Input("motion", optional=True, tooltip="A 3D dance (Load Motion, Music to Motion, ...)."),
                PoseKeypoint.Input("pose_keypoint", optional=True,
                                   tooltip="2D keypoints per video frame, OpenPose-18 (DWPose, M2PEnc Guidance); "
                                           "the first person of each frame, undetected joints skipped."),
            ],
            outputs=[io.Float.Output(display_name="bas", tooltip="Beat Alignment Score in [0, 1]; higher is better "
                                                                 "(AIST++ ground truth ~0.24)."),
                     io.Image.Output(display_name="plot", tooltip=f"The chart, {BEAT_PLOT_SIZE[0]}x"
                                                                  f"{BEAT_PLOT_SIZE[1]}.")],
        )

    @classmethod
    def validate_inputs(cls, fps) -> bool | str:
        if fps is not None and not (MIN_FPS <= fps <= MAX_FPS):
            return f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps}"
        return True

    @classmethod
    def execute(cls, music, fps, motion=None, pose_keypoint=None) -> io.NodeOutput:
        if not (MIN_FPS <= fps <= MAX_FPS):
            raise InputError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps}")
        joints, frames, unit = _dance(motion, pose_keypoint, fps)
        audio = validate_audio(music)
        music_frames = frame_count(audio["waveform"].shape[-1], audio["sample_rate"], fps)
        if frames < MIN_FRAMES:
            raise InputError(f"the dance has {frames} frame(s) at {fps:g} fps; Beat Alignment needs at least "
                             f"{MIN_FRAMES} (and several beats to be meaningful)")
        if frames > music_frames + MAX_OVERHANG_SECONDS * fps:
            raise InputError(f"the dance lasts {frames / fps:.2f} s at {fps:g} fps ({frames} frames) but the music "
                             f"only {music_frames / fps:.2f} s: check fps (it must be the dance's frame rate) or "
                             f"connect the whole music")
        beats = music_beat_frames(audio, fps)
        result: Alignment = (beat_alignment(joints, beats) if joints is not None
                             else pose_keypoint_beat_alignment(pose_keypoint, beats))
        pixels = beat_alignment_plot(result.speed, result.music_beats, result.motion_beats, fps, result.score,
                                     unit=unit)
        image = torch.from_numpy(pixels.astype(np.float32) / 255.0)[None]        # (1, H, W, 3)
        return io.NodeOutput(float(result.score), image, ui=ui.PreviewImage(image, cls=cls))
