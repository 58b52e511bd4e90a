"""Careless and hostile inputs at the nodes: file names, loader dropdowns, weights messages, node texts."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from m2pdance.devtools import comfy_harness as harness

MUSIC = "m2pdance_example_music.wav"
OWNED = ("M2PDanceLoadMusic", "M2PDanceLoadJukebox", "M2PDanceJukeboxEncode", "M2PDanceLoadM2PEnc",
         "M2PDanceM2PEncGuidance", "M2PDanceLoadChamp", "M2PDanceChampReference", "M2PDancePoseDrivenGuidance",
         "M2PDanceSegmentedSampler", "M2PDanceVideoCombine", "M2PDanceLoadMotion", "M2PDanceRenderPoseMaps",
         "M2PDanceSaveMotion", "M2PDanceLoadEDGE", "M2PDanceMusicToMotionEDGE", "M2PDanceBeatChoreographer")


@pytest.fixture
def home(prepared_home):
    return prepared_home


@pytest.fixture
def nodes(home):
    return harness.all_nodes()


def music_prompt(audio: str) -> dict:
    return {"1": {"class_type": "M2PDanceLoadMusic", "inputs": {"audio": audio, "start": 0.0, "duration": 1.0}},
            "2": {"class_type": "PreviewAudio", "inputs": {"audio": ["1", 0]}}}


def validation_errors(nodes, prompt) -> list[dict]:
    with pytest.raises(harness.executor.PromptValidationError) as info:
        harness.new_executor(nodes).validate(prompt)
    return info.value.errors


@pytest.mark.parametrize("name", ["../outside.wav", "../../../../etc/passwd", "/etc/passwd", "a\x00.wav",
                                  "sub/../../outside.wav", "x" * 300 + ".wav"])
def test_load_music_refuses_unsafe_names_at_validation_before_reading(home, nodes, name, monkeypatch):
    (home / "outside.wav").write_bytes((home / "input" / MUSIC).read_bytes())
    errors = validation_errors(nodes, music_prompt(name))
    assert len(errors) == 1, errors
    assert "input folder" in errors[0]["message"] and str(home / "input") in errors[0]["message"]
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    nodes["M2PDanceLoadMusic"].fingerprint_inputs(audio=name, start=0.0, duration=1.0)
    assert opened == []  # an unsafe name is never opened, not even to hash it
    with pytest.raises(Exception, match="input folder"):
        nodes["M2PDanceLoadMusic"].execute(audio=name, start=0.0, duration=1.0)


def test_a_symlink_out_of_the_input_folder_is_refused(home, nodes):
    (home / "outside.wav").write_bytes((home / "input" / MUSIC).read_bytes())
    (home / "input" / "link.wav").symlink_to(home / "outside.wav")
    errors = validation_errors(nodes, music_prompt("link.wav"))
    assert len(errors) == 1 and "resolves outside" in errors[0]["message"]


def test_a_missing_music_file_gives_one_message(home, nodes):
    errors = validation_errors(nodes, music_prompt("gone.wav"))
    assert [e["type"] for e in errors] == ["custom_validation_failed"], errors
    assert "music file not found" in errors[0]["message"]


def test_load_music_with_a_good_name_still_runs(home, nodes):
    harness.new_executor(nodes).validate(music_prompt(MUSIC))
    out = nodes["M2PDanceLoadMusic"].execute(audio=MUSIC, start=0.0, duration=0.5)[0]
    assert out["waveform"].shape[-1] > 0


@pytest.mark.parametrize("name", ["../x.npz", "/etc/passwd", "a\x00.npz"])
def test_load_motion_refuses_unsafe_names(home, nodes, name):
    result = nodes["M2PDanceLoadMotion"].validate_inputs(motion=name)
    assert result is not True and "input folder" in result
    assert nodes["M2PDanceLoadMotion"].fingerprint_inputs(motion=name).startswith("unsafe:")


@pytest.mark.parametrize("node, inputs", [
    ("M2PDanceLoadM2PEnc", dict(m2penc="../../etc/passwd", dtype="auto")),
    ("M2PDanceLoadEDGE", dict(edge="/etc/passwd", dtype="auto")),
    ("M2PDanceLoadJukebox", dict(vqvae="../vae/x.safetensors", prior="p.safetensors", dtype="auto")),
    ("M2PDanceLoadChamp", dict(champ="m2pdance-tiny/../../../x/denoising_unet.safetensors",
                               vae="m2pdance-tiny-vae.safetensors", clip_vision="a\x00b", dtype="auto")),
])
def test_loaders_refuse_unsafe_names_naming_the_folder(home, nodes, node, inputs):
    with pytest.raises(ValueError, match=r"unsafe file name .*models/"):
        nodes[node].execute(**inputs)


def test_loader_dropdowns_list_weights_files_only(home, nodes, smoke_models):
    junk = [smoke_models / "m2penc" / "x.bak", smoke_models / "edge" / "notes.txt", smoke_models / "jukebox" / "x.bak"]
    for path in junk:
        path.write_bytes(b"x")
    try:
        for node in ("M2PDanceLoadM2PEnc", "M2PDanceLoadEDGE", "M2PDanceLoadJukebox", "M2PDanceLoadChamp"):
            for name, inp in harness.executor.node_spec(nodes[node]).inputs.items():
                options = inp.options.get("options")
                if options is not None and name != "dtype":
                    assert not [o for o in options if o.endswith((".bak", ".txt", ".json"))], (node, name, options)
    finally:
        for path in junk:
            path.unlink()


def test_load_jukebox_dropdowns_split_by_role_and_defaults_are_options(home, nodes):
    inputs = harness.executor.node_spec(nodes["M2PDanceLoadJukebox"]).inputs
    vqvae, prior = inputs["vqvae"].options, inputs["prior"].options
    assert vqvae["options"] == ["m2pdance-tiny-vqvae.safetensors"], vqvae
    assert prior["options"] == ["m2pdance-tiny-prior.safetensors"], prior
    assert vqvae["default"] in vqvae["options"] and prior["default"] in prior["options"]


def test_jukebox_choices_rules():
    from m2pdance.nodes.jukebox_encode import jukebox_choices

    files = ["prior_level_2.pth.tar", "vqvae.pth.tar", "converted.safetensors"]
    assert jukebox_choices(files, "vqvae", "vqvae.pth.tar") == (["vqvae.pth.tar", "converted.safetensors"],
                                                                 "vqvae.pth.tar")
    assert jukebox_choices(files[:1], "prior", "x.tar") == (["prior_level_2.pth.tar"], "prior_level_2.pth.tar")
    assert jukebox_choices([], "prior", "x.tar") == ([], None)


def test_missing_smoke_m2penc_points_to_weights_smoke(home, nodes, smoke_models):
    name = "m2pdance-tiny-m2penc.safetensors"
    hidden = smoke_models / "m2penc" / (name + ".moved")
    (smoke_models / "m2penc" / name).rename(hidden)
    try:
        with pytest.raises(FileNotFoundError) as info:
            nodes["M2PDanceLoadM2PEnc"].execute(m2penc=name, dtype="auto")
    finally:
        hidden.rename(smoke_models / "m2penc" / name)
    assert "m2pdance weights smoke" in str(info.value) and "m2penc_jukebox" not in str(info.value)


def test_missing_champ_sibling_names_manifest_id_and_weights_list(home, nodes, tmp_path):
    models = tmp_path / "models"
    (models / "champ" / "release").mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, models / "champ" / "release" / "denoising_unet.pth")
    torch.save({"w": torch.zeros(1)}, models / "champ" / "release" / "guidance_encoder_depth.pth")
    harness.install(home, models_dir=models)
    with pytest.raises(FileNotFoundError) as info:
        nodes["M2PDanceLoadChamp"].execute(champ="release/denoising_unet.pth", vae="v.safetensors",
                                           clip_vision="c.safetensors", dtype="auto")
    text = str(info.value)
    assert "champ_reference_unet" in text and "m2pdance weights list" in text, text
    assert type(info.value).__module__ == "m2pdance" and type(info.value).__name__ == "WeightsNotFoundError"


class _Payload:
    def __reduce__(self):
        return (print, ("this would run",))


def _code_pth(path: Path) -> Path:
    torch.save({"w": torch.zeros(2), "evil": _Payload()}, path)
    return path


def test_code_carrying_pth_gives_one_short_message(tmp_path):
    from m2pdance.m2penc.checkpoint import load_state_dict
    from m2pdance.m2penc.errors import WeightsError

    path = _code_pth(tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as info:
        load_state_dict(path)
    text = str(info.value)
    assert len(text) < 400, len(text)
    assert "\x1b" not in text and "weights_only" not in text and "convert" not in text
    assert "bad.pth" in text and "run code" in text and "m2pdance weights list" in text


def test_weights_convert_refuses_a_file_that_carries_code(tmp_path):
    import argparse

    from m2pdance.m2penc.errors import WeightsError
    from m2pdance.weights_manifest.cli import cmd_convert

    src = _code_pth(tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="will not convert bad.pth: it carries Python code") as info:
        cmd_convert(argparse.Namespace(src=str(src), dst=str(tmp_path / "out.safetensors")))
    assert len(str(info.value)) < 300 and not (tmp_path / "out.safetensors").exists()


def test_error_classes_show_a_plain_name_and_still_pickle():
    from m2pdance.m2penc import errors

    for cls in (errors.M2PDanceError, errors.InputError, errors.WeightsNotFoundError, errors.AudioError):
        assert f"{cls.__module__}.{cls.__qualname__}" == f"m2pdance.{cls.__name__}"
        assert pickle.loads(pickle.dumps(cls)) is cls
        again = pickle.loads(pickle.dumps(cls("message")))
        assert type(again) is cls and again.args == ("message",)


def test_outputs_have_tooltips_and_names_do_not_repeat_the_pack(nodes):
    for node_id in OWNED:
        schema = nodes[node_id].define_schema()
        assert "(M2PDance)" not in schema.display_name, node_id
        for output in schema.outputs:
            assert getattr(output, "tooltip", None), (node_id, output.display_name)


def test_validate_inputs_accepts_linked_inputs_of_every_node(home, nodes):
    """ComfyUI validates before the graph runs and passes None for an input fed by a link: no node may crash
    there (the real server dropped Pose Video for Animator when its width came from an Int node)."""
    import inspect

    checked = 0
    for node_id, cls in nodes.items():
        if not node_id.startswith("M2PDance") or "validate_inputs" not in vars(cls):
            continue
        parameters = inspect.signature(cls.validate_inputs).parameters
        assert cls.validate_inputs(**dict.fromkeys(parameters, None)) is True, node_id
        checked += 1
    assert checked >= 8


def test_a_bad_size_from_a_link_is_refused_when_the_node_runs(home, nodes):
    render = nodes["M2PDanceRenderPoseMaps"]
    assert render.validate_inputs(width=None, height=100) is True
    with pytest.raises(Exception, match="multiples of 8") as info:      # the pack's InputError, as ComfyUI loads it
        render.execute(motion=None, body="open body (no files)", width=100, height=100, fps=15.0)
    assert type(info.value).__name__ == "InputError"


def test_the_sampler_join_says_what_it_does_and_old_workflows_still_load(home, nodes):
    """The default join is in-painting of the previous segment's tail, not the paper's trained conditioning."""
    import sys

    joins = sys.modules[nodes["M2PDanceSegmentedSampler"].__module__].JOINS
    assert next(iter(joins)) == "in-paint previous tail"
    assert joins["noise conditioning (paper)"] == joins["in-paint previous tail"] == "condition"
    for path in harness.example_workflows():
        assert "noise conditioning (paper)" not in path.read_text(), path.name
