"""The demo set the pack ships: its record, copying it, and how ComfyUI's loaders see it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2pdance.cli import main
from m2pdance.m2penc.errors import InputError, WeightsNotFoundError
from m2pdance.weights_manifest import demo
from m2pdance.weights_manifest.demo import (DEMO_FILES, DEMO_LOADER_FILES, RECORD, demo_available, demo_entries,
                                            install_demo_weights, make_record, read_record)


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """A stand-in for weights_manifest/demo-set: every demo file (a few bytes each) and its record."""
    folder = tmp_path / "demo-set"
    for role, relative in DEMO_FILES.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(role.encode() * 3)
    (folder / RECORD).write_text(json.dumps(make_record(folder, {"revision": "abc"})))
    monkeypatch.setattr(demo, "DEMO_DIR", folder)
    return folder


def test_record_lists_every_file_with_size_and_hash(shipped):
    record = read_record(shipped)
    assert record["revision"] == "abc"
    assert {f["path"] for f in record["files"]} == set(DEMO_FILES.values())
    for item in record["files"]:
        assert item["bytes"] == (shipped / item["path"]).stat().st_size
    assert [e.id for e, _ in demo_entries(shipped)] == [f"demo:{p}" for p in DEMO_FILES.values()]


def test_install_copies_the_set_and_keeps_equal_files(shipped, tmp_path):
    models = tmp_path / "models"
    written = install_demo_weights(models, source=shipped)
    assert len(written) == len(DEMO_FILES) + 1 and demo_available(models)
    before = {p: p.stat().st_mtime_ns for p in written}
    install_demo_weights(models, source=shipped)
    assert {p: p.stat().st_mtime_ns for p in written} == before
    (shipped / RECORD).unlink()
    with pytest.raises(WeightsNotFoundError, match="m2pdance-train demo"):
        install_demo_weights(tmp_path / "other", source=shipped)


@pytest.mark.parametrize("damage", ["{not json", json.dumps({"files": [{"path": "../../etc/passwd", "bytes": 1,
                                                                        "sha256": "x"}]}), json.dumps({"nope": 1})])
def test_a_damaged_record_is_an_input_error_naming_the_file(shipped, damage):
    (shipped / RECORD).write_text(damage)
    with pytest.raises(InputError, match=f"{RECORD} is damaged"):
        read_record(shipped)


def test_our_loader_lists_the_demo_vae_but_comfyui_core_categories_do_not(shipped, comfy_home):
    import folder_paths

    from m2pdance.nodes import _comfy

    _comfy.ensure_model_folders()
    assert str(shipped / "champ") in folder_paths.get_folder_paths("champ")
    assert str(shipped / "m2penc") in folder_paths.get_folder_paths("m2penc")
    assert not any(str(shipped) in p for p in folder_paths.get_folder_paths("vae"))
    assert DEMO_LOADER_FILES["vae"] not in folder_paths.get_filename_list("vae")
    assert DEMO_LOADER_FILES["vae"] in _comfy.model_files("vae")
    assert DEMO_LOADER_FILES["champ"] in _comfy.model_files("champ")
    assert _comfy.model_path("vae", DEMO_LOADER_FILES["vae"]) == str(shipped / "vae" / DEMO_LOADER_FILES["vae"])
    assert Path(_comfy.model_path("champ", DEMO_LOADER_FILES["champ"])) == shipped / "champ" / DEMO_LOADER_FILES["champ"]


def test_a_missing_demo_file_names_where_it_ships(tmp_path, monkeypatch, comfy_home):
    from m2pdance.nodes import _comfy

    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match="demo set's files.*demo-set"):
        _comfy.model_path("m2penc", DEMO_LOADER_FILES["m2penc"])


def test_dance_demo_refuses_a_models_dir(tmp_path, capsys):
    code = main(["dance", "--music", "m.wav", "--photo", "p.png", "--out", str(tmp_path / "v.mp4"), "--demo",
                 "--models-dir", str(tmp_path)])
    assert code == 1 and "drop --models-dir" in capsys.readouterr().err
