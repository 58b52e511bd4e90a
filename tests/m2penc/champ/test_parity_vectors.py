"""Data-driven parity against Champ's own code: one runner for every vector in the vectors folder.

The folder is ``$M2P_CHAMP_VECTORS`` (default ``<repo>/../shared/spec/champ/vectors``); each
``*.json`` follows ``SCHEMA.md`` (kinds ``step``, ``sample``, ``motion_module``). The runner builds
our modules from the vector's Champ configs, loads the weights strictly (through
``champ_to_m2p_keys``), runs the kind's call sequence and checks every output role against the
vector's tolerance.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors.torch import load_file

from m2pdance.m2penc.checkpoint import load_strict
from m2pdance.m2penc.champ import (CHAMP_SCHEDULER_CONFIG, ChampModels, DenoisingUNet3D, GuidanceEncoder,
                                   ImageEncoderConfig, MotionModule, ReferenceUNet, VAEConfig, apply_cfg,
                                   champ_predictor, champ_to_m2p_keys, denoising_config_from_champ,
                                   encode_pose_guidance, guidance_config_from_champ, make_scheduler,
                                   motion_config_from_champ, predict_noise, predict_noise_branches,
                                   reference_state_from_latents, sample_video, unet_config_from_champ)
from m2pdance.m2penc.champ.autoencoder import build_vae
from m2pdance.m2penc.champ.image_encoder import build_image_encoder
from m2pdance.m2penc.progress import NO_CONTROL
from m2pdance.m2penc.sampling.windows import context_windows, windowed_prediction

REPO = Path(__file__).resolve().parents[3]
VECTORS = Path(os.environ.get("M2P_CHAMP_VECTORS", REPO.parent / "shared" / "spec" / "champ" / "vectors"))
Tensors = dict[str, torch.Tensor]


def _vector_files() -> list[Path]:
    return sorted(VECTORS.glob("*.json"))


def _load_vector(path: Path) -> tuple[dict[str, Any], Tensors]:
    spec = json.loads(path.read_text())
    tensors: Tensors = {}
    for name in spec["files"]:
        tensors.update(load_file(str(path.parent / name)))
    return spec, tensors


def _weights(spec: dict[str, Any], tensors: Tensors, module: str) -> Tensors:
    prefix = spec["weights"][module]
    return {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}


def _load(module: torch.nn.Module, spec: dict[str, Any], tensors: Tensors, name: str) -> torch.nn.Module:
    load_strict(module, champ_to_m2p_keys(_weights(spec, tensors, name), name), f"{spec['name']}:{name}")
    return module.eval()


def _inputs(spec: dict[str, Any], tensors: Tensors) -> Tensors:
    out = {}
    for role, entry in spec["inputs"].items():
        t = tensors[entry["tensor"]]
        out[role] = t.float() if t.is_floating_point() else t
    return out


def _build_models(spec: dict[str, Any], tensors: Tensors) -> ChampModels:
    cfg = spec["configs"]
    unet_cfg = denoising_config_from_champ(cfg["denoising_unet"])
    guide_cfg = guidance_config_from_champ(cfg["guidance_encoder"])
    encoders = {t: _load(GuidanceEncoder(guide_cfg), spec, tensors, f"guidance_encoder.{t}")
                for t in spec["guidance_types"]}
    return ChampModels(
        reference_unet=_load(ReferenceUNet(unet_config_from_champ(cfg["reference_unet"])), spec, tensors,
                             "reference_unet"),
        denoising_unet=_load(DenoisingUNet3D(unet_cfg), spec, tensors, "denoising_unet"),
        guidance_encoders=encoders,
        # Not used by the vectors (they start from latents and CLIP embeddings).
        vae=build_vae(VAEConfig.preset("tiny")),
        image_encoder=build_image_encoder(ImageEncoderConfig.preset("tiny")),
    )


def _guidance(models: ChampModels, spec: dict[str, Any], inputs: Tensors) -> torch.Tensor:
    maps = {t: inputs[f"guidance_uint8.{t}"][0].permute(1, 0, 2, 3) for t in spec["guidance_types"]}
    return encode_pose_guidance(models, maps)


def _check_scheduler(spec: dict[str, Any]) -> None:
    for key, value in CHAMP_SCHEDULER_CONFIG.items():
        assert spec["scheduler"][key] == value, key
    assert make_scheduler(spec["num_inference_steps"]).timesteps.tolist() == spec["timesteps"]


def run_step(spec: dict[str, Any], tensors: Tensors) -> Tensors:
    """Kind ``step``: guidance, no-CFG and CFG predictions, one DDIM step."""
    _check_scheduler(spec)
    models = _build_models(spec, tensors)
    inp = _inputs(spec, tensors)
    state = reference_state_from_latents(models, inp["ref_latents"], inp["clip_image_embeds"])
    guidance_fea = _guidance(models, spec, inp)
    latents, t = inp["latents"], inp["timestep"]
    uncond, cond = predict_noise_branches(models, state, latents, t, guidance_fea)
    guided = apply_cfg(uncond, cond, spec["guidance_scale"])
    scheduler = make_scheduler(spec["num_inference_steps"])
    return {
        "guidance_fea": guidance_fea,
        "noise_pred_nocfg": predict_noise(models, state, latents, t, guidance_fea, guidance_scale=1.0),
        "noise_pred_uncond": uncond,
        "noise_pred_cond": cond,
        "noise_pred_guided": guided,
        "prev_latents": scheduler.step(guided, t, latents, eta=spec["eta"]).prev_sample,
    }


def run_sample(spec: dict[str, Any], tensors: Tensors) -> Tensors:
    """Kind ``sample``: the windowed CFG loop, every step recorded; then ``sample_video`` itself."""
    _check_scheduler(spec)
    ctx = spec["context"]
    assert ctx["schedule"] == "uniform" and ctx["stride"] == 1 and ctx["batch_size"] == 1
    models = _build_models(spec, tensors)
    inp = _inputs(spec, tensors)
    state = reference_state_from_latents(models, inp["ref_latents"], inp["clip_image_embeds"])
    guidance_fea = _guidance(models, spec, inp)
    latents = inp["init_latents"]
    windows = context_windows(latents.shape[2], ctx["frames"], ctx["overlap"], closed_loop=ctx["closed_loop"])
    assert windows == ctx["windows"]
    scheduler = make_scheduler(spec["num_inference_steps"])
    out = {"guidance_fea": guidance_fea}
    for i, t in enumerate(scheduler.timesteps):
        out[f"noise_pred_guided.{i}"] = windowed_prediction(champ_predictor(models, state, spec["guidance_scale"]),
                                                            latents, t, guidance_fea, windows, NO_CONTROL)
        latents = scheduler.step(out[f"noise_pred_guided.{i}"], t, latents, eta=spec["eta"]).prev_sample
        out[f"latents_after_step.{i}"] = latents
    out["final_latents"] = sample_video(models, state, guidance_fea, spec["num_inference_steps"],
                                        spec["guidance_scale"], context_size=ctx["frames"],
                                        context_overlap=ctx["overlap"], init_latents=inp["init_latents"])
    return out


def run_motion_module(spec: dict[str, Any], tensors: Tensors) -> Tensors:
    """Kind ``motion_module``: one module on a full clip and on its first 16 frames."""
    x = _inputs(spec, tensors)["x"]
    config = motion_config_from_champ(spec["configs"]["motion_module"], channels=x.shape[1])
    module = _load(MotionModule(config), spec, tensors, "motion_module")
    with torch.no_grad():
        return {"y": module.forward_video(x), "y_first16": module.forward_video(x[:, :, :16])}


RUNNERS: dict[str, Callable[[dict[str, Any], Tensors], Tensors]] = {
    "step": run_step, "sample": run_sample, "motion_module": run_motion_module,
}


def test_vectors_folder_is_not_empty():
    assert _vector_files(), f"no parity vectors found in {VECTORS}"


@pytest.mark.parametrize("path", _vector_files(), ids=lambda p: p.stem)
def test_parity_vector(path: Path):
    spec, tensors = _load_vector(path)
    assert spec["schema_version"] == 1
    torch.manual_seed(0)
    outputs = RUNNERS[spec["kind"]](spec, tensors)
    errors = {}
    for role, entry in spec["outputs"].items():
        expected = tensors[entry["tensor"]].float()
        got = outputs[role].float().cpu()
        assert got.shape == expected.shape, role
        errors[role] = (got - expected).abs().max().item()
    failed = {r: (e, spec["tolerance"][r]) for r, e in errors.items() if not e <= spec["tolerance"][r]}
    assert not failed, f"roles over tolerance (max abs, tol): {failed}; all: {errors}"
