"""Parity with EDGE's own code: one generic runner over the EDGE test-vector folder.

The folder is ``$M2P_EDGE_VECTORS`` (default ``<repo>/../shared/spec/edge``); every ``*.json`` there
with a ``tensors`` table is a vector set (REPORT.md §9). The runner builds :class:`EDGEConfig` from
the json's ``config`` fields, loads the ``sd.<key>`` weights strictly into :class:`DanceDecoder` and
checks each tensor group present against the json's suggested tolerance:

* ``fwd``: conditional, unconditional and guided forwards (``out_guided_w<W>``: weight W);
* ``sched``: the cosine ``alphas_cumprod``;
* ``ddim`` / ``long``: DDIM from the stored x_T and per-step noises (``long`` runs
  :func:`long_ddim_sample`: guidance ramp and in-painting), every intermediate x0 / x_next kept;
* ``fk``: positions from :func:`forward_kinematics` (EDGE's FK is quaternion based, positions agree);
* ``rot6d``: 6D to rotation, compared as matrices (EDGE's axis-angle may differ by 2 pi);
* ``norm``: checked by the normalizer's own tests, skipped here.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors.torch import load_file

from m2pdance.m2penc.body.rotations import axis_angle_to_matrix, rotation_6d_to_matrix
from m2pdance.m2penc.body.skeleton import forward_kinematics
from m2pdance.m2penc.checkpoint import load_strict
from m2pdance.m2penc.motion.edge import (FEATURE_DIMS, DanceDecoder, EDGEConfig, cosine_alphas_cumprod, ddim_sample,
                                         guidance_ramp, long_ddim_sample)

REPO = Path(__file__).resolve().parents[4]
VECTORS = Path(os.environ.get("M2P_EDGE_VECTORS", REPO.parent / "shared" / "spec" / "edge"))
Tensors = dict[str, torch.Tensor]
#: Tensor group -> key of the json's ``tolerances.suggested_atol``.
TOLERANCE_KEY = {"fwd": "forward", "sched": "forward", "ddim": "sampling", "long": "sampling",
                 "fk": "fk_rot6d_unnorm", "rot6d": "fk_rot6d_unnorm"}
DEFAULT_ATOL = {"forward": 1e-4, "sampling": 1e-3, "fk_rot6d_unnorm": 1e-4}


def _specs() -> list[Path]:
    out = []
    for path in sorted(VECTORS.glob("*.json")):
        spec = json.loads(path.read_text())
        if isinstance(spec, dict) and "tensors" in spec and "file" in spec:
            out.append(path)
    return out


def _cases() -> list[Any]:
    cases = []
    for path in _specs():
        groups = sorted({name.split(".", 1)[0] for name in json.loads(path.read_text())["tensors"]} - {"sd"})
        cases += [pytest.param(path, group, id=f"{path.stem}:{group}") for group in groups]
    return cases or [pytest.param(None, None, marks=pytest.mark.skip(reason=f"no EDGE vectors in {VECTORS}"))]


def _load(path: Path) -> tuple[dict[str, Any], Tensors]:
    spec = json.loads(path.read_text())
    return spec, load_file(str(path.parent / spec["file"]))


def config_from_spec(spec: dict[str, Any]) -> EDGEConfig:
    """The json's config fields that :class:`EDGEConfig` knows; the feature kind follows the width."""
    raw = spec["config"]
    names = {f.name for f in dataclasses.fields(EDGEConfig)}
    values = {k: v for k, v in raw.items() if k in names}
    if "feature_kind" not in values:
        values["feature_kind"] = {dim: kind for kind, dim in FEATURE_DIMS.items()}[raw["cond_feature_dim"]]
    return EDGEConfig.from_dict(values)


def _model(spec: dict[str, Any], tensors: Tensors) -> DanceDecoder:
    model = DanceDecoder(config_from_spec(spec))
    weights = {k[len("sd."):]: v.float() for k, v in tensors.items() if k.startswith("sd.")}
    load_strict(model, weights, spec["file"])
    return model.eval()


def _atol(spec: dict[str, Any], group: str) -> float:
    key = TOLERANCE_KEY[group]
    return float(spec.get("tolerances", {}).get("suggested_atol", {}).get(key, DEFAULT_ATOL[key]))


def _close(name: str, got: torch.Tensor, want: torch.Tensor, atol: float) -> None:
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got.double() - want.double()).abs().max().item()
    assert err <= atol, f"{name}: max abs error {err:.3g} > atol {atol:g}"


