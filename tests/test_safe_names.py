"""The one safe-file-name check, and the harness's ``folder_paths`` behaving as ComfyUI's does."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.safe_names import MAX_COMPONENT_BYTES, MAX_NAME_CHARS, check_name, safe_path

FOLDER = "ComfyUI's input folder (/x/input)"


@pytest.mark.parametrize("name", ["a.wav", "sub/a.wav", "./a.wav", "sub//a.wav", "é ü 音楽.flac",
                                  "a" * MAX_COMPONENT_BYTES])
def test_ordinary_names_pass(name):
    assert ".." not in check_name(name, FOLDER).split("/")


@pytest.mark.parametrize("name, why", [
    ("../outside.wav", "'..'"),
    ("../../../../etc/passwd", "'..'"),
    ("sub/../../x.wav", "'..'"),
    ("..\\x.wav", "'..'"),
    ("/etc/passwd", "absolute"),
    ("\\\\server\\share\\x.wav", "absolute"),
    ("C:\\music\\x.wav", "absolute"),
    ("a\x00.wav", "control character"),
    ("a\n.wav", "control character"),
    ("a\x1b[31m.wav", "control character"),
    ("a\x85.wav", "control character"),
    ("", "no file name"),
    ("a" * (MAX_COMPONENT_BYTES + 1), "too long"),
    ("é" * 128 + ".wav", "too long"),  # 256+ bytes in UTF-8
    ("a/" * (MAX_NAME_CHARS // 2) + "x", "too long"),
])
def test_unsafe_names_are_refused_naming_the_folder(name, why):
    with pytest.raises(InputError, match=why) as info:
        check_name(name, FOLDER)
    assert FOLDER in str(info.value)
    assert "\x00" not in str(info.value) and "\x1b" not in str(info.value)


def test_symlinks_escaping_the_folder_are_refused_and_inner_ones_pass(tmp_path):
    root, outside = tmp_path / "input", tmp_path / "outside.wav"
    root.mkdir()
    outside.write_bytes(b"x")
    (root / "inner.wav").write_bytes(b"x")
    (root / "link_out.wav").symlink_to(outside)
    (root / "link_in.wav").symlink_to(root / "inner.wav")
    (root / "dir_out").symlink_to(tmp_path)
    assert safe_path("link_in.wav", str(root)) == str(root / "link_in.wav")
    for name in ("link_out.wav", "dir_out/outside.wav"):
        with pytest.raises(InputError, match="resolves outside"):
            safe_path(name, str(root), "the music folder")


def test_a_symlinked_folder_root_is_fine(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.wav").write_bytes(b"x")
    (tmp_path / "models").symlink_to(real)
    assert os.path.isfile(safe_path("a.wav", str(tmp_path / "models")))


NAMES = ["a.pth", "sub/a.pth", "../a.pth", "../../etc/passwd", "/etc/passwd", "sub/../a.pth", "x [output]",
         "x[input]", "/abs.wav [temp]"]


def _stand_in_answers(tmp_path: Path) -> dict:
    from m2pdance.devtools import comfy_harness as harness

    harness.install(tmp_path / "home")
    import folder_paths

    folder_paths.add_model_folder_path("cat", str(tmp_path / "cat"))
    return {n: [folder_paths.get_full_path("cat", n), folder_paths.get_annotated_filepath(n),
                folder_paths.exists_annotated_filepath(n), list(folder_paths.annotated_filepath(n))] for n in NAMES}


REAL_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import folder_paths
base = sys.argv[2]
folder_paths.set_input_directory(base + "/home/input")
folder_paths.set_output_directory(base + "/home/output")
folder_paths.set_temp_directory(base + "/home/temp")
folder_paths.add_model_folder_path("cat", base + "/cat")
names = json.loads(sys.argv[3])
print(json.dumps({n: [folder_paths.get_full_path("cat", n), folder_paths.get_annotated_filepath(n),
                      folder_paths.exists_annotated_filepath(n), list(folder_paths.annotated_filepath(n))]
                  for n in names}))
"""


def test_stand_in_folder_paths_resolves_names_as_comfyui_does(tmp_path):
    """``get_full_path`` re-roots absolute and ``..`` names inside the folder (the stand-in used to
    return ``/etc/passwd`` as it is); the annotated-path helpers join without checking, as ComfyUI's do."""
    (tmp_path / "cat" / "sub").mkdir(parents=True)
    (tmp_path / "cat" / "a.pth").write_bytes(b"x")
    (tmp_path / "cat" / "etc").mkdir()
    (tmp_path / "cat" / "etc" / "passwd").write_bytes(b"x")
    ours = _stand_in_answers(tmp_path)
    assert ours["/etc/passwd"][0] == str(tmp_path / "cat" / "etc" / "passwd")
    assert ours["../a.pth"][0] == str(tmp_path / "cat" / "a.pth")
    comfy, venv = os.environ.get("COMFYUI_PATH"), os.environ.get("COMFY_VENV")
    if not (comfy and venv and Path(comfy, "folder_paths.py").is_file()):
        return  # the expectations above are ComfyUI 0.3.64's; the comparison needs the real module
    out = subprocess.run([str(Path(venv) / "bin" / "python"), "-c", REAL_SCRIPT, comfy, str(tmp_path),
                          json.dumps(NAMES)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(ours))
