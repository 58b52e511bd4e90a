"""ARCHITECTURE.md's dependency rules hold, and the checker catches a broken one."""
from __future__ import annotations

from pathlib import Path

from m2pdance.devtools.import_rules import LAYERS, violations

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_tree_follows_the_rules():
    assert violations(REPO_ROOT) == []


def test_every_core_folder_has_a_layer_and_a_line_in_architecture_md():
    core = REPO_ROOT / "m2penc"
    folders = sorted(p.name for p in core.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    layered = {part for layer in LAYERS for part in layer}
    assert set(folders) <= layered, set(folders) - layered
    text = (REPO_ROOT / "ARCHITECTURE.md").read_text()
    assert all(f"`m2penc/{name}/`" in text for name in folders), [n for n in folders if f"`m2penc/{n}/`" not in text]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, source in {"m2penc/__init__.py": "", "m2penc/errors.py": "", **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return tmp_path


def test_a_lower_layer_importing_a_higher_one_is_caught(tmp_path):
    root = _tree(tmp_path, {
        "m2penc/sampling/__init__.py": "",
        "m2penc/sampling/windows.py": "from ..errors import InputError\nfrom ..champ.sampler import make_scheduler\n",
        "m2penc/champ/__init__.py": "",
        "m2penc/champ/sampler.py": "from ..sampling.windows import window_starts\n",
    })
    assert violations(root) == [
        "m2penc/sampling/windows.py:2: m2penc/sampling (layer 1) must not import m2penc/champ (layer 5); "
        "lower layers never import higher ones or their neighbours"]


def test_neighbours_in_one_layer_and_the_core_reaching_out_are_caught(tmp_path):
    root = _tree(tmp_path, {
        "m2penc/video/__init__.py": "from ..sampling import plan\n",
        "m2penc/sampling/__init__.py": "",
        "m2penc/dance.py": "from ..weights_manifest import entry\nimport comfy.utils\n",
        "training/__init__.py": "from ..nodes import types\n",
    })
    found = violations(root)
    assert any("m2penc/video (layer 1) must not import m2penc/sampling (layer 1)" in v for v in found)
    assert any(v.startswith("m2penc/dance.py:1: m2penc must not import m2pdance.weights_manifest") for v in found)
    assert any(v.startswith("m2penc/dance.py:2: m2penc must not import comfy.utils") for v in found)
    assert any(v.startswith("training/__init__.py:1: training must not import m2pdance.nodes") for v in found)
    assert len(found) == 4


def test_a_new_core_folder_without_a_layer_is_reported(tmp_path):
    root = _tree(tmp_path, {"m2penc/dance.py": "from .gizmos import thing\n", "m2penc/gizmos/__init__.py": ""})
    assert violations(root) == ["m2penc/dance.py:1: m2penc/gizmos has no layer in devtools/import_rules.py LAYERS "
                                "(add it, and a line to ARCHITECTURE.md)"]
