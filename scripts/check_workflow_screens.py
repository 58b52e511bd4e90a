"""Screenshot check of every UI example workflow in the REAL ComfyUI frontend, at its saved view.

    COMFY_DIR=/path/to/ComfyUI COMFY_VENV=/path/to/venv python scripts/check_workflow_screens.py \
        [--out /tmp/wf_screens] [--thumbnails] [NAME ...]

Each workflow is loaded by ``../shared/tools/comfy/browser_check.sh`` (a throwaway ComfyUI server with this
pack as a custom node, the frontend in headless Chromium at 1600x1000, ``--no-fit``: the saved
``extra.ds`` is the view). The check reads the graph back from the frontend (``--save-ui``) and asserts:

- no missing node types, no load or schema-validation problem;
- the saved scale is at least the frontend's low-quality threshold (LiteGraph draws nodes without
  text below it: see ``LOW_QUALITY_SCALE`` in tests/test_example_workflows.py);
- every node (title bar included) lies inside the canvas the frontend shows at the saved offset.

Nodes under the minimap (bottom-right, shown by default) are reported as warnings. ``--thumbnails``
writes ``example_workflows/<name>.jpg`` (512 px wide) from the canvas screenshot: the template browser
shows a same-name ``.jpg`` as the template's thumbnail. Look at the screenshots (``--out``) yourself.
Exit 0 when every workflow passes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "example_workflows"
BROWSER_CHECK = ROOT.parent / "shared" / "tools" / "comfy" / "browser_check.sh"
sys.path.insert(0, str(ROOT / "tests"))
from test_example_workflows import (LOW_QUALITY_SCALE, MINIMAP, TITLE_HEIGHT,  # noqa: E402
                                    node_boxes_on_screen)

THUMB_WIDTH = 512


def example_inputs(folder: Path) -> Path:
    from m2pdance.m2penc.examples import write_example_inputs
    from m2pdance.m2penc.motion.example import write_example_motion

    folder.mkdir(parents=True, exist_ok=True)
    write_example_inputs(folder)
    write_example_motion(folder)
    return folder


def check_one(path: Path, out: Path, inputs: Path, timeout: float = 300) -> dict:
    """Load ``path`` at its saved view; returns {name, problems, warnings, screenshot, canvas, report}."""
    name = path.stem
    shot, saved_ui, report_path = out / f"{name}.png", out / f"{name}_ui.json", out / f"{name}_report.json"
    env = dict(os.environ)
    env.setdefault("COMFY_DIR", os.environ.get("COMFYUI_PATH", ""))
    cmd = ["bash", str(BROWSER_CHECK), "--node-dir", str(ROOT), "--workflow", str(path), "--inputs", str(inputs),
           "--screenshot", str(shot), "--no-fit", "--width", "1600", "--height", "1000",
           "--save-ui", str(saved_ui), "--report", str(report_path), "--timeout", str(timeout)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout + 60)
    result = {"name": name, "problems": [], "warnings": [], "screenshot": str(shot),
              "canvas": str(out / f"{name}_canvas.png"), "report": str(report_path)}
    try:
        report = json.loads(report_path.read_text())
    except (OSError, json.JSONDecodeError):
        result["problems"].append(f"browser_check failed (exit {proc.returncode}): {proc.stderr[-1500:]}")
        return result
    problems = result["problems"]
    if proc.returncode != 0 or not report.get("load_ok"):
        problems.append(f"did not load cleanly (exit {proc.returncode}): "
                        f"{report.get('error') or report.get('load') or report.get('validation_problems')}")
    if report.get("missing_node_types"):
        problems.append(f"missing node types: {report['missing_node_types']}")
    if report.get("validation_problems"):
        problems.append(f"validation problems: {report['validation_problems']}")
    if not saved_ui.is_file():
        problems.append("the frontend's graph was not saved")
        return result
    graph = json.loads(saved_ui.read_text())  # what the frontend holds after loading: its sizes, its view
    ds = graph.get("extra", {}).get("ds") or {}
    scale = ds.get("scale", 0)
    if scale < LOW_QUALITY_SCALE:
        problems.append(f"view scale {scale} < {LOW_QUALITY_SCALE}: the frontend draws low-detail nodes")
    canvas_w, canvas_h = (report.get("render") or {}).get("canvas_px") or (0, 0)
    if not canvas_w:
        problems.append("no canvas size in the report")
        return result
    for node_id, node_type, (x0, y0, x1, y1) in node_boxes_on_screen(graph):
        if x0 < 0 or y0 < 0 or x1 > canvas_w or y1 > canvas_h:
            problems.append(f"node {node_id} {node_type} at {[round(v) for v in (x0, y0, x1, y1)]} is outside "
                            f"the {canvas_w}x{canvas_h} canvas")
        mx0, my0 = canvas_w - MINIMAP[0], canvas_h - MINIMAP[1]
        if x1 > mx0 and y1 > my0:
            result["warnings"].append(f"node {node_id} {node_type} is partly under the minimap")
    saved = json.loads(path.read_text())
    if {n["id"]: n["size"] for n in saved["nodes"]} != {n["id"]: n["size"] for n in graph["nodes"]}:
        result["warnings"].append("the frontend resized some nodes (saved sizes are below its minimum)")
    return result


def write_thumbnail(canvas_png: Path, dest: Path) -> None:
    from PIL import Image

    with Image.open(canvas_png) as img:
        img = img.convert("RGB")
        height = round(img.height * THUMB_WIDTH / img.width)
        img.resize((THUMB_WIDTH, height), Image.LANCZOS).save(dest, "JPEG", quality=82, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="workflow names (default: every UI workflow)")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "m2pdance_workflow_screens")
    p.add_argument("--thumbnails", action="store_true", help="write example_workflows/<name>.jpg")
    a = p.parse_args(argv)
    if not (os.environ.get("COMFY_DIR") or os.environ.get("COMFYUI_PATH")):
        p.error("set COMFY_DIR (or COMFYUI_PATH) to a ComfyUI checkout and COMFY_VENV to its venv")
    a.out.mkdir(parents=True, exist_ok=True)
    inputs = example_inputs(a.out / "inputs")
    paths = sorted(WORKFLOWS.glob("*.json"))
    if a.names:
        paths = [q for q in paths if q.stem in a.names]
    failed = 0
    for path in paths:
        r = check_one(path, a.out, inputs)
        status = "FAIL" if r["problems"] else "ok"
        print(f"{status:4} {r['name']}: {r['screenshot']}")
        for line in r["problems"]:
            print(f"     problem: {line}")
        for line in r["warnings"]:
            print(f"     warning: {line}")
        failed += bool(r["problems"])
        if a.thumbnails and not r["problems"]:
            write_thumbnail(Path(r["canvas"]), WORKFLOWS / f"{r['name']}.jpg")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
