"""The Music-to-Pose Encoder (M2PEnc) of the paper's section 3.2."""
from .config import M2PEncConfig
from .guidance import latent_size_for, resize_guidance, to_guidance_fea
from .losses import guidance_loss, heatmap_loss, m2penc_loss
from .model import M2PEnc, M2PEncOutput, frames_first
from .streaming import M2PEncGuidance
from .weights import load_m2penc, read_m2penc_config, save_m2penc

__all__ = [
    "M2PEnc", "M2PEncConfig", "M2PEncGuidance", "M2PEncOutput", "frames_first", "latent_size_for", "resize_guidance",
    "to_guidance_fea", "guidance_loss", "heatmap_loss", "m2penc_loss", "load_m2penc",
    "read_m2penc_config", "save_m2penc",
]
