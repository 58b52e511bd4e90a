"""LPIPS: key layouts = the public files' (manifest key lists), strict loading, known values on built weights."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from m2pdance.m2penc.errors import InputError, WeightsMismatchError, WeightsNotFoundError
from m2pdance.m2penc.eval.lpips import (
    LPIPS, MODELS_FOLDER, NETS, SCALE, SHIFT, backbone_key_shapes, lin_key_shapes, load_lpips, lpips, lpips_paths,
)
from m2pdance.weights_manifest import entry, expected_keys

NET_NAMES = ("alex", "vgg")


def _random_files(net: str, seed: int = 0, classifier: bool = True) -> tuple[dict, dict]:
    """(lin-head state dict, backbone state dict) in the exact public layouts, random values.

    Lin heads are non-negative, like the released ones (lpips clamps them while training). The
    classifier (unused by LPIPS, 61 M / 124 M numbers) is stored as zero-stride views of one
    number: right keys and shapes, a few bytes on disk.
    """
    g = torch.Generator().manual_seed(seed)
    lin = {k: torch.rand(shape, generator=g) for k, shape in lin_key_shapes(net).items()}
    backbone = {}
    for k, shape in backbone_key_shapes(net).items():
        if k.startswith("features."):
            fan_in = shape[1] * shape[2] * shape[3] if len(shape) == 4 else 1
            backbone[k] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5 if len(shape) == 4 else \
                0.01 * torch.randn(shape, generator=g)
        elif classifier:
            backbone[k] = torch.zeros(1).expand(shape)
    return lin, backbone


def _model(net: str, seed: int = 0) -> LPIPS:
    lin, backbone = _random_files(net, seed, classifier=False)
    model = LPIPS(net).eval()
    model.load_state_dict({**lin, **backbone}, strict=True)
    return model


def _smooth_video(frames: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((frames, 3, 6, 6), generator=g)
    video = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (0.3 + 0.4 * video.clamp(0, 1)).permute(0, 2, 3, 1).contiguous()  # (F, H, W, 3) in [0.3, 0.7]


# ---------------------------------------------------------------- layouts and the manifest


@pytest.mark.parametrize("net", NET_NAMES)
def test_module_keys_are_the_manifest_key_lists(net):
    spec = NETS[net]
    lin_manifest = expected_keys(entry(spec.lin_entry))
    backbone_manifest = expected_keys(entry(spec.backbone_entry))
    assert lin_key_shapes(net) == lin_manifest
    assert backbone_key_shapes(net) == backbone_manifest
    own = {k: tuple(v.shape) for k, v in LPIPS(net).state_dict().items()}
    features = {k: v for k, v in backbone_manifest.items() if k.startswith("features.")}
    assert own == {**lin_manifest, **features}
    assert set(backbone_manifest) - set(features) == {k for k in backbone_manifest if k.startswith("classifier.")}


@pytest.mark.parametrize("net", NET_NAMES)
def test_manifest_entries_match_the_loader(net):
    spec = NETS[net]
    for entry_id, filename, source in ((spec.lin_entry, spec.lin_file, spec.lin_source),
                                       (spec.backbone_entry, spec.backbone_file, spec.backbone_source)):
        e = entry(entry_id)
        assert (e.folder, e.filename, e.source, e.format) == (MODELS_FOLDER, filename, source, "pth")
        assert set(e.workflows.values()) == {"unused"}


def test_parameter_counts_are_the_published_ones():
    """AlexNet 61,100,840 and VGG16 138,357,544 parameters (torchvision's model docs)."""
    count = {net: sum(torch.Size(s).numel() for s in backbone_key_shapes(net).values()) for net in NET_NAMES}
    assert count == {"alex": 61_100_840, "vgg": 138_357_544}


# ---------------------------------------------------------------- loading from files


def test_files_in_the_real_layout_load_with_zero_missing_or_unexpected_keys(tmp_path):
    lin, backbone = _random_files("alex")
    folder = tmp_path / "models" / MODELS_FOLDER
    folder.mkdir(parents=True)
    # lpips' lin files are legacy (non-zip) torch.save files; torchvision's are zip files
    torch.save(lin, folder / "alex.pth", _use_new_zipfile_serialization=False)
    torch.save(backbone, folder / "alexnet-owt-7be5be79.pth")
    lin_path, backbone_path = lpips_paths(tmp_path / "models", "alex")
    assert (lin_path.name, backbone_path.name) == ("alex.pth", "alexnet-owt-7be5be79.pth")
    model = load_lpips(lin_path, backbone_path, "alex")
    state = model.state_dict()
    assert set(state) == set(lin) | {k for k in backbone if k.startswith("features.")}
    assert all(torch.equal(state[k], v) for k, v in {**lin, **backbone}.items() if k in state)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_a_features_only_safetensors_copy_loads(tmp_path):
    lin, backbone = _random_files("vgg", classifier=False)
    folder = tmp_path / MODELS_FOLDER
    folder.mkdir()
    save_file(lin, str(folder / "vgg.safetensors"))
    save_file(backbone, str(folder / "vgg16-397923af.safetensors"))
    lin_path, backbone_path = lpips_paths(tmp_path, "vgg")
    assert lin_path.suffix == backbone_path.suffix == ".safetensors"
    model = load_lpips(lin_path, backbone_path, "vgg")
    assert torch.equal(model.features[28].weight, backbone["features.28.weight"])


def test_missing_file_names_the_file_and_the_manifest_entry(tmp_path):
    lin, backbone = _random_files("alex", classifier=False)
    torch.save(lin, tmp_path / "alex.pth")
    with pytest.raises(WeightsNotFoundError) as err:
        load_lpips(tmp_path / "alex.pth", tmp_path / "alexnet-owt-7be5be79.pth")
    message = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in message and "lpips_alexnet_backbone" in message
    assert "models/lpips/alexnet-owt-7be5be79.pth" in message and "download.pytorch.org" in message


def test_wrong_keys_are_refused_and_listed(tmp_path):
    lin, backbone = _random_files("alex", classifier=False)
    torch.save(backbone, tmp_path / "backbone.pth")
    torch.save({**lin, "lin5.model.1.weight": torch.zeros(1, 8, 1, 1)}, tmp_path / "extra.pth")
    with pytest.raises(WeightsMismatchError, match=r"1 unexpected keys: lin5\.model\.1\.weight"):
        load_lpips(tmp_path / "extra.pth", tmp_path / "backbone.pth")
    # the VGG heads given for AlexNet: shapes differ, and the message names the manifest entry
    vgg_lin, _ = _random_files("vgg", classifier=False)
    torch.save(vgg_lin, tmp_path / "vgg.pth")
    with pytest.raises(WeightsMismatchError, match="shape mismatches") as err:
        load_lpips(tmp_path / "vgg.pth", tmp_path / "backbone.pth", "alex")
    assert "lpips_alex_lin" in str(err.value)
    torch.save(lin, tmp_path / "lin.pth")
    del backbone["features.10.bias"]
    torch.save(backbone, tmp_path / "short.pth")
    with pytest.raises(WeightsMismatchError, match=r"1 missing keys: features\.10\.bias"):
        load_lpips(tmp_path / "lin.pth", tmp_path / "short.pth")


def test_unknown_network_is_an_input_error():
    with pytest.raises(InputError, match="squeeze"):
        LPIPS("squeeze")


@pytest.mark.parametrize("net", NET_NAMES)
def test_the_released_linear_heads_load_when_a_wheel_ships_them(tmp_path, net):
    """lpips' ``weights/v0.1/<net>.pth`` ships byte-identical in the lpips and torchmetrics wheels."""
    found = importlib.util.find_spec("torchmetrics")
    if found is None or found.origin is None:
        pytest.skip("torchmetrics (which ships lpips' linear-head files) is not installed")
    spec = NETS[net]
    real = Path(found.origin).parent / "functional" / "image" / "lpips_models" / spec.lin_file
    if not real.is_file():
        pytest.skip(f"{real} not in this torchmetrics version")
    e = entry(spec.lin_entry)
    data = real.read_bytes()
    assert len(data) == e.bytes and hashlib.sha256(data).hexdigest() == e.sha256
    _, backbone = _random_files(net, classifier=False)
    torch.save(backbone, tmp_path / spec.backbone_file)
    model = load_lpips(real, tmp_path / spec.backbone_file, net)
    assert all(float(h.model[1].weight.min()) >= 0 for h in model.heads)


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("net", NET_NAMES)
def test_identical_videos_score_zero(net):
    video = _smooth_video(3, 48)
    scores = lpips(video, video.clone(), _model(net))
    assert scores.metric == f"lpips_{net}" and scores.frames == 3
    assert all(abs(v) <= 1e-6 for v in scores.per_frame)


def test_lpips_rises_with_the_noise_level():
    model = _model("alex")
    target = _smooth_video(2, 64)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(7))
    levels = (0.01, 0.03, 0.1, 0.3)
    means = []
    for sigma in levels:
        pred = (target + sigma * noise).clamp(0, 1)
        means.append(lpips(pred, target, model).mean)
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert means[0] > 0


