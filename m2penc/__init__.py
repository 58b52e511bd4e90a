"""m2penc: the ComfyUI-free core of M2PDance (music -> pose guidance -> Champ diffusion -> video).

Pure PyTorch/diffusers/numpy. Importing this package never imports ``comfy`` or
``folder_paths``; the ComfyUI nodes in ``nodes/`` are thin adapters over it. Sub-modules are
imported on demand (``from m2pdance.m2penc.encoder import M2PEnc``) so that importing the
package stays cheap.
"""
__all__ = ["errors", "config", "checkpoint", "progress", "device"]
