"""M2PDance ComfyUI node pack: music + one photo -> a dancing video.

ComfyUI imports this file under a path-derived module name; everything below uses relative
imports. Only the V3 entry point needs ComfyUI: ``import m2pdance.m2penc`` works without it.
"""
__version__ = "0.1.0"


async def comfy_entrypoint():
    """ComfyUI V3 entry point: return the extension that lists this pack's nodes."""
    from .nodes import M2PDanceExtension

    return M2PDanceExtension()
