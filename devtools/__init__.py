"""Developer tools (not used by the pack at run time): the ComfyUI workflow harness.

``from m2pdance.devtools import comfy_harness`` loads the pack the way ComfyUI does, converts UI
workflows to API prompts and runs them with stand-in ComfyUI modules; the tests, the demo and
``scripts/export_api_workflows.py`` all use it.
"""
