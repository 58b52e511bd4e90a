"""Keypoints between M2PEnc heatmaps, ComfyUI's POSE_KEYPOINT, skeleton images and beat metrics; pose videos
for animators (:mod:`.animator`: presets, frame plans, face crops) placed on a photo's person (:mod:`.retarget`)."""
