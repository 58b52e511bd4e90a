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
from ..m2penc.errors import InputError, WeightsNotFoundError
from ..m2penc.progress import RunControl
from ..m2penc.safe_names import check_name, safe_path

#: Our model categories -> sub-folder of ComfyUI's ``models/``.
MODEL_FOLDERS: dict[str, str] = {"champ": "champ", "m2penc": "m2penc", "jukebox": "jukebox", "smpl": "smpl", "edge": "edge"}
#: ComfyUI's own categories we read from (SD-1.5 VAE, CLIP image encoder).
COMFY_FOLDERS: tuple[str, ...] = ("vae", "clip_vision")


def ensure_model_folders() -> None:
    """Register our model folders with ``folder_paths`` (idempotent), and the folders of the demo set the
    pack ships for our own categories (``weights_manifest/demo-set/champ``, ``.../m2penc``, after the
    user's folders: a file of the same name in ``models/`` wins). The demo VAE and CLIP files join only
    our loader's lists (:func:`model_files`), not ComfyUI's ``vae``/``clip_vision`` categories, whose
    core loaders cannot read them."""
    import folder_paths

    from ..weights_manifest.demo import DEMO_CATEGORIES, demo_folder

    for name, sub in MODEL_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, sub)
        if name not in folder_paths.folder_names_and_paths or default not in folder_paths.get_folder_paths(name):
            folder_paths.add_model_folder_path(name, default)
    for name in DEMO_CATEGORIES:
        shipped = str(demo_folder(name))
        if os.path.isdir(shipped) and shipped not in folder_paths.get_folder_paths(name):
            folder_paths.add_model_folder_path(name, shipped)


#: Weights file endings a loader dropdown may list (anything else, e.g. ``x.bak``, is hidden).
WEIGHT_EXTENSIONS: tuple[str, ...] = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar")


def model_files(category: str, extensions: tuple[str, ...] = WEIGHT_EXTENSIONS) -> list[str]:
    """File names (relative to the category's folders) for a loader's dropdown: only names ending
    in one of ``extensions`` (``.tar`` covers Jukebox's ``.pth.tar``); for ``vae``/``clip_vision`` also
    the shipped demo set's file (:func:`weights_manifest.demo.demo_file`)."""
    import folder_paths

    from ..weights_manifest.demo import DEMO_COMPONENT_CATEGORIES, DEMO_LOADER_FILES, demo_file

    ensure_model_folders()
    names = [f for f in folder_paths.get_filename_list(category) if f.lower().endswith(tuple(extensions))]
    if category in DEMO_COMPONENT_CATEGORIES and demo_file(category, DEMO_LOADER_FILES[category]) is not None:
        names = sorted(set(names) | {DEMO_LOADER_FILES[category]})
    return names


def _folder_label(category: str) -> str:
    import folder_paths

    return f"models/{category} ({', '.join(folder_paths.get_folder_paths(category))})"


def check_model_name(category: str, filename: str) -> bool | str:
    """``validate_inputs`` helper: True, or why ``filename`` is not a safe name inside models/<category>."""
    ensure_model_folders()
    try:
        check_name(filename, _folder_label(category))
    except InputError as e:
        return str(e)
    return True


def _smoke_hint(filename: str) -> str:
    from ..weights_manifest.demo import DEMO_LOADER_FILES
    from ..weights_manifest.smoke import SMOKE_FILES

    name = filename.replace("\\", "/")
    if name in SMOKE_FILES.values():
        return ("it is one of the tiny smoke-test files: write them all with `m2pdance weights smoke "
                "--models-dir <ComfyUI>/models` (random weights, for trying the workflows only)")
    if name in DEMO_LOADER_FILES.values():
        return ("it is one of the demo set's files, which ship with the pack in weights_manifest/demo-set: "
                "reinstall the pack (or `m2pdance-train demo --out runs/demo --ship` trains them again)")
    return ""


def model_path(category: str, filename: str, manifest_hint: str = "") -> str:
    """Absolute path of a model file, or an error naming the file, the folders and the fix.

    The name goes through :func:`m2penc.safe_names.check_name` first (no ``..``, absolute paths,
    control characters or over-long names) and the file found must not be a symlink leading out of
    its folder.
    """
    import folder_paths

    from ..weights_manifest.demo import demo_file

    ensure_model_folders()
    label = _folder_label(category)
    relative = check_name(filename, label)
    path = folder_paths.get_full_path(category, relative)
    shipped = demo_file(category, relative)
    if path is None and shipped is not None:
        return str(shipped)
    if path is None:
        hint = (_smoke_hint(relative) or manifest_hint
                or "run `m2pdance weights list` to see what each slot expects and where to get it")
        raise WeightsNotFoundError(f"model file {filename!r} not found in {label}; {hint}.")
    for root in folder_paths.get_folder_paths(category):
        if os.path.normpath(path) == os.path.normpath(os.path.join(root, relative)):
            return safe_path(relative, root, label)
    return path


def input_file(name: str, what: str = "file") -> str:
    """Path of ``name`` inside ComfyUI's input folder (or output/temp with ComfyUI's `` [output]`` /
    `` [temp]`` suffix), refusing unsafe names (:mod:`m2penc.safe_names`) with a message naming the folder."""
    import folder_paths

    bare, base = folder_paths.annotated_filepath(name) if isinstance(name, str) else (name, None)
    base = base or folder_paths.get_input_directory()
    kind = {folder_paths.get_output_directory(): "output", folder_paths.get_temp_directory(): "temp"}.get(base, "input")
    try:
        return safe_path(bare, base, f"ComfyUI's {kind} folder ({base})")
    except InputError as e:
        raise InputError(f"{what}: {e}") from None


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
