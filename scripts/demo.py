"""The README's main command: music + photo -> dance video, through the music_to_dance workflow.

    scripts/dev.sh demo                       # the demo set shipped with the pack, CPU, under 2 minutes
    scripts/dev.sh demo --weights DIR         # real weights in a ComfyUI models folder (see README)
    scripts/dev.sh demo --smoke               # the tiny random smoke weights (noise; a pipeline check)

It builds a ComfyUI home (``--home``, default ./comfy_home) with the example music and photo in
``input/``, loads the pack the way ComfyUI does (which registers the demo set shipped in
``weights_manifest/demo/``), runs ``example_workflows/music_to_dance.json`` as shipped (it names the
demo set) in the workflow harness and copies the resulting mp4 (with the music) to ``--out``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from m2pdance.devtools import comfy_harness as harness

#: The smoke run: the tiny random files, at the smoke size and steps.
SMOKE_OVERRIDES = {
    "M2PDanceLoadM2PEnc": {"m2penc": "m2pdance-tiny-m2penc.safetensors"},
    "M2PDanceLoadChamp": {"champ": "m2pdance-tiny/denoising_unet.safetensors", "vae": "m2pdance-tiny-vae.safetensors",
                          "clip_vision": "m2pdance-tiny-clip-vision.safetensors"},
    "M2PDanceSegmentedSampler": {"steps": 8},
}

#: With real weights: the manifest's file names, the paper's size and Champ's steps.
REAL_OVERRIDES = {
    "M2PDanceLoadM2PEnc": {"m2penc": "m2penc_jukebox.safetensors"},
    "M2PDanceJukeboxEncode": {"backend": "jukebox (4800-d, built in)"},
    "M2PDanceLoadChamp": {"champ": "denoising_unet.pth", "vae": "sd-vae-ft-mse.safetensors",
                          "clip_vision": "sd-image-variations-image-encoder.bin"},
    "M2PDanceM2PEncGuidance": {"width": 512, "height": 512},
    "M2PDanceChampReference": {"width": 512, "height": 512},
    "M2PDanceSegmentedSampler": {"steps": 20},
}


def _real_weights_prompt(prompt: dict, weights: Path) -> dict:
    """Point the workflow at real weights; adds Load Jukebox for the paper's features."""
    for node in prompt.values():
        node["inputs"].update(REAL_OVERRIDES.get(node["class_type"], {}))
    prompt["100"] = {"class_type": "M2PDanceLoadJukebox",
                     "inputs": {"vqvae": "vqvae.pth.tar", "prior": "prior_level_2.pth.tar", "dtype": "auto"}}
    for node in prompt.values():
        if node["class_type"] == "M2PDanceJukeboxEncode":
            node["inputs"]["jukebox"] = ["100", 0]
    return prompt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--weights", type=Path, help="a ComfyUI models folder with the real weights")
    which.add_argument("--smoke", action="store_true", help="the tiny random smoke weights (noise, not a dance)")
    parser.add_argument("--home", type=Path, default=ROOT / "comfy_home", help="ComfyUI home to build/use")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="where to copy the video")
    args = parser.parse_args(argv)

    from m2pdance.m2penc.examples import write_example_inputs
    from m2pdance.m2penc.motion.example import write_example_motion
    from m2pdance.weights_manifest.demo import DEMO_DIR, demo_available
    from m2pdance.weights_manifest.smoke import write_smoke_weights

    started = time.time()
    harness.install(args.home, models_dir=args.weights)
    write_example_inputs(args.home / "input")
    write_example_motion(args.home / "input")
    if args.weights:
        print(f"[demo] real weights from {args.weights}")
    elif args.smoke:
        write_smoke_weights(args.home / "models")
        print("[demo] SMOKE RUN: tiny random weights, the video is noise, not a dance")
    elif not demo_available():
        print(f"[demo] the demo set is missing from {DEMO_DIR}: train it with `m2pdance-train demo --out runs/demo "
              "--ship`, or run with --smoke", file=sys.stderr)
        return 1
    else:
        print("[demo] DEMO SET: small weights this pack trained on synthetic dances (weights_manifest/demo-set): "
              "a 128-px figure in the photo's colours whose arms swing out and back on every beat (see README, "
              "'The demo set')")
    nodes = harness.all_nodes()
    prompt = harness.read_workflow(ROOT / "example_workflows" / "music_to_dance.json", nodes)
    if args.weights:
        prompt = _real_weights_prompt(prompt, args.weights)
    elif args.smoke:
        for node in prompt.values():
            node["inputs"].update(SMOKE_OVERRIDES.get(node["class_type"], {}))
    result = harness.new_executor(nodes).run(prompt)
    videos = [item for ui in result.ui.values() for item in ui.get("images", []) if item["type"] == "output"]
    args.out.mkdir(parents=True, exist_ok=True)
    for item in videos:
        src = args.home / "output" / item["subfolder"] / item["filename"]
        dst = args.out / item["filename"]
        shutil.copy2(src, dst)
        print(f"[demo] wrote {dst} ({dst.stat().st_size} bytes)")
    print(f"[demo] done in {time.time() - started:.1f} s")
    return 0 if videos else 1


if __name__ == "__main__":
    sys.exit(main())
