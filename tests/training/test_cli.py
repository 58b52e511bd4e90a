"""``m2pdance-train`` / ``python -m m2pdance.training``: end to end into tmp_path, errors, planned stages."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from m2pdance.m2penc.encoder import load_m2penc, read_m2penc_config
from m2pdance.training.cli import main


def test_toy_data_then_stage1_from_a_config_file(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    assert main(["make-toy-data", "--out", str(data), "--shards", "2", "--frames", "30"]) == 0
    assert sorted(p.name for p in data.iterdir()) == ["toy_0000.safetensors", "toy_0001.safetensors"]

    config = tmp_path / "stage1.json"
    config.write_text(json.dumps({"model_preset": "tiny", "data_dir": "data", "batch_size": 2,
                                  "sequence_length": 8, "epochs": 1, "lr": 1e-3, "device": "cpu"}))
    argv = ["-q", "stage1", "--config", str(config), "--out", str(out), "--steps", "4",
            "--checkpoint-every", "2", "--set", "heatmap_weight=0.5", "--set", "window_sampling=sequential"]
    assert main(argv) == 0
    assert "stage 1 finished after 4 steps" in capsys.readouterr().out

    weights = out / "m2penc.safetensors"
    assert read_m2penc_config(weights).grid_size == 16
    assert load_m2penc(weights, device="cpu", dtype="fp32").config.feature_kind == "baseline"
    saved = json.loads((out / "stage1_config.json").read_text())
    assert (saved["steps"], saved["epochs"], saved["heatmap_weight"], saved["window_sampling"]) == (
        4, None, 0.5, "sequential")
    assert saved["data_dir"] == str(tmp_path / "data")              # relative to the config file
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"latest.json", "step_00000002", "step_00000004"}

    # Continue the finished run to 6 steps from its latest checkpoint.
    assert main(argv[:-4] + ["--steps", "6", "--resume", "latest"]) == 0
    assert "after 6 steps" in capsys.readouterr().out


def test_user_errors_exit_1_with_the_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["-q", "stage1", "--preset", "smoke", "--data", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 1
    assert "no .safetensors shards" in capsys.readouterr().err
    assert main(["stage1", "--data", str(tmp_path)]) == 1
    assert "needs --config FILE or --preset NAME" in capsys.readouterr().err
    assert main(["stage1", "--preset", "smoke", "--set", "lr"]) == 1
    assert "KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["stage1", "--steps", "3", "--epochs", "2"])
    assert exit_info.value.code == 2


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "m2pdance.training", "stage3", "--preset", "tiny"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "stage3 needs --champ, --vae, --image-encoder, --m2penc, --data" in done.stderr


def test_training_imports_no_comfyui_or_nodes():
    code = ("import sys, m2pdance.training.cli, m2pdance.training.stage1, m2pdance.training.toy_data, "
            "m2pdance.training.champ_stages\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths')"
            " or m.startswith('m2pdance.nodes'))\n"
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120)
    assert done.returncode == 0, done.stderr
