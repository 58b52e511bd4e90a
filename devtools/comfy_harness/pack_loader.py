"""Load a node pack the way ComfyUI's ``nodes.load_custom_node`` does.

The pack's ``__init__.py`` is executed under a *path-derived* module name (the folder path with
``.`` replaced by ``_x_``), registered in ``sys.modules``, with the pack root NOT on
``sys.path``: any absolute import of a sibling module fails here as it would in ComfyUI.
If the module defines ``NODE_CLASS_MAPPINGS`` it is used and ``comfy_entrypoint`` is ignored;
otherwise ``comfy_entrypoint()`` (sync or async) must return a ``ComfyExtension``.
"""
from __future__ import annotations

import asyncio
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


@dataclass
class LoadedPack:
    module: ModuleType
    module_name: str
    nodes: dict[str, type]  # node id -> class
    mechanism: str  # "NODE_CLASS_MAPPINGS" or "comfy_entrypoint"


class PackLoadError(Exception):
    pass


def _await(value):
    return asyncio.run(value) if inspect.isawaitable(value) else value


def load_pack(pack_dir: Path | str) -> LoadedPack:
    """Import ``pack_dir/__init__.py`` as ComfyUI does and collect its nodes by id."""
    pack_dir = str(Path(pack_dir).resolve())
    module_name = pack_dir.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(module_name, str(Path(pack_dir) / "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)

    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if mappings is not None:
        return LoadedPack(module, module_name, dict(mappings), "NODE_CLASS_MAPPINGS")
    entrypoint = getattr(module, "comfy_entrypoint", None)
    if entrypoint is None or not callable(entrypoint):
        raise PackLoadError(f"{pack_dir}: neither NODE_CLASS_MAPPINGS nor a callable comfy_entrypoint")
    from comfy_api.latest import ComfyExtension

    extension = _await(entrypoint())
    if not isinstance(extension, ComfyExtension):
        raise PackLoadError(f"{pack_dir}: comfy_entrypoint did not return a ComfyExtension")
    node_list = _await(extension.get_node_list())
    if not isinstance(node_list, list):
        raise PackLoadError(f"{pack_dir}: get_node_list() did not return a list")
    nodes: dict[str, type] = {}
    for cls in node_list:
        node_id = cls.GET_SCHEMA().node_id
        if node_id in nodes:
            raise PackLoadError(f"{pack_dir}: node id {node_id!r} is registered twice")
        nodes[node_id] = cls
    return LoadedPack(module, module_name, nodes, "comfy_entrypoint")
