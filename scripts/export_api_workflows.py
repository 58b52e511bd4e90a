"""Regenerate ``example_workflows/api/*.json`` from the UI-format workflows with the harness's converter.

    python scripts/export_api_workflows.py

A test (tests/test_example_workflows.py) fails when a twin is out of date.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Workflows that need a GPU to run: no API twin (kept equal to GPU_ONLY in tests/test_example_workflows.py).
GPU_ONLY = {"music_to_wan_animate"}

from m2pdance.devtools import comfy_harness as harness


def main() -> None:
    harness.install(Path(tempfile.mkdtemp()) / "comfy_home")
    nodes = harness.all_nodes()
    for ui_path in harness.example_workflows():
        if ui_path.stem in GPU_ONLY:
            continue  # core GPU nodes the harness does not know; no API twin (tests/test_example_workflows.py)
        twin = harness.api_twin(ui_path)
        twin.parent.mkdir(exist_ok=True)
        prompt = harness.read_workflow(ui_path, nodes)
        twin.write_text(json.dumps(prompt, indent=2) + "\n")
        print(f"wrote {twin.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
