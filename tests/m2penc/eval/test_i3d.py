"""The FVD I3D: key names and shapes of ``i3d_pretrained_400.pt``, strict loading, layer arithmetic."""
from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file

from m2pdance.m2penc.errors import InputError, WeightsMismatchError, WeightsNotFoundError
from m2pdance.m2penc.eval import i3d as i3d_module
from m2pdance.m2penc.eval.i3d import (
    BatchNormInference, I3DConfig, InceptionI3d, i3d_key_shapes, load_i3d, read_i3d_state_dict, same_padding,
)
from m2pdance.weights_manifest import entry, expected_keys

#: Output channels of b0, b1a, b1b, b2a, b2b, b3b per Inception module, as written in
#: tats/fvd/pytorch_i3d.py (and piergiaj/pytorch-i3d): an independent copy of the table.
REFERENCE_MIXED = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]), "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (480, [192, 96, 208, 16, 48, 64]), "Mixed_4c": (512, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (512, [128, 128, 256, 24, 64, 64]), "Mixed_4e": (512, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (528, [256, 160, 320, 32, 128, 128]), "Mixed_5b": (832, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (832, [384, 192, 384, 48, 128, 128]),
}


def _reference_layout() -> dict[str, tuple[int, ...]]:
    """Keys of the file as convert_tf_pretrained.py writes them: conv w, bn beta/moving stats + added gamma."""
    units = {"Conv3d_1a_7x7": (3, 64, 7), "Conv3d_2b_1x1": (64, 64, 1), "Conv3d_2c_3x3": (64, 192, 3)}
    for name, (cin, (o0, o1a, o1b, o2a, o2b, o3b)) in REFERENCE_MIXED.items():
        units.update({f"{name}.b0": (cin, o0, 1), f"{name}.b1a": (cin, o1a, 1), f"{name}.b1b": (o1a, o1b, 3),
                      f"{name}.b2a": (cin, o2a, 1), f"{name}.b2b": (o2a, o2b, 3), f"{name}.b3b": (cin, o3b, 1)})
    keys: dict[str, tuple[int, ...]] = {}
    for unit, (cin, cout, k) in units.items():
        keys[f"{unit}.conv3d.weight"] = (cout, cin, k, k, k)
        keys.update({f"{unit}.bn.{t}": (cout,) for t in ("weight", "bias", "running_mean", "running_var")})
    keys.update({"logits.conv3d.weight": (400, 1024, 1, 1, 1), "logits.conv3d.bias": (400,)})
    return keys


def test_the_real_network_has_the_checkpoint_keys_of_the_manifest():
    e = entry(i3d_module.ENTRY_ID)
    assert (e.folder, e.filename, e.source) == (i3d_module.MODELS_FOLDER, i3d_module.FILENAME, i3d_module.SOURCE_URL)
    shapes = i3d_key_shapes(I3DConfig())
    assert shapes == expected_keys(e)
    assert shapes == _reference_layout()
    assert len(shapes) == 57 * 5 + 2 and not any("num_batches_tracked" in k for k in shapes)
    assert [k for k in shapes if k.endswith("conv3d.bias")] == ["logits.conv3d.bias"]
    assert e.approx_bytes == 4 * sum(math.prod(s) for s in shapes.values())


def _real_layout_state(seed: int = 0) -> OrderedDict:
    """A state dict in the file's exact layout (names, shapes, float32), random values, bn.weight = 1."""
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in expected_keys(entry(i3d_module.ENTRY_ID)).items():
        if key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("bn.weight"):
            state[key] = torch.ones(shape)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return state


@pytest.fixture(scope="module")
def real_layout_file(tmp_path_factory):
    state = _real_layout_state()
    path = tmp_path_factory.mktemp("i3d") / "i3d_pretrained_400.pt"
    torch.save(state, path)  # what the converter does: torch.save(OrderedDict of tensors)
    return path, state


def test_a_file_in_the_real_layout_loads_strictly_and_runs(real_layout_file):
    path, state = real_layout_file
    model = load_i3d(path, device="cpu", dtype="fp32")
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    clip = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    with torch.inference_mode():
        logits = model(clip)
    assert logits.shape == (1, 400) and torch.isfinite(logits).all()


def test_weights_verify_accepts_the_real_layout(real_layout_file):
    from m2pdance.weights_manifest.verify import verify_file

    report = verify_file(entry(i3d_module.ENTRY_ID), real_layout_file[0])
    assert report.status == "ok" and "keys" in report.checks, report.problems


