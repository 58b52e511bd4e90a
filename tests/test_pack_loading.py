"""The pack loads as ComfyUI loads it, and the core imports without ComfyUI."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from m2pdance.devtools import comfy_harness as harness

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_core_imports_without_comfyui():
    """Every m2penc module imports in a plain interpreter and pulls in no comfy/folder_paths module."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import m2pdance.m2penc as core
        for info in pkgutil.walk_packages(core.__path__, core.__name__ + "."):
            importlib.import_module(info.name)
        import m2pdance.training
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("comfy", "comfy_api", "folder_paths", "nodes"))
        assert not bad, bad
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_pack_loads_like_comfyui_and_lists_prefixed_nodes(comfy_home):
    pack = harness.load_pack(REPO_ROOT)
    assert pack.mechanism == "comfy_entrypoint"
    assert not hasattr(pack.module, "NODE_CLASS_MAPPINGS"), "NODE_CLASS_MAPPINGS would hide comfy_entrypoint"
    # loaded under its path-derived name, every node module inside that package (relative imports),
    # whatever the runner put on sys.path (``python -m pytest`` adds the repository root)
    assert pack.module_name == str(REPO_ROOT).replace(".", "_x_") and pack.module.__name__ == pack.module_name
    for node_id, cls in pack.nodes.items():
        assert cls.__module__.startswith(pack.module_name + ".nodes."), (node_id, cls.__module__)
    assert pack.nodes and all(node_id.startswith("M2PDance") for node_id in pack.nodes)
    for node_id, cls in pack.nodes.items():
        schema = cls.GET_SCHEMA()
        assert schema.category.startswith("M2PDance"), node_id
        assert schema.display_name and schema.description, node_id
        for inp in schema.inputs or []:
            assert inp.tooltip, f"{node_id}.{inp.id} has no tooltip"


def test_pack_registers_model_folders(comfy_home):
    import folder_paths

    harness.load_pack(REPO_ROOT)
    for name in ("champ", "m2penc", "jukebox"):
        assert str(comfy_home / "models" / name) in folder_paths.get_folder_paths(name)
