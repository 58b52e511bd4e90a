"""EDGE checkpoints: the released ``checkpoint.pt`` layout read with nothing executed, strict loading, our safetensors.

The synthetic checkpoints are written the way EDGE's ``train.py`` writes them: ``torch.save`` (zip,
pickle protocol 2) of ``{ema_state_dict, model_state_dict, optimizer_state_dict, normalizer}``, the
normalizer being an object of class ``dataset.preprocess.Normalizer`` wrapping a
``dataset.scaler.MinMaxScaler`` (throwaway classes registered under those names while writing).
"""
from __future__ import annotations

import json
import os
import sys
import types
import zipfile
from pathlib import Path
from typing import Any, Optional

import pytest
import torch

from m2pdance.m2penc.checkpoint import KIND_KEY, read_metadata
from m2pdance.m2penc.errors import WeightsError, WeightsMismatchError, WeightsNotFoundError
from m2pdance.m2penc.motion.edge import DanceDecoder, EDGEConfig
from m2pdance.m2penc.motion.edge.checkpoint import (
    EDGE_KIND, EDGEModelBundle, convert_edge_checkpoint, load_edge, read_edge_checkpoint, save_edge,
)
from m2pdance.m2penc.motion.edge.normalizer import TENSOR_NAMES

REPO = Path(__file__).resolve().parents[4]
SPEC = Path(os.environ.get("M2P_EDGE_VECTORS", REPO.parent / "shared" / "spec" / "edge"))
MARKER = "edge_code_ran"


def _class(module: str, name: str, marker: Optional[Path] = None) -> type:
    """A throwaway class named ``module.name``; unpickling it for real would write ``marker``."""

    def __setstate__(self, state: dict) -> None:
        if marker is not None:
            marker.write_text("the checkpoint's class was run")
        self.__dict__.update(state)

    cls = type(name, (), {"__setstate__": __setstate__})
    cls.__module__, cls.__qualname__ = module, name
    return cls


@pytest.fixture
def edge_classes(monkeypatch, tmp_path):
    """EDGE's ``Normalizer``/``MinMaxScaler`` (and a foreign ``dataset.other.Thing``) importable by name."""
    classes = {name: _class(module, name, tmp_path / MARKER) for module, name in
               (("dataset.preprocess", "Normalizer"), ("dataset.scaler", "MinMaxScaler"), ("dataset.other", "Thing"))}
    monkeypatch.setitem(sys.modules, "dataset", types.ModuleType("dataset"))
    for module, name in (("dataset.preprocess", "Normalizer"), ("dataset.scaler", "MinMaxScaler"),
                         ("dataset.other", "Thing")):
        mod = types.ModuleType(module)
        setattr(mod, name, classes[name])
        monkeypatch.setitem(sys.modules, module, mod)
    return classes


def _normalizer(classes: dict[str, type], channels: int = 151) -> Any:
    scaler = classes["MinMaxScaler"].__new__(classes["MinMaxScaler"])
    data_min, data_max = torch.randn(channels), torch.randn(channels) + 4
    scaler.__dict__.update(feature_range=(-1, 1), copy=True, clip=True, n_samples_seen_=4500,
                           scale_=2 / (data_max - data_min), min_=-1 - data_min * 2 / (data_max - data_min),
                           data_min_=data_min, data_max_=data_max, data_range_=data_max - data_min)
    normalizer = classes["Normalizer"].__new__(classes["Normalizer"])
    normalizer.__dict__["scaler"] = scaler
    return normalizer


def _write(path: Path, ema: dict, model: dict, normalizer: Any, **extra: Any) -> Path:
    optimizer = {"state": {0: {"step": 3, "m": torch.zeros(4), "v": torch.zeros(4)}},
                 "param_groups": [{"lr": 4e-4, "betas": (0.02, 0.08, 0.01), "eps": 1e-8, "params": [0]}]}
    torch.save({"ema_state_dict": ema, "model_state_dict": model, "optimizer_state_dict": optimizer,
                "normalizer": normalizer, **extra}, path, pickle_protocol=2)
    return path


