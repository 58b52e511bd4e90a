"""The pack's own socket types, so a wrong wire is caught by ComfyUI before anything runs.

Models we load are not ComfyUI's MODEL/VAE/CLIP_VISION objects, so they get their own types
instead of pretending to be native ones.
"""
from comfy_api.latest import io

MusicFeatures = io.Custom("M2P_MUSIC_FEATURES")  # m2penc.audio.features.MusicFeatures
M2PEncModel = io.Custom("M2PENC_MODEL")  # a loaded M2PEnc
JukeboxModel = io.Custom("M2P_JUKEBOX")  # loaded Jukebox VQ-VAE + prior (layers <= L)
PoseGuidance = io.Custom("POSE_GUIDANCE")  # guidance features (1, 320, F, h, w) + frame rate
ChampModel = io.Custom("CHAMP_MODEL")  # ReferenceNet + denoising 3D U-Net + guidance encoders
ChampVAE = io.Custom("M2P_VAE")  # diffusers AutoencoderKL (SD-1.5 / sd-vae-ft-mse)
ChampClipVision = io.Custom("M2P_CLIP_VISION")  # CLIPVisionModelWithProjection (sd-image-variations)
Reference = io.Custom("M2P_REFERENCE")  # encoded reference: latent, CLIP embeds, ReferenceNet input
PoseKeypoint = io.Custom("POSE_KEYPOINT")  # core SDPose + controlnet_aux layout (m2penc/pose/pose_keypoint.py), one dict per frame
Motion = io.Custom("M2P_MOTION")  # m2penc.motion.SMPLMotion: SMPL poses (N, 24, 3), root path (N, 3), fps
EDGEModel = io.Custom("M2P_EDGE_MODEL")  # m2penc.motion.edge.EDGEModelBundle: EDGE denoiser + normalizer + config
