"""pyproject's explicit package list covers every package folder, so a wheel holds the whole pack."""
from __future__ import annotations

import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED_AS_PACKAGES = ("tests", "benchmarks", "scripts", "build", "devtools/comfy_harness/stand_ins")


def test_every_package_folder_is_listed():
    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for init in REPO_ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO_ROOT)
        if rel.parts and (rel.parts[0].startswith(".") or any(rel.as_posix().startswith(p) for p in NOT_SHIPPED_AS_PACKAGES)):
            continue
        found.add(".".join(("m2pdance",) + rel.parts))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but not a package folder: {sorted(listed - found)}"
