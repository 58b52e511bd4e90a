"""Node behaviour as artists meet it: caching when swapping the photo, and bad inputs with the fix.

Prompts are the shipped music_to_dance workflow, shrunk (64 px, 2 steps, 1 s) so they run fast.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile
from PIL import Image

from m2pdance.devtools import comfy_harness as harness

MUSIC, PHOTO = "m2pdance_example_music.wav", "m2pdance_example_dancer.png"


@pytest.fixture
def home(prepared_home):
    return prepared_home


@pytest.fixture
def nodes(home):
    return harness.all_nodes()


def small_dance_prompt(nodes) -> dict:
    prompt = harness.read_workflow(harness.runner.EXAMPLE_WORKFLOWS / "music_to_dance.json", nodes)
    for node in prompt.values():
        inputs = node["inputs"]
        if "width" in inputs:
            inputs.update(width=64, height=64)
        if node["class_type"] == "M2PDanceSegmentedSampler":
            inputs["steps"] = 2
        if node["class_type"] == "M2PDanceLoadMusic":
            inputs["duration"] = 1.0
    return prompt


def by_type(prompt: dict, class_type: str) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] == class_type)


def output_files(home) -> list:
    return sorted(p for p in (home / "output").rglob("*") if p.is_file())


def test_swapping_the_reference_photo_reruns_only_the_image_side(home, nodes):
    executor = harness.new_executor(nodes)
    prompt = small_dance_prompt(nodes)
    first = executor.run(prompt)
    assert set(first.executed) == set(prompt)
    Image.fromarray(np.full((80, 60, 3), 200, np.uint8)).save(home / "input" / "other_dancer.png")
    prompt[by_type(prompt, "LoadImage")]["inputs"]["image"] = "other_dancer.png"
    second = executor.run(prompt)
    music_side = {by_type(prompt, t) for t in ("M2PDanceLoadMusic", "M2PDanceJukeboxEncode", "M2PDanceLoadM2PEnc",
                                                "M2PDanceM2PEncGuidance", "M2PDanceLoadChamp")}
    assert set(second.executed) == {by_type(prompt, t) for t in ("LoadImage", "M2PDanceChampReference",
                                                                  "M2PDanceSegmentedSampler", "M2PDanceVideoCombine")}
    assert not music_side & set(second.executed)
    assert len(output_files(home)) == 2  # one video per run


def test_replacing_the_music_file_under_the_same_name_reruns_the_music_side(home, nodes):
    executor = harness.new_executor(nodes)
    prompt = small_dance_prompt(nodes)
    executor.run(prompt)
    data, rate = soundfile.read(home / "input" / MUSIC)
    soundfile.write(home / "input" / MUSIC, data[::-1].copy(), rate)  # same name, new content
    again = executor.run(prompt)
    assert by_type(prompt, "M2PDanceLoadMusic") in again.executed


def _fails(executor, prompt, match: str):
    with pytest.raises((harness.NodeExecutionError, harness.PromptValidationError), match=match):
        executor.run(prompt)


def test_missing_model_file_is_rejected_at_validation_with_its_name(home, nodes, smoke_models):
    prompt = small_dance_prompt(nodes)
    by_type_id = by_type(prompt, "M2PDanceLoadM2PEnc")
    prompt[by_type_id]["inputs"]["m2penc"] = "m2pdance-tiny-m2penc.safetensors"
    m2penc = smoke_models / "m2penc" / "m2pdance-tiny-m2penc.safetensors"
    hidden = m2penc.with_suffix(".moved")
    m2penc.rename(hidden)  # ComfyUI re-reads the dropdown on every queue, as the harness does
    try:
        _fails(harness.new_executor(nodes), prompt,
               r"node 3 \(M2PDanceLoadM2PEnc\) input 'm2penc': value_not_in_list: 'm2pdance-tiny-m2penc.safetensors'")
    finally:
        hidden.rename(m2penc)
    assert output_files(home) == []


def test_loader_error_names_file_folder_and_manifest_entry(home, nodes):
    # The pack is loaded under its path-derived name, so compare the class by name.
    with pytest.raises(FileNotFoundError, match=r"'gone.safetensors' not found in models/m2penc.*"
                                                r"manifest entry 'm2penc_paper'") as info:
        nodes["M2PDanceLoadM2PEnc"].execute(m2penc="gone.safetensors", dtype="auto")
    assert type(info.value).__name__ == "WeightsNotFoundError"


def test_unknown_model_name_is_rejected_before_running(home, nodes):
    prompt = small_dance_prompt(nodes)
    prompt[by_type(prompt, "M2PDanceLoadChamp")]["inputs"]["champ"] = "nope/denoising_unet.pth"
    _fails(harness.new_executor(nodes), prompt, r"input 'champ': value_not_in_list")


def test_wrong_model_in_a_slot_is_a_clear_error(home, nodes, smoke_models, tmp_path):
    import shutil

    wrong = smoke_models / "m2penc" / "actually_a_vae.safetensors"
    shutil.copy(smoke_models / "vae" / "m2pdance-tiny-vae.safetensors", wrong)
    try:
        fresh = harness.all_nodes()  # dropdowns are read when the node list is built
        prompt = small_dance_prompt(fresh)
        prompt[by_type(prompt, "M2PDanceLoadM2PEnc")]["inputs"]["m2penc"] = wrong.name
        _fails(harness.new_executor(fresh), prompt, r"holds a 'champ.vae' model, but a 'm2penc' model was expected")
    finally:
        wrong.unlink()
    assert output_files(home) == []


@pytest.mark.parametrize("pixels,ok", [
    (np.zeros((1, 1, 3), np.uint8), False),                     # 1x1
    (np.zeros((70, 50, 4), np.uint8), True),                    # RGBA, odd size
    (np.full((90, 90), 128, np.uint8), True),                   # grayscale
])
def test_reference_photos_of_every_kind(home, nodes, pixels, ok):
    Image.fromarray(pixels).save(home / "input" / "odd.png")
    fresh = harness.all_nodes()
    prompt = small_dance_prompt(fresh)
    prompt[by_type(prompt, "LoadImage")]["inputs"]["image"] = "odd.png"
    executor = harness.new_executor(fresh)
    if ok:
        executor.run(prompt)
        assert len(output_files(home)) == 1
    else:
        _fails(executor, prompt, r"reference image is 1x1 pixels; use a photo of at least")
        assert output_files(home) == []


def test_silent_music_is_refused_with_the_reason(home, nodes):
    soundfile.write(home / "input" / "silence.wav", np.zeros(44100 * 2), 44100)
    fresh = harness.all_nodes()
    prompt = small_dance_prompt(fresh)
    prompt[by_type(prompt, "M2PDanceLoadMusic")]["inputs"]["audio"] = "silence.wav"
    _fails(harness.new_executor(fresh), prompt, r"silent")
    assert output_files(home) == []


def test_music_shorter_than_one_frame_is_refused(home, nodes):
    import torch

    prompt = small_dance_prompt(nodes)
    prompt[by_type(prompt, "M2PDanceLoadMusic")]["inputs"]["duration"] = 0.03
    _fails(harness.new_executor(nodes), prompt, r"only 0.030 s of audio .* at least 0.1 s is needed")
    assert output_files(home) == []
    blip = {"waveform": torch.rand(1, 1, 2000) - 0.5, "sample_rate": 44100}  # 45 ms from another node
    with pytest.raises(ValueError, match="shorter than one video frame"):
        nodes["M2PDanceJukeboxEncode"].execute(music=blip, backend="light (librosa, 35-d, CPU)", layer=66, fps=15)


def test_interrupt_stops_the_sampler_and_leaves_no_file(home, nodes, monkeypatch):
    import comfy.model_management as mm
    import comfy.utils

    prompt = small_dance_prompt(nodes)
    calls = {"n": 0}
    original = comfy.utils.ProgressBar.update_absolute

    def interrupt_after_a_few(self, value, total=None, preview=None):
        calls["n"] += 1
        if calls["n"] == 3:
            mm.interrupt_current_processing(True)
        return original(self, value, total, preview)

    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", interrupt_after_a_few)
    with pytest.raises(harness.NodeExecutionError) as info:
        harness.new_executor(nodes).run(prompt)
    assert type(info.value.original).__name__ == "InterruptProcessingException"
    assert output_files(home) == []
    assert not mm.processing_interrupted()


def test_jukebox_encode_with_the_built_in_backend_and_the_feature_cache(home, nodes, smoke_models, monkeypatch, tmp_path):
    """Load Jukebox (tiny smoke files) -> Jukebox Encode (built in): 4800-d in real use, the tiny width here."""
    monkeypatch.setenv("M2PDANCE_CACHE_DIR", str(tmp_path / "features"))
    music = nodes["M2PDanceLoadMusic"].execute(audio=MUSIC, start=0.0, duration=1.0)[0]
    jukebox = nodes["M2PDanceLoadJukebox"].execute(vqvae="m2pdance-tiny-vqvae.safetensors",
                                                   prior="m2pdance-tiny-prior.safetensors", dtype="auto")[0]
    encode = nodes["M2PDanceJukeboxEncode"].execute
    features = encode(music=music, backend="jukebox (4800-d, built in)", layer=3, fps=15, jukebox=jukebox)[0]
    assert features.kind == "jukebox" and features.layer == 3 and features.num_frames == 15
    assert list((tmp_path / "features").rglob("*.safetensors")), "features were not cached"
    with pytest.raises(ValueError, match="needs the Jukebox weights"):
        encode(music=music, backend="jukebox (4800-d, built in)", layer=3, fps=15)


def test_sampler_latent_output_is_comfyui_sd15_layout(home, nodes):
    """LATENT must be what ComfyUI's VAE Decode takes for SD-1.5: (frames, 4, h, w), unscaled."""
    import torch

    music = nodes["M2PDanceLoadMusic"].execute(audio=MUSIC, start=0.0, duration=1.0)[0]
    features = nodes["M2PDanceJukeboxEncode"].execute(music=music, backend="light (librosa, 35-d, CPU)",
                                                      layer=66, fps=15)[0]
    m2penc = nodes["M2PDanceLoadM2PEnc"].execute(m2penc="m2pdance-tiny-m2penc.safetensors", dtype="fp32")[0]
    guidance = nodes["M2PDanceM2PEncGuidance"].execute(music_features=features, m2penc=m2penc, width=64, height=64)[0]
    champ = nodes["M2PDanceLoadChamp"].execute(champ="m2pdance-tiny/denoising_unet.safetensors",
                                               vae="m2pdance-tiny-vae.safetensors",
                                               clip_vision="m2pdance-tiny-clip-vision.safetensors", dtype="fp32")[0]
    reference = nodes["M2PDanceChampReference"].execute(reference=torch.rand(1, 64, 64, 3), champ=champ,
                                                        width=64, height=64)[0]
    frames, latent, _ = nodes["M2PDanceSegmentedSampler"].execute(
        champ=champ, reference=reference, pose_guidance=guidance, seed=0, steps=1, cfg=3.5, segment_seconds=5.0,
        join="none", overlap=4, noise_prior=False)[:3]
    samples = latent["samples"]
    assert samples.shape == (frames.shape[0], 4, 8, 8)
    with torch.no_grad():  # what ComfyUI's VAE Decode does: decode the samples as they are
        decoded = (champ.vae.decode(samples[:2]).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    torch.testing.assert_close(decoded, frames[:2], rtol=1e-4, atol=1e-4)


def test_jukemirlib_backend_without_load_jukebox_names_the_missing_node(home, nodes):
    """jukemirlib reads the same checkpoint files, so it needs Load Jukebox too (and its device)."""
    music = nodes["M2PDanceLoadMusic"].execute(audio=MUSIC, start=0.0, duration=1.0)[0]
    with pytest.raises(ValueError, match="needs the Jukebox weights: connect a 'Load Jukebox"):
        nodes["M2PDanceJukeboxEncode"].execute(music=music, backend="jukebox (4800-d, jukemirlib)", layer=66, fps=15)
