"""Make ComfyUI's modules importable for nodes: the real ones if present, else our stand-ins.

``install()`` puts ``stand_ins/`` on ``sys.path`` only when ``comfy_api`` cannot be imported
(e.g. a plain venv or CI), and points ``folder_paths`` at a base directory holding
``models/``, ``input/``, ``output/`` and ``temp/``. The stand-ins are minimal reimplementations
of the ComfyUI 0.3.64 interfaces that node packs call; they are checked against the real
server by ``tests/test_real_comfyui.py`` when ``COMFYUI_PATH`` is set.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

STAND_INS = Path(__file__).resolve().parent / "stand_ins"


def using_stand_ins() -> bool:
    """True when the ComfyUI modules in use are ours (no real ComfyUI on the path)."""
    spec = importlib.util.find_spec("comfy_api")
    return spec is not None and Path(spec.origin).resolve().is_relative_to(STAND_INS)


def install(base_dir: os.PathLike | str | None = None, models_dir: os.PathLike | str | None = None) -> None:
    """Ensure ``comfy_api``, ``comfy`` and ``folder_paths`` import; optionally set the base dir
    (and a models folder outside it)."""
    if importlib.util.find_spec("comfy_api") is None and str(STAND_INS) not in sys.path:
        sys.path.insert(0, str(STAND_INS))
    if base_dir is not None:
        import folder_paths

        base = Path(base_dir)
        for sub in ("models", "input", "output", "temp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        models = Path(models_dir) if models_dir is not None else base / "models"
        if hasattr(folder_paths, "set_base_directory"):
            folder_paths.set_base_directory(str(base), str(models))
        else:  # the real module: the same effect by hand
            folder_paths.base_path = str(base)
            folder_paths.models_dir = str(models)
            folder_paths.set_input_directory(str(base / "input"))
            folder_paths.set_output_directory(str(base / "output"))
            folder_paths.set_temp_directory(str(base / "temp"))
