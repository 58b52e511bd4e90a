"""``m2pdance``: the pack's command line: weights management, streaming dance rendering and the paper's
evaluation (``eval aist``, ``eval videos``; training lives in ``m2pdance-train``)."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .weights_manifest.demo import DEMO_SIZE, DEMO_STEPS  # ``dance --demo``: the demo set's size and steps

#: ``dance --smoke``: the smoke workflow's size and steps (the tiny weights make noise: a quick check of the
#: pipeline); real weights: the paper's 512 px and Champ's 20 steps.
SMOKE_SIZE, SMOKE_STEPS = 256, 8
REAL_SIZE, REAL_STEPS = 512, 20


def default_models_dir() -> str:
    """``$COMFYUI_PATH/models`` when set, else ``./comfy_home/models`` (the demo's ComfyUI home)."""
    import os

    home = os.environ.get("COMFYUI_PATH")
    return os.path.join(home, "models") if home else os.path.join("comfy_home", "models")


def _add_dance_parser(sub) -> None:
    from .m2penc.jukebox.config import DEFAULT_LAYER

    p = sub.add_parser("dance", help="music + photo -> dance video, streamed to a file (flat memory)",
                       description="Music + one photo -> a video of that person dancing, written as it is made "
                                   "(memory flat in song length), with the music muxed in. Ctrl-C or SIGTERM stop "
                                   "it and leave no partial file.")
    p.add_argument("--music", required=True, help="music file (wav, flac, mp3, ogg, m4a, aac)")
    p.add_argument("--photo", required=True, help="photo of the person (png, jpg, webp); centre-cropped to the size")
    p.add_argument("--out", required=True, help="output video file (.mp4, .webm, .gif)")
    p.add_argument("--models-dir", default=None,
                   help="a ComfyUI models folder (see `m2pdance weights list`); default: $COMFYUI_PATH/models, "
                        f"else ./comfy_home/models (here: {default_models_dir()})")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--demo", action="store_true",
                       help=f"the demo set shipped with the pack (trained by `m2pdance-train demo` on synthetic "
                            f"dances: a small figure in the photo's colours whose arms swing out and back on every "
                            f"beat), read in place, at "
                            f"{DEMO_SIZE} px and {DEMO_STEPS} steps unless --size/--steps say otherwise; "
                            "--models-dir is not used")
    which.add_argument("--smoke", action="store_true",
                       help=f"the tiny smoke weights (`m2pdance weights smoke`): noise, a quick pipeline check at "
                            f"{SMOKE_SIZE} px and {SMOKE_STEPS} steps unless --size/--steps say otherwise")
    p.add_argument("--start", type=float, default=0.0, help="where in the music to start, seconds (default: 0)")
    p.add_argument("--duration", type=float, default=None, help="seconds of music to dance to (default: to the end)")
    p.add_argument("--size", type=int, default=None,
                   help=f"width = height in pixels, a multiple of 8 (default: {REAL_SIZE}; --demo: {DEMO_SIZE}; "
                        f"--smoke: {SMOKE_SIZE})")
    p.add_argument("--steps", type=int, default=None,
                   help=f"DDIM steps per segment (default: {REAL_STEPS}; --demo: {DEMO_STEPS}; --smoke: {SMOKE_STEPS})")
    p.add_argument("--seed", type=int, default=0, help="the video's seed (default: 0)")
    p.add_argument("--layer", type=int, default=DEFAULT_LAYER, help=f"Jukebox layer, jukebox-feature M2PEnc only (default: {DEFAULT_LAYER})")
    p.add_argument("--device", default="auto", help="auto (default: CUDA if present, else CPU), cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="default auto: fp16 on CUDA, fp32 on CPU")
    p.set_defaults(func=_cmd_dance)


def _cmd_dance(args) -> int:
    from pathlib import Path

    from .m2penc.dance import DanceOptions, DanceWeights, make_dance_video
    from .m2penc.device import resolve_device, resolve_dtype
    from .m2penc.progress import console_control
    from .m2penc.sampling import LongVideoOptions
    from .weights_manifest import entry
    from .weights_manifest.smoke import SMOKE_FILES
    from .weights_manifest.demo import DEMO_DIR, DEMO_LOADER_FILES, demo_available

    if args.demo and args.models_dir:
        from .m2penc.errors import InputError
        raise InputError("--demo reads the demo set shipped with the pack; drop --models-dir (or drop --demo to "
                         "use the files in that folder)")
    if args.demo:
        if not demo_available():
            from .m2penc.errors import WeightsNotFoundError
            raise WeightsNotFoundError(f"the demo weights are missing from {DEMO_DIR}: reinstall the pack, or train "
                                       "them with `m2pdance-train demo --out runs/demo --ship`")
        models = DEMO_DIR
    else:
        models = Path(args.models_dir or default_models_dir())
    if not models.is_dir():
        from .m2penc.errors import InputError
        raise InputError(f"models folder {models} does not exist: pass --models-dir (a ComfyUI models folder), "
                         "or set COMFYUI_PATH; or try `m2pdance dance --demo` (the demo set shipped with the pack)")
    if args.demo:
        names = dict(DEMO_LOADER_FILES)
    elif args.smoke:
        names = {"m2penc": SMOKE_FILES["m2penc"], "champ": SMOKE_FILES["champ"], "vae": SMOKE_FILES["vae"],
                 "clip_vision": SMOKE_FILES["clip_vision"]}
    else:
        names = {"m2penc": entry("m2penc_paper").filename, "champ": entry("champ_denoising_unet").filename,
                 "vae": entry("vae_sd_vae_ft_mse").filename, "clip_vision": entry("clip_image_encoder").filename}
    size = args.size or (DEMO_SIZE if args.demo else SMOKE_SIZE if args.smoke else REAL_SIZE)
    steps = args.steps or (DEMO_STEPS if args.demo else SMOKE_STEPS if args.smoke else REAL_STEPS)
    weights = DanceWeights(
        m2penc=models / "m2penc" / names["m2penc"], champ=models / "champ" / names["champ"],
        vae=models / "vae" / names["vae"], image_encoder=models / "clip_vision" / names["clip_vision"],
        vqvae=models / "jukebox" / entry("jukebox_vqvae").filename,
        prior=models / "jukebox" / entry("jukebox_prior_5b").filename)
    device = resolve_device(args.device)
    options = DanceOptions(start=args.start, duration=args.duration, width=size, height=size,
                           seed=args.seed, sampling=LongVideoOptions(num_steps=steps), layer=args.layer,
                           device=str(device), dtype=args.dtype)
    print(f"m2pdance dance: {size}x{size} px, {steps} steps, {device} {resolve_dtype(args.dtype, device)}, "
          f"weights from {models}{' (smoke: noise, not a dance)' if args.smoke else ''}"
          f"{' (the demo set: trained on synthetic dances, it draws a figure in its own style)' if args.demo else ''}",
          file=sys.stderr)
    with console_control() as control:
        path = make_dance_video(args.music, args.photo, args.out, weights, options, control=control)
    print(path)
    return 0


def _pipelines(text: str) -> tuple[str, ...]:
    """``--pipelines m2penc,edge``: comma-separated names, blanks dropped."""
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())


