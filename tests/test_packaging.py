"""pyproject's explicit package list covers every package folder, so a wheel holds the whole pack."""
from __future__ import annotations

import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED_AS_PACKAGES = ("tests", "benchmarks", "scripts", "build", "devtools/comfy_harness/stand_ins")
DATA_FOLDERS = ("devtools/comfy_harness/stand_ins", "devtools/comfy_harness/stand_ins/comfy",
                "devtools/comfy_harness/stand_ins/comfy_api", "devtools/comfy_harness/stand_ins/comfy_api/latest",
                "example_workflows", "example_workflows/api", "weights_manifest/keys")


def test_every_package_folder_is_listed():
    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for init in REPO_ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO_ROOT)
        if rel.parts and (rel.parts[0].startswith(".") or any(rel.as_posix().startswith(p) for p in NOT_SHIPPED_AS_PACKAGES)):
            continue
        found.add(".".join(("m2pdance",) + rel.parts))
    # folders shipped as data or stand-ins (no __init__.py): listed too, so setuptools builds without warnings
    data = {"m2pdance." + folder.replace("/", ".") for folder in DATA_FOLDERS}
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found - data == set(), f"listed but not a package folder: {sorted(listed - found - data)}"
    assert data <= listed, f"add the data folders to [tool.setuptools] packages: {sorted(data - listed)}"


def test_a_wheel_builds_without_warnings_from_our_configuration(tmp_path):
    """setuptools warns about a license table and data folders missing from ``packages`` (issue 17)."""
    import subprocess
    import sys

    import shutil

    source = tmp_path / "src"                  # a copy: setuptools writes build/ and *.egg-info into the source
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "comfy_home", "out", "runs", "node_modules"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "wheel"), "-v"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr
    assert "is absent from the `packages` configuration" not in log
    assert "as a TOML table is deprecated" not in log
