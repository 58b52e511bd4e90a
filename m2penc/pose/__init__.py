"""Keypoints between M2PEnc heatmaps, ComfyUI's POSE_KEYPOINT, skeleton images and beat metrics."""