def _add_eval_parser(sub) -> None:
    from .m2penc.timeline import DEFAULT_FPS

    p = sub.add_parser("eval", help="the paper's evaluation: AIST++ protocol (Tables 1, 3) or any two video folders")
    ev = p.add_subparsers(dest="eval_cmd", required=True)
    a = ev.add_parser("aist", help="generate the AIST++ test clips with each pipeline, score them, write the tables")
    a.add_argument("--aist", required=True, help="AIST++ folder in the official layout, with videos/ (C09)")
    a.add_argument("--models-dir", required=True, help="a ComfyUI models folder (see `m2pdance weights list`)")
    a.add_argument("--out", required=True, help="new or empty folder (or an earlier run's, to resume it)")
    a.add_argument("--pipelines", type=_pipelines, default="m2penc,edge,dns,p,pdns",
                   help="comma-separated: m2penc, edge (Table 1); dns, p, pdns (Table 3)")
    a.add_argument("--clips", type=int, default=None, help="only the first N test sequences (default: all 20)")
    a.add_argument("--frames", type=int, default=None,
                   help="at most N frames per clip (default: whole sequences; FVD needs >= 16)")
    a.add_argument("--size", type=int, default=640, help="crop and video side in pixels (paper: 640)")
    a.add_argument("--fps", type=float, default=DEFAULT_FPS, help="video rate (paper: 15)")
    a.add_argument("--steps", type=int, default=20, help="DDIM steps")
    a.add_argument("--seed", type=int, default=0, help="the seed of every clip")
    a.add_argument("--lpips", choices=["alex", "vgg"], default="alex", help="LPIPS backbone (paper: alex)")
    a.add_argument("--smoke", action="store_true", help="use the tiny smoke weights' file names")
    a.add_argument("--device", default="auto")
    a.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    a.set_defaults(func=_cmd_eval_aist)
    v = ev.add_parser("videos", help="score a folder of generated videos against real ones (paired by file name)")
    v.add_argument("--generated", required=True, help="folder of generated videos")
    v.add_argument("--real", required=True, help="folder of real videos with the same file names")
    v.add_argument("--out", default=None, help="where table1.md/.csv and clips.csv go (default: --generated)")
    v.add_argument("--models-dir", default=None,
                   help="a ComfyUI models folder with lpips/ and i3d/ (default: $COMFYUI_PATH/models or "
                        "./comfy_home/models)")
    v.add_argument("--lpips", choices=["alex", "vgg"], default="alex", help="LPIPS backbone (paper: alex)")
    v.add_argument("--device", default="auto")
    v.set_defaults(func=_cmd_eval_videos)


def _cmd_eval_aist(args) -> int:
    from .training.eval_aist import AISTEvalOptions, EvalWeights, run_aist_eval

    options = AISTEvalOptions(pipelines=args.pipelines, clips=args.clips, frames=args.frames, size=args.size,
                              fps=args.fps, steps=args.steps, seed=args.seed, device=args.device, dtype=args.dtype,
                              lpips_net=args.lpips)
    weights = EvalWeights.in_models_dir(args.models_dir, smoke=args.smoke, lpips_net=args.lpips)
    run_aist_eval(args.aist, args.out, weights, options, log=lambda line: print(line, flush=True))
    return 0


def _cmd_eval_videos(args) -> int:
    from .m2penc.eval.report import evaluate_video_folders
    from .weights_manifest.cli import default_models_dir

    _, paths = evaluate_video_folders(args.generated, args.real, args.out or args.generated,
                                      args.models_dir or default_models_dir(), device=args.device,
                                      lpips_net=args.lpips, log=lambda line: print(line, flush=True))
    for path in paths:
        print(f"wrote {path}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .m2penc.errors import GenerationCancelled, M2PDanceError
    from .weights_manifest import cli as weights_cli

    parser = argparse.ArgumentParser(
        prog="m2pdance", description="M2PDance's command line: weights management (weights), streaming dance "
        "rendering (dance) and the paper's evaluation (eval aist, eval videos). Training: m2pdance-train.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    weights_cli.add_parser(sub)
    _add_dance_parser(sub)
    _add_eval_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GenerationCancelled as e:
        print(f"cancelled: {e}", file=sys.stderr)
        return 130
    except M2PDanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