def _truncate_storage(source: Path, target: Path) -> None:
    """Copy a torch zip, dropping the last 4 bytes of every tensor storage (a damaged download)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info.filename, data[:-4] if "/data/" in info.filename and len(data) > 4 else data)


@pytest.fixture
def tiny(edge_classes, tmp_path):
    """(path of an EDGE-layout checkpoint of a tiny DanceDecoder, its EMA state dict, its normalizer)."""
    torch.manual_seed(0)
    ema = DanceDecoder(EDGEConfig.preset("tiny")).state_dict()
    model = {k: v + 1 if v.is_floating_point() else v for k, v in ema.items()}
    normalizer = _normalizer(edge_classes)
    return _write(tmp_path / "checkpoint.pt", ema, model, normalizer), ema, normalizer


def test_reads_edge_layout_with_nothing_executed(tiny, tmp_path):
    path, ema, normalizer = tiny
    state, norm, kind = read_edge_checkpoint(path)
    assert kind == "baseline" and set(state) == set(ema)
    assert all(torch.equal(state[k], v) for k, v in ema.items())
    for name in TENSOR_NAMES:
        assert torch.equal(getattr(norm, name), normalizer.scaler.__dict__[name])
    assert norm.feature_range == (-1.0, 1.0) and norm.clip and norm.n_samples_seen == 4500
    assert not (tmp_path / MARKER).exists()                     # EDGE's classes were never resolved or run


def test_model_state_dict_on_request(tiny):
    path, ema, _ = tiny
    state, _, _ = read_edge_checkpoint(path, use_ema=False)
    assert torch.equal(state["final_layer.bias"], ema["final_layer.bias"] + 1)


def test_load_edge_is_strict_and_shares_rotary(tiny):
    path, ema, _ = tiny
    bundle = load_edge(path, "cpu", "fp32", config=EDGEConfig.preset("tiny"))
    assert isinstance(bundle, EDGEModelBundle) and not bundle.model.training
    loaded = bundle.model.state_dict()
    assert set(loaded) == set(ema) and all(torch.equal(loaded[k], v) for k, v in ema.items())
    assert sum(k.endswith("rotary.freqs") for k in loaded) == 5                # 1 + 2 encoder + 2 decoder layers
    half = load_edge(path, "cpu", "fp16", config=EDGEConfig.preset("tiny"))
    assert half.model.final_layer.weight.dtype == torch.float16 and half.normalizer.scale_.dtype == torch.float32


def test_refuses_other_globals_with_nothing_run(edge_classes, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ema = DanceDecoder(EDGEConfig.preset("tiny")).state_dict()
    evil = _write(tmp_path / "evil.pt", ema, ema, _normalizer(edge_classes), extra=Payload())
    with pytest.raises(WeightsError, match=r"evil\.pt.*refused.*(posix|os|nt)\.system.*no code"):
        read_edge_checkpoint(evil)
    other = _write(tmp_path / "other.pt", ema, ema, _normalizer(edge_classes), extra=edge_classes["Thing"]())
    with pytest.raises(WeightsError, match=r"other\.pt.*refused.*'dataset\.other\.Thing'"):
        load_edge(other, config=EDGEConfig.preset("tiny"))
    assert not marker.exists() and not (tmp_path / MARKER).exists()


def test_full_size_manifests_load_strictly(edge_classes, tmp_path):
    """Every key of both released layouts (11 rotary copies included) fits DanceDecoder's presets, 0 missing/unexpected.

    The tensors are views of one storage, so the files stay ~10 MB while keeping the released shapes.
    """
    for kind in ("baseline", "jukebox"):
        shapes = json.loads((SPEC / f"edge_model_{kind}.keys.json").read_text())
        assert len(shapes) == 249 and sum(k.endswith("rotary.freqs") for k in shapes) == 11
        base = torch.randn(max(torch.Size(s).numel() for s in shapes.values()))
        state = {k: base[:torch.Size(s).numel()].view(s) for k, s in shapes.items()}
        path = _write(tmp_path / f"{kind}.pt", state, state, _normalizer(edge_classes))
        bundle = load_edge(path)                                    # preset picked from cond_projection's width
        assert bundle.config == EDGEConfig.preset(kind)
        loaded = bundle.model.state_dict()
        assert {k: list(v.shape) for k, v in loaded.items()} == shapes
        assert torch.equal(loaded["cond_projection.weight"], state["cond_projection.weight"])


def test_prefix_kind_and_structure_errors(edge_classes, tmp_path):
    ema = DanceDecoder(EDGEConfig.preset("tiny")).state_dict()
    prefixed = _write(tmp_path / "ddp.pt", {f"module.{k}": v for k, v in ema.items()}, ema, _normalizer(edge_classes))
    assert set(read_edge_checkpoint(prefixed)[0]) == set(ema)
    with pytest.raises(WeightsError, match="reads 'baseline' music features but the given config is 'jukebox'"):
        load_edge(prefixed, config=EDGEConfig.preset("jukebox"))
    broken = dict(ema)
    broken.pop("final_layer.bias")
    missing = _write(tmp_path / "missing.pt", broken, broken, _normalizer(edge_classes))
    with pytest.raises(WeightsMismatchError, match="final_layer.bias"):
        load_edge(missing, config=EDGEConfig.preset("tiny"))
    odd = _write(tmp_path / "odd.pt", {**ema, "cond_projection.weight": torch.zeros(64, 7)}, ema,
                 _normalizer(edge_classes))
    with pytest.raises(WeightsError, match=r"\(D, 4800\).*\(D, 35\)"):
        read_edge_checkpoint(odd)
    torch.save({"ema_state_dict": ema}, tmp_path / "no_norm.pt")
    with pytest.raises(WeightsError, match="'normalizer'"):
        read_edge_checkpoint(tmp_path / "no_norm.pt")
    _truncate_storage(missing, tmp_path / "short.pt")
    with pytest.raises(WeightsError, match=r"short\.pt: record data/\d+ holds \d+ bytes, expected \d+"):
        read_edge_checkpoint(tmp_path / "short.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="not a torch.save zip"):
        read_edge_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(WeightsNotFoundError):
        load_edge(tmp_path / "absent.pt")


def test_safetensors_round_trip_is_self_describing(tiny, tmp_path):
    path, ema, _ = tiny
    bundle = load_edge(path, config=EDGEConfig.preset("tiny"))
    out = save_edge(bundle, tmp_path / "edge.safetensors")
    meta = read_metadata(out)
    assert meta[KIND_KEY] == EDGE_KIND and meta["m2pdance.feature_kind"] == "baseline"
    assert "Stanford-TML/EDGE" in meta["m2pdance.source"] and "MIT" in meta["m2pdance.license"]
    again = load_edge(out)                                          # no config given: the file carries it
    assert again.config == bundle.config
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in ema.items())
    assert all(torch.equal(getattr(again.normalizer, n), getattr(bundle.normalizer, n)) for n in TENSOR_NAMES)
    assert again.normalizer.n_samples_seen == 4500


def test_convert_uses_released_size(tiny, tmp_path):
    path, _, _ = tiny
    with pytest.raises(WeightsMismatchError):                       # a tiny model is not EDGE's released size
        convert_edge_checkpoint(path, tmp_path / "edge.safetensors")
    assert not (tmp_path / "edge.safetensors").exists()


def _rewrite(source: Path, target: Path, replace: dict[str, bytes]) -> None:
    """Copy a torch zip, replacing the content of records whose name ends with a key of ``replace``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = next((v for k, v in replace.items() if info.filename.endswith(k)), None)
            dst.writestr(info.filename, src.read(info) if data is None else data)


