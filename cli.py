"""``m2pdance``: the pack's command line: weights management and streaming dance rendering
(training lives in ``m2pdance-train``)."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _add_dance_parser(sub) -> None:
    from .m2penc.jukebox.config import DEFAULT_LAYER

    p = sub.add_parser("dance", help="music + photo -> dance video, streamed to a file (flat memory)")
    p.add_argument("--music", required=True)
    p.add_argument("--photo", required=True)
    p.add_argument("--out", required=True, help="output video file (.mp4, .webm, .gif)")
    p.add_argument("--models-dir", required=True, help="a ComfyUI models folder (see `m2pdance weights list`)")
    p.add_argument("--smoke", action="store_true", help="use the tiny smoke weights' file names")
    p.add_argument("--start", type=float, default=0.0)
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--size", type=int, default=512, help="width = height in pixels (multiple of 8)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layer", type=int, default=DEFAULT_LAYER, help="Jukebox layer (jukebox-feature M2PEnc only)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.set_defaults(func=_cmd_dance)


def _cmd_dance(args) -> int:
    from pathlib import Path

    from .m2penc.dance import DanceOptions, DanceWeights, make_dance_video
    from .m2penc.sampling import LongVideoOptions
    from .weights_manifest import entry
    from .weights_manifest.smoke import SMOKE_FILES

    models = Path(args.models_dir)
    if args.smoke:
        names = {"m2penc": SMOKE_FILES["m2penc"], "champ": SMOKE_FILES["champ"], "vae": SMOKE_FILES["vae"],
                 "clip_vision": SMOKE_FILES["clip_vision"]}
    else:
        names = {"m2penc": entry("m2penc_paper").filename, "champ": entry("champ_denoising_unet").filename,
                 "vae": entry("vae_sd_vae_ft_mse").filename, "clip_vision": entry("clip_image_encoder").filename}
    weights = DanceWeights(
        m2penc=models / "m2penc" / names["m2penc"], champ=models / "champ" / names["champ"],
        vae=models / "vae" / names["vae"], image_encoder=models / "clip_vision" / names["clip_vision"],
        vqvae=models / "jukebox" / entry("jukebox_vqvae").filename,
        prior=models / "jukebox" / entry("jukebox_prior_5b").filename)
    options = DanceOptions(start=args.start, duration=args.duration, width=args.size, height=args.size,
                           seed=args.seed, sampling=LongVideoOptions(num_steps=args.steps), layer=args.layer,
                           device=args.device, dtype=args.dtype)
    path = make_dance_video(args.music, args.photo, args.out, weights, options)
    print(path)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .m2penc.errors import M2PDanceError
    from .weights_manifest import cli as weights_cli

    parser = argparse.ArgumentParser(prog="m2pdance", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    weights_cli.add_parser(sub)
    _add_dance_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except M2PDanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