def test_safetensors_and_resaved_copies_load(real_layout_file, tmp_path):
    path, state = real_layout_file
    converted = tmp_path / "i3d.safetensors"
    save_file(dict(state), converted)
    resaved = tmp_path / "resaved.pt"   # a DataParallel re-save of a PyTorch module: prefix + counters
    torch.save({**{f"module.{k}": v for k, v in state.items()},
                **{f"module.{k[:-len('running_var')]}num_batches_tracked": torch.tensor(0)
                   for k in state if k.endswith("running_var")}}, resaved)
    for copy in (converted, resaved):
        read = read_i3d_state_dict(copy)
        assert set(read) == set(state) and all(torch.equal(read[k], state[k]) for k in state)
    model = load_i3d(converted)
    assert torch.equal(model.state_dict()["logits.conv3d.bias"], state["logits.conv3d.bias"])


def test_mismatched_and_missing_files_name_the_file_and_the_manifest_entry(real_layout_file, tmp_path):
    _, state = real_layout_file
    broken = OrderedDict(state)
    broken.pop("Mixed_4d.b2b.bn.running_mean")
    broken["Mixed_4d.b2b.bn.gamma"] = torch.ones(64)
    broken["logits.conv3d.weight"] = torch.zeros(600, 1024, 1, 1, 1)   # a Kinetics-600 head
    path = tmp_path / "wrong.pt"
    torch.save(broken, path)
    with pytest.raises(WeightsMismatchError) as err:
        load_i3d(path)
    message = str(err.value)
    for part in (str(path), "i3d_kinetics400", "1 missing keys: Mixed_4d.b2b.bn.running_mean",
                 "1 unexpected keys: Mixed_4d.b2b.bn.gamma", "logits.conv3d.weight: file (600, 1024, 1, 1, 1)"):
        assert part in message
    with pytest.raises(WeightsNotFoundError, match="i3d_kinetics400.*models/i3d/i3d_pretrained_400.pt"):
        load_i3d(tmp_path / "absent.pt")


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (16, 7, 2, (2, 3)), (224, 7, 2, (2, 3)), (15, 7, 2, (3, 3)), (112, 3, 2, (0, 1)), (7, 3, 1, (1, 1)),
    (8, 1, 1, (0, 0)), (4, 2, 2, (0, 0)), (5, 2, 2, (0, 1)),
])
def test_same_padding_is_tensorflows(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected
    front, back = expected
    assert (size + front + back - kernel) // stride + 1 == math.ceil(size / stride)


def test_feature_map_sizes_through_the_network():
    """16 x 224 x 224 -> (1024, 2, 7, 7) after Mixed_5c (widths scaled down for speed)."""
    model = InceptionI3d(I3DConfig(width=0.125)).eval()
    sizes = {}
    for name in ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "MaxPool3d_3a_3x3", "MaxPool3d_4a_3x3", "MaxPool3d_5a_2x2",
                 "Mixed_5c"):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, o.shape))
    with torch.inference_mode():
        out = model(torch.zeros(2, 3, 16, 224, 224))
    assert out.shape == (2, 400)
    assert {k: tuple(v[2:]) for k, v in sizes.items()} == {
        "Conv3d_1a_7x7": (8, 112, 112), "MaxPool3d_2a_3x3": (8, 56, 56), "MaxPool3d_3a_3x3": (8, 28, 28),
        "MaxPool3d_4a_3x3": (4, 14, 14), "MaxPool3d_5a_2x2": (2, 7, 7), "Mixed_5c": (2, 7, 7)}
    assert sizes["Mixed_5c"][1] == model.logits.conv3d.in_channels


def test_logits_are_averaged_over_the_time_steps_left():
    """24 frames leave 3 - 1 = 2 positions after the (2, 7, 7) pool: the output is their mean."""
    torch.manual_seed(0)
    model = InceptionI3d(I3DConfig(width=0.125)).eval()
    clip = torch.rand(1, 3, 24, 224, 224) * 2 - 1
    with torch.inference_mode():
        trunk = clip
        for name in model.trunk:
            trunk = model.get_submodule(name)(trunk)
        per_step = model.logits(torch.nn.functional.avg_pool3d(trunk, (2, 7, 7), stride=1))
        assert per_step.shape == (1, 400, 2, 1, 1)
        torch.testing.assert_close(model(clip), per_step.mean(dim=2).flatten(1))


def test_wrong_inputs_are_refused():
    model = InceptionI3d(I3DConfig(width=0.125)).eval()
    with pytest.raises(InputError, match="224x224"):
        model(torch.zeros(1, 3, 16, 112, 112))
    with pytest.raises(InputError, match=r"\(B, 3, T, H, W\)"):
        model(torch.zeros(1, 16, 3, 224, 224))


def test_batch_norm_is_the_inference_formula_with_eps_1e5():
    bn = BatchNormInference(3, I3DConfig().bn_eps)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
        bn.running_mean.copy_(torch.tensor([0.5, 0.0, -2.0]))
        bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25]))
    x = torch.randn(2, 3, 2, 2, 2)
    shape = (1, 3, 1, 1, 1)
    expected = ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + 1e-5)
                * bn.weight.view(shape) + bn.bias.view(shape))
    torch.testing.assert_close(bn(x), expected)
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
