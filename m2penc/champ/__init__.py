"""Champ-compatible latent video diffusion: ReferenceNet, 3D U-Net, guidance encoders, sampler."""
