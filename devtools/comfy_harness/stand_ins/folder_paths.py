"""Stand-in for ComfyUI's ``folder_paths``: model folders, input/output/temp directories.

The base directory (like ComfyUI's ``--base-directory``) is set with :func:`set_base_directory`;
it holds ``models/``, ``input/``, ``output/`` and ``temp/``. Model categories behave as in
ComfyUI: a name maps to ``([folders], {extensions})``; an empty extension set accepts any file.
"""
from __future__ import annotations

import os
from typing import Optional

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

base_path = os.path.abspath(os.environ.get("M2P_COMFY_BASE", os.path.join(os.getcwd(), "comfy_home")))
models_dir = os.path.join(base_path, "models")
folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}
_BUILTIN_MODEL_FOLDERS = ("checkpoints", "vae", "clip_vision", "diffusion_models", "controlnet")


def set_base_directory(path: str, models: Optional[str] = None) -> None:
    """Point every folder at ``path`` (models, input, output, temp), as ``--base-directory`` does;
    ``models`` puts the models folder elsewhere (as ``extra_model_paths.yaml`` can)."""
    global base_path, models_dir
    base_path = os.path.abspath(path)
    models_dir = os.path.abspath(models) if models else os.path.join(base_path, "models")
    folder_names_and_paths.clear()
    for name in _BUILTIN_MODEL_FOLDERS:
        folder_names_and_paths[name] = ([os.path.join(models_dir, name)], set(supported_pt_extensions))


set_base_directory(base_path)


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    paths, exts = folder_names_and_paths.setdefault(folder_name, ([], set()))
    if full_folder_path in paths:
        return
    if is_default:
        paths.insert(0, full_folder_path)
    else:
        paths.append(full_folder_path)


def get_folder_paths(folder_name: str) -> list[str]:
    return list(folder_names_and_paths[folder_name][0])


def get_filename_list(folder_name: str) -> list[str]:
    """Relative file names (with ``/``) under every folder of a category, sorted."""
    paths, exts = folder_names_and_paths.get(folder_name, ([], set()))
    found = set()
    for root in paths:
        if not os.path.isdir(root):
            continue
        for dirpath, _, files in os.walk(root, followlinks=True):
            for name in files:
                if exts and os.path.splitext(name)[1].lower() not in exts:
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                found.add(rel.replace(os.sep, "/"))
    return sorted(found)


def get_full_path(folder_name: str, filename: str) -> Optional[str]:
    if folder_name not in folder_names_and_paths:
        return None
    # As ComfyUI 0.3.64 does: the name is re-rooted at "/" and made relative again, so an absolute
    # name or ".." components can never leave the category's folders ("/etc/passwd" -> "etc/passwd").
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for root in folder_names_and_paths[folder_name][0]:
        candidate = os.path.join(root, filename)
        if os.path.isfile(candidate):
            return candidate
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    path = get_full_path(folder_name, filename)
    if path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return path


def get_input_directory() -> str:
    return os.path.join(base_path, "input")


def get_output_directory() -> str:
    return os.path.join(base_path, "output")


def get_temp_directory() -> str:
    return os.path.join(base_path, "temp")


def get_directory_by_type(type_name: str) -> Optional[str]:
    return {"input": get_input_directory(), "output": get_output_directory(),
            "temp": get_temp_directory()}.get(type_name)


def annotated_filepath(name: str) -> tuple[str, Optional[str]]:
    """As ComfyUI 0.3.64: the suffix test has no leading space but one more character is cut."""
    for suffix, kind in (("[output]", "output"), ("[input]", "input"), ("[temp]", "temp")):
        if name.endswith(suffix):
            return name[: -len(suffix) - 1], get_directory_by_type(kind)
    return name, None


def get_annotated_filepath(name: str, default_dir: Optional[str] = None) -> str:
    """As ComfyUI 0.3.64: a plain ``os.path.join``, so an absolute ``name`` is returned unchanged and
    ``..`` is kept (callers must check names themselves; the pack uses ``m2penc.safe_names``)."""
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    return os.path.join(base_dir, name)


def exists_annotated_filepath(name: str) -> bool:
    """As ComfyUI 0.3.64 (ignores ``default_dir``; absolute names are tested as they are)."""
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = get_input_directory()
    return os.path.exists(os.path.join(base_dir, name))


_CONTENT_TYPES = {
    "image": {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"},
    "audio": {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus"},
    "video": {".mp4", ".webm", ".mov", ".mkv", ".avi"},
}


def filter_files_content_types(files: list[str], content_types: list[str]) -> list[str]:
    wanted = set().union(*(_CONTENT_TYPES[c] for c in content_types))
    return [f for f in files if os.path.splitext(f)[1].lower() in wanted]


def get_save_image_path(filename_prefix: str, output_dir: str, image_width: int = 0, image_height: int = 0):
    """(full_output_folder, filename, counter, subfolder, filename_prefix) as ComfyUI returns it."""
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception("Saving image outside the output folder is not allowed.")
    counter = 1
    if os.path.isdir(full_output_folder):
        taken = []
        for existing in os.listdir(full_output_folder):
            stem = os.path.splitext(existing)[0]
            if stem.startswith(filename + "_"):
                digits = stem[len(filename) + 1:].split("_")[0]
                if digits.isdigit():
                    taken.append(int(digits))
        counter = max(taken, default=0) + 1
    return full_output_folder, filename, counter, subfolder, filename_prefix
