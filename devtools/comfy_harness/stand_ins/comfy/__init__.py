"""Stand-in for the parts of ComfyUI's ``comfy`` package that node packs call."""
