"""The weights manifest and the ``m2pdance weights`` command."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from m2pdance.cli import main
from m2pdance.weights_manifest import KEYS_DIR, WORKFLOWS, entry, expected_keys, load_manifest, readme_table
from m2pdance.weights_manifest.smoke import RECORD, write_smoke_weights
from m2pdance.weights_manifest.verify import verify_file

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    models = tmp_path_factory.mktemp("w") / "models"
    write_smoke_weights(models)
    return models


def test_every_entry_is_complete_and_its_key_list_ships(shared_dir):
    ids = [e.id for e in load_manifest()]
    assert len(ids) == len(set(ids))
    for e in load_manifest():
        assert e.role and e.folder and e.filename and e.license
        assert set(e.workflows) == set(WORKFLOWS), e.id
        if e.keys:
            assert (KEYS_DIR / e.keys).is_file()
            assert expected_keys(e)
    # the shipped key lists are the shared spec's, unchanged; the evaluation networks' lists (not in the spec)
    # were written from the public code that saved those files, and their tests hold our modules to them
    # (tests/m2penc/eval/test_i3d.py, test_lpips.py: the module's keys == the list, the real lin heads load)
    written_here = {"i3d_pretrained_400.keys.json", "lpips_alex.keys.json", "lpips_vgg.keys.json",
                    "lpips_alexnet-owt-7be5be79.keys.json", "lpips_vgg16-397923af.keys.json"}
    for shipped in KEYS_DIR.glob("*.json"):
        name = shipped.name.removeprefix("jukebox_")
        candidates = list(shared_dir.glob(f"spec/*/{name}"))
        if shipped.name in written_here:
            assert not candidates, f"{shipped.name} is in the shared spec now: compare with it instead"
            continue
        assert candidates, shipped.name
        assert json.loads(shipped.read_text()) == json.loads(candidates[0].read_text())


def test_readme_weights_table_is_rendered_from_the_manifest():
    assert readme_table() in (REPO_ROOT / "README.md").read_text(), \
        "README weights table is stale: paste weights_manifest.readme_table() output"


def test_list_reports_present_and_missing(smoke, capsys):
    assert main(["weights", "list", "--models-dir", str(smoke), "--workflow", "music_to_dance"]) == 0
    out = capsys.readouterr().out
    assert "[MISSING] champ_denoising_unet" in out and "tiny smoke weights: " in out
    assert "champ_guidance_encoder_depth" not in out  # unused by music_to_dance


def test_verify_passes_on_fresh_smoke_weights(smoke, capsys):
    assert main(["weights", "verify", "--models-dir", str(smoke)]) == 0
    out = capsys.readouterr().out
    assert out.count("[ok] smoke:") == len(json.loads((smoke / RECORD).read_text()))


def _smoke_copy(smoke: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "models"
    shutil.copytree(smoke, copy)
    return copy


def test_verify_detects_a_truncated_file(smoke, tmp_path, capsys):
    models = _smoke_copy(smoke, tmp_path)
    target = models / "m2penc" / "m2pdance-tiny-m2penc.safetensors"
    target.write_bytes(target.read_bytes()[:-100])
    assert main(["weights", "verify", "--models-dir", str(models)]) == 1
    out = capsys.readouterr().out
    assert "[BAD] smoke:m2penc/m2pdance-tiny-m2penc.safetensors" in out and "truncated" in out


def test_verify_detects_a_wrong_hash(smoke, tmp_path, capsys):
    models = _smoke_copy(smoke, tmp_path)
    target = models / "vae" / "m2pdance-tiny-vae.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    target.write_bytes(bytes(data))
    assert main(["weights", "verify", "--models-dir", str(models)]) == 1
    assert "sha256" in capsys.readouterr().out


def test_key_check_on_a_real_format_checkpoint(tmp_path):
    """A Jukebox-layout .pth.tar ({"model": ..., "hps": ...}, 'module.' prefixes) is read safely and checked."""
    e = entry("jukebox_vqvae")
    shapes = expected_keys(e)
    state = {f"module.{k}": torch.zeros(shape) for k, shape in shapes.items()}
    path = tmp_path / "jukebox" / e.filename
    path.parent.mkdir()
    torch.save({"model": state, "step": 7}, path)
    assert verify_file(e, path).status == "ok"
    state.pop(next(iter(state)))
    torch.save({"model": state}, path)
    report = verify_file(e, path)
    assert report.status == "bad" and "1 missing keys" in report.problems[0]


def test_convert_pth_to_safetensors(tmp_path, capsys):
    from safetensors.torch import load_file

    src = tmp_path / "x.pth"
    torch.save({"state_dict": {"module.a": torch.ones(2), "b": torch.zeros(3)}}, src)
    assert main(["weights", "convert", str(src), str(tmp_path / "x.safetensors")]) == 0
    assert set(load_file(tmp_path / "x.safetensors")) == {"a", "b"}


def test_fetch_explains_entries_that_are_not_on_the_hub(tmp_path, capsys):
    assert main(["weights", "fetch", "jukebox_vqvae", "--models-dir", str(tmp_path)]) == 1
    assert "download it yourself from https://openaipublic" in capsys.readouterr().err
