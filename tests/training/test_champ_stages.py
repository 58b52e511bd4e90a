"""Stages 2 and 3 through the engine on tiny Champ weights: what changes, what is exported, processes, kill -9."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from m2pdance.m2penc.champ.denoising_unet import is_motion_parameter
from m2pdance.m2penc.champ.models import load_champ_files
from m2pdance.m2penc.encoder import load_m2penc
from m2pdance.m2penc.errors import InputError
from m2pdance.training.champ_stages import Stage2Config, Stage3Config, run_stage2, run_stage3
from m2pdance.training.video_data import Stage3Clips

from .test_engine import _free_port, _run, _start
from .test_video_data import write_build

CHAMP = Path("champ") / "m2pdance-tiny"


@pytest.fixture(scope="module")
def video_build(tmp_path_factory) -> Path:
    return write_build(tmp_path_factory.mktemp("video_build") / "data", video=True, guidance=True)


def _files(models: Path) -> dict[str, str]:
    return {"champ": str(models / CHAMP / "denoising_unet.safetensors"),
            "vae": str(models / "vae" / "m2pdance-tiny-vae.safetensors"),
            "image_encoder": str(models / "clip_vision" / "m2pdance-tiny-clip-vision.safetensors"),
            "m2penc": str(models / "m2penc" / "m2pdance-tiny-m2penc.safetensors")}


def _args(models: Path, data: Path, out: Path) -> list[str]:
    files = _files(models)
    return ["--data", str(data), "--out", str(out), "--champ", files["champ"], "--vae", files["vae"],
            "--image-encoder", files["image_encoder"], "--m2penc", files["m2penc"], "--preset", "tiny",
            "--set", "tensorboard=false"]


def test_stage2_trains_the_spatial_unets_and_exports_loadable_files(smoke_models, video_build, tmp_path):
    config = Stage2Config.preset("tiny", data_dir=str(video_build), output_dir=str(tmp_path / "s2"), steps=3,
                                 **_files(smoke_models))
    result = run_stage2(config)
    assert result.steps == 3 and {p.name for p in result.outputs} == {"reference_unet.safetensors",
                                                                       "denoising_unet.safetensors"}
    before = {stem: load_file(str(smoke_models / CHAMP / f"{stem}.safetensors"))
              for stem in ("reference_unet", "denoising_unet")}
    after = {p.stem: load_file(str(p)) for p in result.outputs}
    moved = {stem: {k for k in before[stem] if not torch.equal(before[stem][k], after[stem][k])} for stem in before}
    assert moved["denoising_unet"] and not any(is_motion_parameter(k) for k in moved["denoising_unet"])
    assert moved["reference_unet"] and not any(k.startswith("up_blocks.3.") for k in moved["reference_unet"])
    files = _files(smoke_models)
    models = load_champ_files(result.output_dir / "champ" / "denoising_unet.safetensors", files["vae"],
                              files["image_encoder"], device="cpu", dtype="fp32")
    assert torch.equal(models.reference_unet.state_dict()["conv_in.weight"], after["reference_unet"]["conv_in.weight"])
    meta = json.loads(_metadata(result.outputs[0])["m2pdance.training"])
    assert meta["stage"] == "stage2" and meta["steps"] == 3


def test_champs_image_stage_trains_and_exports_the_guidance_encoders(smoke_models, video_build, tmp_path):
    """``guidance = "maps"``: no M2PEnc needed; the four encoders train with the U-Nets and load beside them."""
    files = {k: v for k, v in _files(smoke_models).items() if k != "m2penc"}
    config = Stage2Config.preset("tiny", data_dir=str(video_build), output_dir=str(tmp_path / "s2"), steps=3,
                                 guidance="maps", preview_every=0, **files)
    result = run_stage2(config)
    encoders = {f"guidance_encoder_{t}" for t in ("depth", "normal", "semantic_map", "dwpose")}
    assert {p.stem for p in result.outputs} == {"reference_unet", "denoising_unet", *encoders}
    for stem in encoders:
        before = load_file(str(smoke_models / CHAMP / f"{stem}.safetensors"))
        after = load_file(str(result.output_dir / "champ" / f"{stem}.safetensors"))
        assert set(before) == set(after)
        moved = {k for k in before if not torch.equal(before[k], after[k])}
        assert "conv_out.weight" in moved and "conv_in.weight" in moved
        assert not any(k.startswith(("guidance_attention.", "attentions.0.")) for k in moved)   # unused by Champ
    models = load_champ_files(result.output_dir / "champ" / "denoising_unet.safetensors", files["vae"],
                              files["image_encoder"], device="cpu", dtype="fp32")
    trained = load_file(str(result.output_dir / "champ" / "guidance_encoder_depth.safetensors"))
    assert torch.equal(models.guidance_encoders["depth"].state_dict()["conv_out.weight"], trained["conv_out.weight"])


def test_image_stage_settings_are_checked():
    with pytest.raises(InputError, match="guidance must be one of"):
        Stage2Config.preset("tiny", guidance="music")
    with pytest.raises(InputError, match="previews"):
        Stage2Config.preset("tiny", guidance="maps", tensorboard=True, preview_every=5)


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def test_stage3_trains_motion_modules_and_m2penc(smoke_models, video_build, tmp_path):
    config = Stage3Config.preset("tiny", data_dir=str(video_build), output_dir=str(tmp_path / "s3"), steps=3,
                                 preview_every=3, **_files(smoke_models))
    result = run_stage3(config)
    names = {p.name for p in result.outputs}
    assert names == {"reference_unet.safetensors", "denoising_unet.safetensors", "m2penc.safetensors"}
    _check_video_preview(result.output_dir, Stage3Clips(video_build, 4)[0]["frames"], step=3)
    unet_before = load_file(str(smoke_models / CHAMP / "denoising_unet.safetensors"))
    unet_after = load_file(str(result.output_dir / "champ" / "denoising_unet.safetensors"))
    moved = {k for k in unet_before if not torch.equal(unet_before[k], unet_after[k])}
    assert moved and all(is_motion_parameter(k) for k in moved)
    m2p_before = load_file(_files(smoke_models)["m2penc"])
    m2p_after = load_file(str(result.output_dir / "m2penc.safetensors"))
    changed = {k for k in m2p_before if not torch.equal(m2p_before[k], m2p_after[k])}
    assert changed and not any(k.startswith("heatmap_head.") for k in changed)
    assert load_m2penc(result.output_dir / "m2penc.safetensors").config.feature_kind == "baseline"


def _check_video_preview(run: Path, real: torch.Tensor, step: int) -> None:
    """The run wrote ``previews/step_*.mp4`` with the preview's frames and a TensorBoard film strip whose
    bottom row is the item's real frames ``(n, 3, H, W)``."""
    with av.open(str(run / "previews" / f"step_{step:08d}.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    n, _, height, width = real.shape
    assert len(frames) == n and frames[0].shape == (height, width, 3)
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    image = events.Images("preview/video")[-1]
    assert image.step == step and (image.height, image.width) == (2 * height, n * width)
    strip = torch.from_numpy(np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB")))
    bottom = strip[height:].float() / 255                                        # (H, n W, 3)
    want = torch.cat(list(real.permute(0, 2, 3, 1)), dim=1)
    assert (bottom - want).abs().max() <= 1 / 255 + 1e-6


def test_missing_files_are_named(video_build, tmp_path):
    with pytest.raises(InputError, match="--champ"):
        run_stage2(Stage2Config.preset("tiny", data_dir=str(video_build), output_dir=str(tmp_path / "x")))


def _cli(stage: str, args: list[str], processes: int = 0) -> list[str]:
    launcher = [sys.executable]
    if processes:
        launcher += ["-m", "torch.distributed.run", "--nproc-per-node", str(processes), "--master-addr", "127.0.0.1",
                     "--master-port", str(_free_port())]
    return [*launcher, "-m", "m2pdance.training", "-q", stage, *args]




def test_stage2_two_processes_ddp_and_fsdp_match_one_and_fsdp_resumes_exactly(smoke_models, video_build, tmp_path):
    """2 processes (DDP, and FSDP-sharded) train what 1 process trains on the same global batch; a sharded run
    resumed from a checkpoint (model gathered, optimizer shards per process) ends bit-identical."""
    steps, lr = 3, 1e-4
    common = ["--steps", str(steps), "--batch-size", "4", "--lr", str(lr), "--set", "cond_drop=0.5",
              "--checkpoint-every", "1"]
    _run(_cli("stage2", [*_args(smoke_models, video_build, tmp_path / "one"), *common], processes=1))
    _run(_cli("stage2", [*_args(smoke_models, video_build, tmp_path / "two"), *common], processes=2))
    _run(_cli("stage2", [*_args(smoke_models, video_build, tmp_path / "fsdp"), *common, "--sharding", "fsdp"],
              processes=2))
    # the same samples, noise, timesteps and dropout per sample: the global losses agree to rounding
    losses = {name: [json.loads(x)["loss"] for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
              for name in ("one", "two", "fsdp")}
    assert len(losses["one"]) == steps
    assert losses["two"] == pytest.approx(losses["one"], rel=1e-4)
    assert losses["fsdp"] == pytest.approx(losses["one"], rel=1e-4)
    _assert_same_training(tmp_path / "one", tmp_path / "two", lr, steps)
    _assert_same_training(tmp_path / "one", tmp_path / "fsdp", lr, steps)
    checkpoint = tmp_path / "fsdp" / "checkpoints" / "step_00000002"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["sharding"] == "fsdp" and state["processes"] == 2
    assert {"optimizer_rank0.safetensors", "optimizer_rank1.safetensors", "model.safetensors"} <= \
        {p.name for p in checkpoint.iterdir()}
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "fsdp" / "checkpoints", resumed / "checkpoints")
    shutil.rmtree(resumed / "checkpoints" / "step_00000003")
    (resumed / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": "step_00000002", "step": 2}))
    _run(_cli("stage2", [*_args(smoke_models, video_build, resumed), *common, "--sharding", "fsdp",
                         "--resume", "latest"], processes=2))
    for stem in ("reference_unet", "denoising_unet"):
        a = load_file(str(tmp_path / "fsdp" / "champ" / f"{stem}.safetensors"))
        b = load_file(str(resumed / "champ" / f"{stem}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), stem


def _assert_same_training(one: Path, two: Path, lr: float, steps: int) -> None:
    """Two runs' exported U-Nets agree to rounding, tensor by tensor.

    The tiny random U-Nets have gradients near AdamW's eps (1e-8) in places (weights feeding a
    GroupNorm), where Adam turns summation-order rounding into steps of up to ``lr``: so each value
    may differ by at most ``steps * lr``, but in every tensor of 64+ values most agree (median difference
    <= 1e-6, against updates of ~``lr`` = 1e-4), and >= 99% of all values agree to 1e-6. A tensor left
    out of a process's sync or a wrong gradient scale moves most of its values by ~``lr`` and fails.
    """
    close = total = 0
    for stem in ("reference_unet", "denoising_unet"):
        a = load_file(str(one / "champ" / f"{stem}.safetensors"))
        b = load_file(str(two / "champ" / f"{stem}.safetensors"))
        assert a.keys() == b.keys()
        for key in a:
            diff = (b[key] - a[key]).abs()
            assert diff.max() <= steps * lr, (stem, key, float(diff.max()))
            agree = int((diff <= 1e-6).sum())
            if diff.numel() >= 64:
                assert diff.median() <= 1e-6, (stem, key, float(diff.median()))
            close, total = close + agree, total + diff.numel()
    assert close / total > 0.99, f"only {close / total:.1%} of the values agree to 1e-6"


def test_stage3_kill_9_then_resume_is_bit_identical(smoke_models, video_build, tmp_path):
    common = ["--steps", "10", "--checkpoint-every", "2"]
    _run(_cli("stage3", [*_args(smoke_models, video_build, tmp_path / "straight"), *common]))
    out = tmp_path / "killed"
    process = _start(_cli("stage3", [*_args(smoke_models, video_build, out), *common]))
    latest = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if latest.is_file() and json.loads(latest.read_text())["step"] >= 4:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed: " + process.communicate()[1][-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    _run(_cli("stage3", [*_args(smoke_models, video_build, out), *common, "--resume", "latest"]))
    for name in ("m2penc.safetensors", "champ/denoising_unet.safetensors"):
        a, b = load_file(str(tmp_path / "straight" / name)), load_file(str(out / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("stage", ["stage2", "stage3"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(smoke_models, video_build, stage):
    from torch.utils.data import DataLoader

    from m2pdance.training.champ_stages import enable_checkpointing
    from m2pdance.training.stage2 import Stage2Module
    from m2pdance.training.stage3 import Stage3Module
    from m2pdance.training.video_data import Stage2Pairs, Stage3Clips

    files = _files(smoke_models)
    results = []
    for checkpointing in (False, True):
        champ = load_champ_files(files["champ"], files["vae"], files["image_encoder"], device="cpu", dtype="fp32")
        m2penc = load_m2penc(files["m2penc"])
        if checkpointing:
            enable_checkpointing(champ, m2penc)
            assert all(block.gradient_checkpointing for block in champ.denoising_unet.down_blocks)
        if stage == "stage2":
            module, data = Stage2Module(champ, m2penc, cond_drop=0.5), Stage2Pairs(video_build, 8)
        else:
            module, data = Stage3Module(champ, m2penc), Stage3Clips(video_build, 4)
        batch = next(iter(DataLoader(data, batch_size=2)))
        batch["seed"] = torch.tensor([11, 12])
        # calls of a motion module, a ReferenceNet and a denoising-U-Net transformer: a recomputed (checkpointed)
        # module is entered twice per training step (pre-hooks: a recomputation stops once it has what it needs)
        watched = {"motion": next(champ.denoising_unet.motion_module_list()).transformer_blocks[0],
                   "reference": champ.reference_unet.down_blocks[0].attentions[0].transformer_blocks[0],
                   "denoising": champ.denoising_unet.down_blocks[0].attentions[0].transformer_blocks[0]}
        calls = dict.fromkeys(watched, 0)
        for name, watched_module in watched.items():
            watched_module.register_forward_pre_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
        loss = module(batch)["loss"]
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None},
                        calls))
    (loss_a, grads_a, calls_a), (loss_b, grads_b, calls_b) = results
    recomputed = {"stage2": ("reference", "denoising"), "stage3": ("motion", "denoising")}[stage]
    for name in recomputed:                 # stage 2 skips the motion modules, stage 3 freezes the ReferenceNet
        assert calls_a[name] >= 1 and calls_b[name] == 2 * calls_a[name], (name, calls_a, calls_b)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-7)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_a_recomputed_reference_net_leaves_the_bank_it_wrote_alone(smoke_models):
    """With checkpointing, the backward pass re-runs the ReferenceNet's blocks; their bank writes are ignored."""
    files = _files(smoke_models)
    champ = load_champ_files(files["champ"], files["vae"], files["image_encoder"], device="cpu", dtype="fp32")
    reference = champ.reference_unet.train().requires_grad_(True)
    reference.enable_gradient_checkpointing()
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    embeds = torch.randn(1, 1, reference.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    bank = reference.write_bank(latents, embeds, torch.float32, track_grad=True)
    written = dict(bank)
    sum(v.square().sum() for v in bank.values()).backward()
    assert bank.keys() == written.keys() and all(bank[k] is written[k] for k in written)
    assert reference.conv_in.weight.grad is not None and reference.conv_in.weight.grad.abs().sum() > 0
