"""Convenience layer: the pack's nodes plus built-in stand-ins, and workflows from files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .executor import Executor
from .pack_loader import load_pack
from .ui_format import ui_to_api

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_WORKFLOWS = REPO_ROOT / "example_workflows"


def all_nodes(pack_dir: Path = REPO_ROOT) -> dict[str, type]:
    """Our pack's nodes (loaded as ComfyUI loads them) plus the ComfyUI built-ins workflows use."""
    from .builtin_nodes import BUILTIN_NODES  # needs comfy_api: imported after install()

    nodes = dict(BUILTIN_NODES)
    nodes.update(load_pack(pack_dir).nodes)
    return nodes


def read_workflow(path: Path | str, nodes: Optional[dict[str, type]] = None) -> dict:
    """An API-format prompt from a UI-format or API-format workflow file."""
    data = json.loads(Path(path).read_text())
    if "nodes" in data and "links" in data:
        return ui_to_api(data, nodes if nodes is not None else all_nodes())
    return data


def example_workflows() -> list[Path]:
    """The UI-format workflows shipped in ``example_workflows/`` (the templates ComfyUI lists)."""
    return sorted(EXAMPLE_WORKFLOWS.glob("*.json"))


def api_twin(ui_path: Path) -> Path:
    """Where the API-format twin of a UI workflow lives."""
    return ui_path.parent / "api" / ui_path.name


def new_executor(nodes: Optional[dict[str, type]] = None) -> Executor:
    return Executor(nodes if nodes is not None else all_nodes())