def test_memory_is_bounded_by_the_file_not_by_what_it_claims(edge_classes, tmp_path, monkeypatch):
    from m2pdance.m2penc.motion.edge import checkpoint

    ema = DanceDecoder(EDGEConfig.preset("tiny")).state_dict()
    # a normalizer of five 10^12-element views of one float each (stride 0): checking them would allocate a TB
    normalizer = _normalizer(edge_classes)
    huge = torch.zeros(1).expand(10 ** 12)
    normalizer.scaler.__dict__.update({name: huge for name in TENSOR_NAMES})
    path = _write(tmp_path / "views.pt", ema, ema, normalizer)
    with pytest.raises(WeightsError, match=r"views\.pt.*tensor view .* runs past or is larger than its 1-item storage"):
        read_edge_checkpoint(path)
    # a byteorder record is a few bytes; a bigger one (a zip bomb would declare gigabytes) is not read
    tiny = _write(tmp_path / "tiny.pt", ema, ema, _normalizer(edge_classes))
    _rewrite(tiny, tmp_path / "order.pt", {"/byteorder": b"little" + b" " * 100})
    with pytest.raises(WeightsError, match=r"order\.pt: record byteorder \(106 bytes\) is over the 16 bytes"):
        read_edge_checkpoint(tmp_path / "order.pt")
    # all records together are bounded too (many storages, each under the per-record limit)
    monkeypatch.setattr(checkpoint, "MAX_READ_BYTES", 4096)
    with pytest.raises(WeightsError, match=r"tiny\.pt: record .* the 4096 bytes a checkpoint"):
        read_edge_checkpoint(tiny)


def test_a_pickle_cannot_retype_the_storage_classes(tmp_path):
    """BUILD writes straight into an object's __dict__ (frozen or not): a storage class whose dtype a file rewrote
    is refused as a WeightsError, not a TypeError deep in torch."""
    storage = b"ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00xsb"     # FloatStorage, dtype := 'x'
    persistent = b"(X\x07\x00\x00\x00storage" + storage + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
    tensor = b"ctorch._utils\n_rebuild_tensor_v2\n(" + persistent + b"K\x00K\x04\x85K\x01\x85tR"
    pkl = (b"\x80\x02}(X\x0e\x00\x00\x00ema_state_dict}(X\x01\x00\x00\x00w" + tensor + b"u"
           b"X\x0a\x00\x00\x00normalizerNu.")
    path = tmp_path / "retyped.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/byteorder", b"little")
        archive.writestr("archive/data/0", bytes(16))
    with pytest.raises(WeightsError, match=r"retyped\.pt: unexpected torch storage reference"):
        read_edge_checkpoint(path)