def _constructed(net: str, head_values: tuple[float, ...], positive: bool) -> LPIPS:
    """Zero biases; conv weights |N(0, 1)| / fan_in (positive) or N(0, 2 / fan_in); lin heads c_k * ones."""
    g = torch.Generator().manual_seed(11)
    model = LPIPS(net).eval()
    with torch.no_grad():
        for layer in model.features:
            if isinstance(layer, torch.nn.Conv2d):
                fan_in = layer.weight[0].numel()
                w = torch.randn(layer.weight.shape, generator=g)
                layer.weight.copy_(w.abs() / fan_in if positive else w * (2.0 / fan_in) ** 0.5)
                layer.bias.zero_()
        for head, c in zip(model.heads, head_values):
            head.model[1].weight.fill_(c)
    return model


@pytest.mark.parametrize("net", NET_NAMES)
def test_known_value_against_an_all_zero_feature_image(net):
    """x1 = shift makes the scaled input exactly 0, so every feature of x1 is 0 (zero biases) and its
    unit-normalised features are 0. With positive convolutions and a positive scaled x0 every feature
    vector of x0 is non-zero, its unit-normalised square sums to 1 at every position, and head k
    (all weights c_k) contributes exactly c_k: LPIPS = sum_k c_k."""
    heads = (0.1, 0.2, 0.3, 0.4, 0.5)
    model = _constructed(net, heads, positive=True)
    shift, scale = torch.tensor(SHIFT).view(1, 3, 1, 1), torch.tensor(SCALE).view(1, 3, 1, 1)
    u = 0.2 + 0.8 * torch.rand((2, 3, 40, 40), generator=torch.Generator().manual_seed(3))
    x0, x1 = shift + scale * u, shift.expand(2, 3, 40, 40)
    with torch.no_grad():
        d = model(x0, x1)
        assert d.tolist() == pytest.approx([sum(heads)] * 2, rel=1e-5)
        assert model(x1, x0).tolist() == pytest.approx(d.tolist(), rel=1e-6)


