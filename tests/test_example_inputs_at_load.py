"""Loading the pack in ComfyUI writes the example music and photo into input/ when missing, never over a file."""
from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from m2pdance.devtools import comfy_harness as harness

REPO_ROOT = Path(__file__).resolve().parents[1]
MUSIC, PHOTO = "m2pdance_example_music.wav", "m2pdance_example_dancer.png"


def _module(pack, name: str):
    return sys.modules[f"{pack.module_name}.nodes.{name}"]


def test_pack_load_writes_both_example_inputs_readable_and_atomically(comfy_home):
    previous = os.umask(0o027)
    try:
        harness.load_pack(REPO_ROOT)
    finally:
        os.umask(previous)
    inputs = comfy_home / "input"
    assert sorted(os.listdir(inputs)) == sorted([MUSIC, PHOTO])  # nothing else: no temporary name left behind
    data, rate = soundfile.read(inputs / MUSIC)
    assert rate > 0 and data.shape[0] > rate  # more than a second of music
    with Image.open(inputs / PHOTO) as img:
        assert img.size[0] > 0 and img.mode == "RGB"
    for name in (MUSIC, PHOTO):
        assert stat.S_IMODE(os.stat(inputs / name).st_mode) == 0o666 & ~0o027
    # and the example workflows' loaders see them
    nodes = harness.all_nodes()
    assert MUSIC in nodes["M2PDanceLoadMusic"].GET_SCHEMA().inputs[0].options


def test_an_existing_file_of_that_name_is_never_replaced(comfy_home):
    inputs = comfy_home / "input"
    mine = np.full((20, 30, 3), 7, np.uint8)
    Image.fromarray(mine).save(inputs / PHOTO)
    os.symlink(inputs / "gone.wav", inputs / MUSIC)  # a broken symlink is a name taken, too
    before = (inputs / PHOTO).read_bytes()
    harness.load_pack(REPO_ROOT)
    assert (inputs / PHOTO).read_bytes() == before
    assert os.path.islink(inputs / MUSIC) and not (inputs / "gone.wav").exists()
    assert sorted(os.listdir(inputs)) == sorted([MUSIC, PHOTO])


def test_only_the_missing_file_is_written(comfy_home):
    inputs = comfy_home / "input"
    soundfile.write(inputs / MUSIC, np.zeros((100, 2), np.float32), 8000)
    before = (inputs / MUSIC).read_bytes()
    harness.load_pack(REPO_ROOT)
    assert (inputs / MUSIC).read_bytes() == before
    assert (inputs / PHOTO).is_file()


def test_a_name_taken_while_writing_is_kept(comfy_home, monkeypatch):
    pack = harness.load_pack(REPO_ROOT)
    module = _module(pack, "_example_inputs")
    inputs = comfy_home / "input"
    for name in (MUSIC, PHOTO):
        os.unlink(inputs / name)
    real = module.write_example_inputs

    def racing(staging):  # another process saves its own photo under the name meanwhile
        (inputs / PHOTO).write_bytes(b"theirs")
        return real(staging)

    monkeypatch.setattr(module, "write_example_inputs", racing)
    assert module.ensure_example_inputs() == [MUSIC]
    assert (inputs / PHOTO).read_bytes() == b"theirs"


def test_write_errors_never_fail_the_pack_load(comfy_home, monkeypatch, caplog):
    pack = harness.load_pack(REPO_ROOT)
    module = _module(pack, "_example_inputs")
    for name in (MUSIC, PHOTO):
        os.unlink(comfy_home / "input" / name)

    def full_disk(_staging):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "write_example_inputs", full_disk)
    with caplog.at_level(logging.WARNING):
        again = harness.load_pack(REPO_ROOT)  # the nodes module (and the patch) are reused
    assert again.nodes and "No space left on device" in caplog.text
    assert os.listdir(comfy_home / "input") == []  # no staging folder left either

    monkeypatch.setattr(module, "write_example_inputs", lambda _staging: 1 / 0)  # not even a bug fails it
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert harness.load_pack(REPO_ROOT).nodes
    assert "ZeroDivisionError" in caplog.text


def test_no_input_folder_means_nothing_is_written(comfy_home):
    pack = harness.load_pack(REPO_ROOT)
    module = _module(pack, "_example_inputs")
    assert module.ensure_example_inputs(str(comfy_home / "no_such_folder")) == []
    assert not (comfy_home / "no_such_folder").exists()


def test_writing_them_at_load_is_fast(comfy_home):
    pack = harness.load_pack(REPO_ROOT)  # warm: imports done, as in ComfyUI where the pack is loaded
    module = _module(pack, "_example_inputs")
    for name in (MUSIC, PHOTO):
        os.unlink(comfy_home / "input" / name)
    start = time.perf_counter()
    assert sorted(module.ensure_example_inputs()) == sorted([MUSIC, PHOTO])
    assert time.perf_counter() - start < 0.5
    start = time.perf_counter()
    assert module.ensure_example_inputs() == []  # the usual case: both there
    assert time.perf_counter() - start < 0.05


def test_importing_without_the_comfyui_entry_path_writes_nothing(tmp_path):
    """Importing the core, or the pack's nodes module, writes nothing; only get_node_list does."""
    code = textwrap.dedent(f"""
        import os
        from m2pdance.devtools import comfy_harness as harness
        harness.install({str(tmp_path / 'home')!r})
        import m2pdance.m2penc, m2pdance.m2penc.examples, m2pdance.nodes
        print(sorted(os.listdir({str(tmp_path / 'home' / 'input')!r})))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
