"""The one place where nodes meet ComfyUI's helpers: model folders, progress, device.

Everything here is called at run time (never at import), so importing ``nodes`` has no side
effects. Model folders are registered under ComfyUI's ``models/`` through ``folder_paths``
(so ``extra_model_paths.yaml`` works too); long loops report to ``comfy.utils.ProgressBar``
and honour ComfyUI's interrupt through :class:`m2penc.progress.RunControl`.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from ..m2penc.device import resolve_dtype
from ..m2penc.errors import WeightsNotFoundError
from ..m2penc.progress import RunControl

#: Our model categories -> sub-folder of ComfyUI's ``models/``.
MODEL_FOLDERS: dict[str, str] = {"champ": "champ", "m2penc": "m2penc", "jukebox": "jukebox", "smpl": "smpl", "edge": "edge"}
#: ComfyUI's own categories we read from (SD-1.5 VAE, CLIP image encoder).
COMFY_FOLDERS: tuple[str, ...] = ("vae", "clip_vision")


def ensure_model_folders() -> None:
    """Register our model folders with ``folder_paths`` (idempotent)."""
    import folder_paths

    for name, sub in MODEL_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, sub)
        if name not in folder_paths.folder_names_and_paths or default not in folder_paths.get_folder_paths(name):
            folder_paths.add_model_folder_path(name, default)


def model_files(category: str) -> list[str]:
    """File names (relative to the category's folders) for a loader's dropdown."""
    import folder_paths

    ensure_model_folders()
    return folder_paths.get_filename_list(category)


def model_path(category: str, filename: str, manifest_hint: str = "") -> str:
    """Absolute path of a model file, or an error naming the file, the folders and the fix."""
    import folder_paths

    ensure_model_folders()
    path = folder_paths.get_full_path(category, filename)
    if path is None:
        folders = ", ".join(folder_paths.get_folder_paths(category))
        hint = manifest_hint or "run `m2pdance weights list` to see what each slot expects and where to get it"
        raise WeightsNotFoundError(f"model file {filename!r} not found in models/{category} ({folders}); {hint}.")
    return path


def device() -> torch.device:
    """The device ComfyUI computes on (``--cpu`` gives CPU)."""
    import comfy.model_management

    return comfy.model_management.get_torch_device()


def dtype(name: str) -> torch.dtype:
    """A dtype choice from a loader's dropdown (auto/fp32/fp16/bf16) on ComfyUI's device."""
    return resolve_dtype(name, device())


def run_control(node_id: Optional[str] = None) -> RunControl:
    """Progress to ComfyUI's bar (one bar per stage) and cancel on ComfyUI's interrupt."""
    import comfy.model_management
    import comfy.utils

    bars: dict[str, object] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = comfy.utils.ProgressBar(total)
        bar.update_absolute(done, total)

    def should_cancel() -> bool:
        comfy.model_management.throw_exception_if_processing_interrupted()
        return False

    return RunControl(progress=progress, should_cancel=should_cancel)