def test_unit_normalisation_makes_lpips_blind_to_scaled_features():
    """With zero biases the network is positively homogeneous: scaling the scaled input by 3 scales
    every feature by 3, which the unit-normalisation removes, so LPIPS is 0 for different images."""
    model = _constructed("alex", (1.0,) * 5, positive=False)
    shift, scale = torch.tensor(SHIFT).view(1, 3, 1, 1), torch.tensor(SCALE).view(1, 3, 1, 1)
    z = torch.randn((2, 3, 48, 48), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert model(shift + scale * z, shift + scale * 3 * z).abs().max() < 1e-6
        assert model(shift + scale * z, shift + scale * -z).min() > 0.1


def _reference_lpips(state: dict, net: str, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """LPIPS from torchvision's and lpips' hyper-parameters, written out with torch.nn.functional."""
    if net == "alex":
        plan = [("c", 0, 4, 2), "tap", ("p", 3), ("c", 3, 1, 2), "tap", ("p", 3), ("c", 6, 1, 1), "tap",
                ("c", 8, 1, 1), "tap", ("c", 10, 1, 1), "tap"]
    else:
        plan, index = [], 0
        for block, convs in enumerate((2, 2, 3, 3, 3)):
            if block:
                plan.append(("p", 2))
                index += 1
            for _ in range(convs):
                plan.append(("c", index, 1, 1))
                index += 2
            plan.append("tap")
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(x):
        out, x = [], (x - shift) / scale
        for step in plan:
            if step == "tap":
                out.append(x)
            elif step[0] == "c":
                _, i, stride, pad = step
                x = F.relu(F.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], stride, pad))
            else:
                x = F.max_pool2d(x, step[1], 2)
        return out

    total = 0
    for k, (a, b) in enumerate(zip(taps(x0), taps(x1))):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + F.conv2d((a - b) ** 2, state[f"lin{k}.model.1.weight"]).mean(dim=(1, 2, 3))
    return total


@pytest.mark.parametrize("net", NET_NAMES)
def test_module_equals_a_functional_reference(net):
    model = _model(net, seed=5)
    target = _smooth_video(2, 45, seed=1)  # odd size: exercises the pools' floor rounding
    pred = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(9))).clamp(0, 1)
    got = lpips(pred, target, model).per_frame
    x0, x1 = (2 * v.permute(0, 3, 1, 2) - 1 for v in (pred, target))
    with torch.no_grad():
        want = _reference_lpips(model.state_dict(), net, x0, x1)
    assert got == pytest.approx(want.tolist(), rel=1e-5)


def test_input_errors():
    model = _model("alex")
    with pytest.raises(InputError, match="at least 32 x 32"):
        lpips(torch.rand(1, 31, 64, 3), torch.rand(1, 31, 64, 3), model)
    with pytest.raises(InputError, match="differ in shape"):
        lpips(torch.rand(1, 64, 64, 3), torch.rand(2, 64, 64, 3), model)
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        lpips(torch.rand(1, 64, 64, 3) * 2 - 1, torch.rand(1, 64, 64, 3), model)
