"""Champ-compatible latent video diffusion: ReferenceNet, 3-D U-Net, guidance encoders, sampler.

Pure PyTorch + diffusers + transformers (no ComfyUI). Typical use::

    models = load_champ_files(denoising_unet_file, vae_file, image_encoder_file, device="cuda", dtype="fp16")
    ref = encode_reference(models, photo)                      # once per video
    fea = encode_pose_guidance(models, {"dwpose": maps})       # or the music encoder's output
    latents = sample_video(models, ref, fea, num_steps=20, guidance_scale=3.5,
                           generator=torch.Generator().manual_seed(42))
    frames = decode_latents(models.vae, latents)               # (F, H, W, 3) in [0, 1]

Long videos: :func:`.long_video.render_champ_video` (segments, streamed into a sink).
"""
from .champ_configs import (denoising_config_from_champ, guidance_config_from_champ, motion_config_from_champ,
                            unet_config_from_champ)
from .config import (GUIDANCE_TYPES, DenoisingUNetConfig, GuidanceEncoderConfig, ImageEncoderConfig,
                     MotionModuleConfig, UNetConfig, VAEConfig)
from .decode import decode_latents
from .denoising_unet import DenoisingUNet3D
from .guidance_encoder import GuidanceEncoder
from .keymap import champ_to_m2p_keys
from .long_video import check_guidance_fits, render_champ_video
from .models import ChampModels, build_champ, load_champ_files, load_guidance_encoders, save_champ_models
from .motion_module import MotionModule
from .pose_guidance import encode_pose_guidance
from .reference import ReferenceState, encode_reference, reference_state_from_latents
from .reference_unet import ReferenceUNet
from .sampler import (CHAMP_GUIDANCE_SCALE, CHAMP_SCHEDULER_CONFIG, apply_cfg, champ_predictor, check_context_size,
                      make_scheduler, predict_noise, predict_noise_branches, sample_video)

__all__ = [
    "GUIDANCE_TYPES", "CHAMP_SCHEDULER_CONFIG",
    "UNetConfig", "DenoisingUNetConfig", "MotionModuleConfig", "GuidanceEncoderConfig", "VAEConfig",
    "ImageEncoderConfig",
    "unet_config_from_champ", "denoising_config_from_champ", "motion_config_from_champ", "guidance_config_from_champ",
    "ReferenceUNet", "DenoisingUNet3D", "MotionModule", "GuidanceEncoder", "champ_to_m2p_keys",
    "ChampModels", "build_champ", "load_champ_files", "load_guidance_encoders", "save_champ_models",
    "ReferenceState", "encode_reference", "reference_state_from_latents", "encode_pose_guidance",
    "CHAMP_GUIDANCE_SCALE", "make_scheduler", "predict_noise", "predict_noise_branches", "apply_cfg",
    "champ_predictor", "check_context_size", "sample_video", "decode_latents", "check_guidance_fits",
    "render_champ_video",
]
