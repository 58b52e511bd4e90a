"""The OpenPose-18 body skeleton as data: keypoint order, limbs, colours, whole-body slices.

Values follow DWPose's renderer (IDEA-Research/DWPose ``annotator/dwpose/util.py``), which is
also what comfyui_controlnet_aux draws and what Champ's dwpose guidance images show (see
shared/spec/champ/guidance_palettes.json).
"""
from __future__ import annotations

BODY_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NUM_BODY_KEYPOINTS = len(BODY_KEYPOINT_NAMES)

#: Limbs as 0-based keypoint pairs, in drawing order (DWPose's limbSeq minus 1). Only the
#: first :data:`NUM_DRAWN_LIMBS` are drawn: the ear-shoulder pairs are skipped by DWPose.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)
NUM_DRAWN_LIMBS = 17

#: RGB colour of limb i and of keypoint i.
COLORS_RGB: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
#: After all limbs are drawn, DWPose multiplies the canvas by this (keypoints stay full colour).
LIMB_DIMMING = 0.6
#: Half the limb thickness and the keypoint disc radius, in pixels.
STICK_HALF_WIDTH = 4
KEYPOINT_RADIUS = 4

#: DWPose whole-body with neck: 134 points = body 18 + feet 6 + face 68 + left hand 21 + right hand 21.
WHOLEBODY_KEYPOINTS = 134
BODY = slice(0, 18)
FEET = slice(18, 24)
FACE = slice(24, 92)
LEFT_HAND = slice(92, 113)
RIGHT_HAND = slice(113, 134)
NUM_HAND_KEYPOINTS = LEFT_HAND.stop - LEFT_HAND.start
