"""Stand-in for ComfyUI's ``comfy_api`` package (only what node packs import), for tests without ComfyUI.

Installed by :func:`harness.stand_ins.install` only when the real package is not importable.
Interfaces (class names, constructor arguments, schema-to-INPUT_TYPES conversion) follow
ComfyUI 0.3.64's ``comfy_api/latest``; behaviour is reimplemented, not copied.
"""
