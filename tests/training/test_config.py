"""Stage1Config: paper defaults, JSON files (data only), overrides, validation."""
from __future__ import annotations

import json

import pytest

from m2pdance.m2penc.errors import InputError
from m2pdance.training.config import Stage1Config


def test_defaults_follow_the_paper():
    config = Stage1Config()
    assert (config.lr, config.batch_size, config.sequence_length, config.epochs) == (1e-5, 24, 75, 20000)
    assert config.model_config().guidance_channels == 320 and config.model_config().in_dim == 4800


def test_json_file_round_trip_and_relative_paths(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "run.json"
    path.write_text(json.dumps({"model_preset": "tiny", "data_dir": "../data", "output_dir": "/abs/out",
                                "steps": 7, "betas": [0.8, 0.9], "model_overrides": {"heatmap_channels": 4}}))
    config = Stage1Config.from_json_file(path)
    assert config.steps == 7 and config.epochs is None            # steps in the file replaces epochs
    assert config.data_dir == str(tmp_path / "cfg" / "../data") and config.output_dir == "/abs/out"
    assert config.betas == (0.8, 0.9) and config.model_config().heatmap_channels == 4
    assert Stage1Config.from_dict(json.loads(config.to_json())) == config


def test_overrides_swap_steps_and_epochs():
    config = Stage1Config().with_overrides({"steps": 5})
    assert (config.steps, config.epochs) == (5, None)
    assert config.with_overrides({"epochs": 2}).steps is None
    assert config.total_steps(steps_per_epoch=10) == 5
    assert config.with_overrides({"epochs": 3}).total_steps(steps_per_epoch=10) == 30


def test_model_config_file_replaces_the_preset(tmp_path):
    from m2pdance.m2penc.encoder import M2PEncConfig
    path = tmp_path / "model.json"
    path.write_text(M2PEncConfig.preset("tiny", grid_size=8, spatial_attention_stride=2).to_json())
    config = Stage1Config(model_config_file=str(path), model_overrides={"num_layers": 2})
    assert (config.model_config().grid_size, config.model_config().num_layers) == (8, 2)


@pytest.mark.parametrize("text, message", [
    ('{"learning_rate": 1}', "unknown stage-1 config keys"),
    ('{"lr": -1}', "lr must be"),
    ('{"mixed_precision": "fp8"}', "float32"),
    ('{"batch_size": 6, "grad_accumulation": 4}', "multiple of grad_accumulation"),
    ('{"window_sampling": "shuffled"}', "window_sampling"),
    ('{"steps": 3, "epochs": 2}', "exactly one of steps and epochs"),
    ('[1, 2]', "JSON object"),
    ("lr = 1e-5  # a Python file is not executed", "not valid JSON"),
])
def test_bad_config_files(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        Stage1Config.from_json_file(path)


def test_unknown_preset():
    with pytest.raises(InputError, match="available"):
        Stage1Config.preset("huge")
