"""Video Combine: what the node shows is served by ComfyUI's ``/view``; outputs get normal permissions."""
from __future__ import annotations

import os
import stat
import sys

import pytest
import torch

from m2pdance.devtools import comfy_harness as harness

PHOTO = "m2pdance_example_dancer.png"
UMASK = 0o027  # not the usual 022, so a fixed 0o644 / mkdtemp's 0o700 both show up


def view_resolves(item: dict, home) -> str | None:
    """The file ComfyUI's ``GET /view?filename=&subfolder=&type=`` answers for ``item`` (None: 400/403/404).

    As server.py's ``view_image`` (ComfyUI 0.3.64): the folder comes from ``type`` (default output),
    ``subfolder`` is joined to it and must stay inside, the *base name* of ``filename`` is joined
    to that, and only a regular file is served."""
    filename = item.get("filename", "")
    if not filename or filename[0] == "/" or ".." in filename:
        return None
    base = {"output": str(home / "output"), "input": str(home / "input"), "temp": str(home / "temp")}.get(
        item.get("type", "output"))
    if base is None:
        return None
    if "subfolder" in item:
        full = os.path.join(base, item["subfolder"])
        if os.path.commonpath((os.path.abspath(full), base)) != base:
            return None
        base = full
    path = os.path.join(base, os.path.basename(filename))
    return path if os.path.isfile(path) else None


@pytest.fixture
def umask():
    previous = os.umask(UMASK)
    yield UMASK
    os.umask(previous)


@pytest.fixture
def home(prepared_home):
    return prepared_home


@pytest.fixture
def nodes(home):
    return harness.all_nodes()


def _combine_prompt(fmt: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
            "2": {"class_type": "M2PDanceVideoCombine",
                  "inputs": {"images": ["1", 0], "fps": 8.0, "format": fmt, "crf": 30,
                             "filename_prefix": f"M2PDance/vc_{fmt}"}}}


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("fmt", ["png", "mp4", "gif"])
def test_every_ui_item_is_a_file_view_serves_and_outputs_respect_the_umask(home, nodes, umask, fmt):
    result = harness.new_executor(nodes).run(_combine_prompt(fmt))
    shown = result.ui["2"]["images"]
    assert shown, result.ui
    for item in shown:
        assert view_resolves(item, home), f"/view would not serve {item}"
    written = home / "output" / result.outputs["2"][0]
    assert written.exists()
    if fmt == "png":
        assert written.is_dir()
        assert _mode(written) == 0o777 & ~umask  # was mkdtemp's 0o700: nobody else could open it
        frames = sorted(written.iterdir())
        assert frames and all(_mode(f) == 0o666 & ~umask for f in frames)
        assert [view_resolves(item, home) for item in shown] == [str(f) for f in frames]
        assert "animated" not in result.ui["2"]  # a list of stills, not a video
    else:
        assert _mode(written) == 0o666 & ~umask  # was a fixed 0o644
        assert view_resolves(shown[0], home) == str(written)
    assert not [p for p in (home / "output").rglob(".*")], "a temporary name was left behind"


def test_a_long_png_sequence_previews_a_bounded_spread_of_its_frames(home, nodes, umask):
    cls = nodes["M2PDanceVideoCombine"]
    module = sys.modules[cls.__module__]
    frames = torch.rand(module.PREVIEW_MAX_FRAMES * 2 + 5, 8, 8, 3)
    out = cls.execute(images=frames, fps=8.0, format="png", crf=19, filename_prefix="M2PDance/long")
    shown = out.ui["images"] if isinstance(out.ui, dict) else out.ui.as_dict()["images"]
    names = sorted(p.name for p in (home / "output" / out.args[0]).iterdir())
    assert len(names) == frames.shape[0]
    assert len(shown) == module.PREVIEW_MAX_FRAMES
    listed = [item["filename"] for item in shown]
    assert listed[0] == names[0] and listed[-1] == names[-1] and listed == sorted(set(listed))
    assert all(view_resolves(item, home) for item in shown)


def test_preview_spread_keeps_short_lists_whole(nodes):
    module = sys.modules[nodes["M2PDanceVideoCombine"].__module__]
    assert module._preview_frames(["a", "b"], 4) == ["a", "b"]
    three = module._preview_frames([str(i) for i in range(10)], 3)
    assert len(three) == 3 and three[0] == "0" and three[-1] == "9"
    assert module._preview_frames([str(i) for i in range(10)], 1) == ["0"]