def _check_fwd(spec: dict[str, Any], t: Tensors, atol: float) -> list[str]:
    model = _model(spec, t)
    x, cond, steps = t["fwd.x_t"].float(), t["fwd.cond"].float(), t["fwd.t"].long()
    rows = x.shape[0]
    checked = []
    with torch.no_grad():
        if "fwd.out_cond" in t:
            _close("fwd.out_cond", model(x, cond, steps, torch.ones(rows, dtype=torch.bool)), t["fwd.out_cond"], atol)
            _close("fwd.out_cond (keep_cond=None)", model(x, cond, steps), t["fwd.out_cond"], atol)
            checked.append("fwd.out_cond")
        if "fwd.out_uncond" in t:
            _close("fwd.out_uncond", model(x, cond, steps, torch.zeros(rows, dtype=torch.bool)),
                   t["fwd.out_uncond"], atol)
            checked.append("fwd.out_uncond")
        for name in t:
            match = re.fullmatch(r"fwd\.out_guided_w([0-9.]+)", name)
            if match:
                _close(name, model.guided(x, cond, steps, float(match.group(1))), t[name], atol)
                checked.append(name)
    return checked


def _check_sched(spec: dict[str, Any], t: Tensors, atol: float) -> list[str]:
    want = t["sched.alphas_cumprod"]
    _close("sched.alphas_cumprod", cosine_alphas_cumprod(want.shape[0]), want, min(atol, 1e-6))
    return ["sched.alphas_cumprod"]


def _check_sampling(group: str, spec: dict[str, Any], t: Tensors, atol: float) -> list[str]:
    model = _model(spec, t)
    x_t, noise = t[f"{group}.x_T"].float(), t[f"{group}.noise"].float()
    steps = noise.shape[0] + 1
    diffusion = spec["config"].get("diffusion", {})
    weight = float(diffusion.get("guidance_weight", 2.0))
    eta = float(diffusion.get("eta", 1.0))
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    sampler: Callable[..., torch.Tensor] = long_ddim_sample if group == "long" else ddim_sample
    out = sampler(model, t[f"{group}.cond"].float(), steps=steps, eta=eta, guidance_weight=weight,
                  noises=torch.cat([x_t[None], noise]), on_step=lambda k, x0, x: seen.append((x0.clone(), x.clone())))
    checked = []
    if f"{group}.x0_pred" in t:
        _close(f"{group}.x0_pred", torch.stack([x0 for x0, _ in seen]), t[f"{group}.x0_pred"], atol)
        checked.append(f"{group}.x0_pred")
    if f"{group}.x_next" in t:
        _close(f"{group}.x_next", torch.stack([x for _, x in seen[:-1]]), t[f"{group}.x_next"], atol)
        checked.append(f"{group}.x_next")
    for name in (f"{group}.weights", f"{group}.guidance_weights"):
        if name in t:
            _close(name, torch.tensor(guidance_ramp(steps, weight)), t[name], 1e-6)
            checked.append(name)
    if f"{group}.out" in t:
        _close(f"{group}.out", out, t[f"{group}.out"], atol)
        checked.append(f"{group}.out")
    return checked


def _check_fk(spec: dict[str, Any], t: Tensors, atol: float) -> list[str]:
    joints, _ = forward_kinematics(t["fk.axis_angle"].double(), t["fk.root_pos"].double())
    _close("fk.joints", joints, t["fk.joints"], atol)
    return ["fk.joints"]


def _check_rot6d(spec: dict[str, Any], t: Tensors, atol: float) -> list[str]:
    got = rotation_6d_to_matrix(t["rot6d.in"].double())
    _close("rot6d (as matrices)", got, axis_angle_to_matrix(t["rot6d.axis_angle"].double()), atol)
    return ["rot6d.axis_angle"]


@pytest.mark.parametrize("path,group", _cases())
def test_vector_group(path: Path, group: str) -> None:
    spec, tensors = _load(path)
    if group == "norm":
        from m2pdance.m2penc.motion.edge.normalizer import MinMaxNormalizer

        scaler = MinMaxNormalizer.from_tensors({k[len("norm."):]: v for k, v in tensors.items() if k.startswith("norm.")})
        _close("norm.unnorm_out", scaler.unnormalize(tensors["norm.unnorm_in"]), tensors["norm.unnorm_out"], 1e-5)
        return
    if group not in TOLERANCE_KEY:
        pytest.skip(f"no runner for tensor group {group!r} in {path.name}")
    atol = _atol(spec, group)
    with torch.no_grad():
        if group == "fwd":
            checked = _check_fwd(spec, tensors, atol)
        elif group == "sched":
            checked = _check_sched(spec, tensors, atol)
        elif group in ("ddim", "long"):
            checked = _check_sampling(group, spec, tensors, atol)
        elif group == "fk":
            checked = _check_fk(spec, tensors, atol)
        else:
            checked = _check_rot6d(spec, tensors, atol)
    assert checked, f"{path.name}: group {group!r} has no output tensor the runner knows"


def test_tiny_preset_is_the_vectors_config() -> None:
    path = VECTORS / "tiny_edge.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    assert config_from_spec(json.loads(path.read_text())) == EDGEConfig.preset("tiny")


def test_default_timesteps_match_edge() -> None:
    from m2pdance.m2penc.motion.edge import ddim_timesteps
    path = VECTORS / "tiny_edge.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    assert ddim_timesteps(50) == json.loads(path.read_text())["ddim_timesteps_for_edge_default_S50"]
    assert ddim_timesteps(5) == [999, 799, 599, 399, 199, -1]
