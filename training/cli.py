"""``m2pdance-train`` (also ``python -m m2pdance.training``): the training command line.

Subcommands:

* ``sdgpip``: build the SDGPip training data (paper sec. 3.1) from AIST++, EDGE pseudo-motions or the
  beat choreographer; run it under ``torchrun --nproc-per-node N`` to build with N processes;
* ``stage1``: pre-train M2PEnc on an SDGPip build or stage-1 shards (paper sec. 3.4, stage 1);
* ``make-toy-data``: write a small synthetic dataset in the stage-1 format for smoke tests;
* ``stage2``, ``stage3``: the Champ stages (per-frame U-Net + ReferenceNet; motion modules + M2PEnc);
* ``demo``: the demo recipe, every step from synthetic music to the small demo weight set the pack ships.

Exit codes: 0 success, 1 a user-facing error (the message says what to change), 2 usage,
130 cancelled with Ctrl-C (a checkpoint is saved first).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, TypeVar

from ..m2penc.encoder.config import M2PEncConfig
from ..m2penc.jukebox import DEFAULT_LAYER
from ..m2penc.motion.choreography.planner import MAX_JOINT_SPEED
from ..m2penc.errors import GenerationCancelled, InputError, M2PDanceError
from ..m2penc.progress import RunControl
from .sharding import SHARDING
from .trainer import LR_SCHEDULES, MIXED_PRECISION, OPTIMIZERS

if TYPE_CHECKING:
    from .config import RunConfig

C = TypeVar("C", bound="RunConfig")

EXIT_ERROR, EXIT_CANCELLED = 1, 130

def _json_value(text: str) -> Any:
    """``--set`` values: JSON if it parses (numbers, true, null, lists), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set_values(items: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items -> ``{key: value}`` (values through :func:`_json_value`)."""
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        values[key.strip()] = _json_value(value)
    return values


def _add_run_flags(p: argparse.ArgumentParser, stage_class: str) -> None:
    """The flags every training stage shares (fields of ``RunConfig``), plus ``--config``/``--preset``/``--set``."""
    p.add_argument("--config", help=f"TOML or JSON file of {stage_class} fields (paths relative to the file)")
    p.add_argument("--preset", help=f"start from a {stage_class} preset: paper or tiny (--preset or --config is "
                                    "required; a --config file alone refines 'paper')")
    p.add_argument("--out", dest="output_dir", help="run folder (weights, checkpoints, metrics.jsonl, tensorboard/)")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=int, help="optimizer steps (replaces epochs)")
    steps.add_argument("--epochs", type=int, help="passes over the data's non-overlapping items (replaces steps)")
    p.add_argument("--batch-size", type=int, help="the global batch per step, over every process and micro-step")
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (this process's GPU, else the CPU), cpu or cuda")
    p.add_argument("--mixed-precision", choices=MIXED_PRECISION,
                   help="autocast precision of the forward; weights and AdamW stay float32")
    p.add_argument("--grad-accumulation", type=int, help="micro-batches per step")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute blocks in the backward pass (less activation memory, same values; on in the "
                        "paper presets)")
    p.add_argument("--sharding", choices=SHARDING,
                   help="ddp: a model replica per process; fsdp: weights, gradients and AdamW state sharded")
    p.add_argument("--ema-decay", type=float, help="EMA of the weights, e.g. 0.9999 (0 = off)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES)
    p.add_argument("--lr-warmup-steps", type=int)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints, 0 = only at the end")
    p.add_argument("--keep-checkpoints", type=int, help="newest checkpoints kept, 0 = all")
    p.add_argument("--log-every", type=int)
    p.add_argument("--preview-every", type=int, help="steps between TensorBoard previews, 0 = none")
    p.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    p.add_argument("--resume", help="checkpoint folder, or 'latest' (newest under --out)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help=f"any other {stage_class} field, VALUE as JSON (repeatable)")


def _add_stage1(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stage1", help="pre-train M2PEnc on stage-1 shards",
                       description="Pre-train M2PEnc (paper sec. 3.4, stage 1). Settings come from "
                                   "--preset, then --config, then the flags below, then --set.")
    _add_run_flags(p, "Stage1Config")
    p.add_argument("--data", dest="data_dir", help="an SDGPip build folder, or a folder of stage-1 .safetensors shards")
    p.add_argument("--guidance-encoders", help="folder of Champ's guidance_encoder_* files (SDGPip data storing maps)")
    p.add_argument("--model-preset", help="M2PEncConfig preset: paper, paper_baseline, tiny")
    p.add_argument("--model-config", dest="model_config_file", help="M2PEncConfig JSON file")
    p.add_argument("--sequence-length", type=int, help="frames per training window (paper: 75)")
    p.add_argument("--window-sampling", choices=("random", "sequential"))
    p.add_argument("--guidance-weight", type=float)
    p.add_argument("--heatmap-weight", type=float)
    p.set_defaults(func=_cmd_stage1)


def _add_sdgpip(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sdgpip", help="build SDGPip training data (paper sec. 3.1)",
                       description="Render Champ's guidance maps, keypoints and heatmaps of dances from a motion "
                                   "source and pair them with the music features of the same frames, into "
                                   "webdataset shards. Re-running resumes (finished shards are skipped). Under "
                                   "torchrun/accelerate launch with N processes, process r builds shards r, r+N, ...")
    p.add_argument("--source", required=True, choices=("aist", "edge", "beats"),
                   help="aist: AIST++ motions; edge: EDGE pseudo-motions of your music; beats: the beat choreographer")
    p.add_argument("--data", required=True, help="the AIST++ folder (aist) or a folder of music files (edge, beats)")
    p.add_argument("--out", required=True, help="the dataset folder to write (or resume)")
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--fps", type=float, default=15.0, help="frames per second of the targets (paper: 15)")
    p.add_argument("--size", type=int, default=512, help="map (and video crop) side in pixels, a multiple of 8")
    p.add_argument("--features", default="light", choices=("light", "jukebox"))
    p.add_argument("--jukebox", dest="jukebox_dir",
                   help="Jukebox 5B weights folder (--features jukebox, or an EDGE teacher reading Jukebox features)")
    p.add_argument("--jukebox-layer", type=int, default=DEFAULT_LAYER)
    p.add_argument("--store", default="maps", choices=("maps", "guidance"),
                   help="maps: uint8 maps, guidance computed while training (default); guidance: also store "
                        "the encoded guidance (2.6 MB/frame at 512: small sets only)")
    p.add_argument("--guidance-encoders", help="folder of Champ's guidance_encoder_* files (--store guidance)")
    p.add_argument("--edge-checkpoint", help="the EDGE teacher checkpoint (--source edge)")
    p.add_argument("--video", action="store_true", help="aist: also store the C09 video cropped to the dancer")
    p.add_argument("--body", default="open", choices=("open", "smpl"))
    p.add_argument("--smpl", dest="smpl_path", help="SMPL model file or folder (--body smpl)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--items-per-shard", type=int, default=4, help="sequences or tracks per shard")
    p.add_argument("--chunk-frames", type=int, default=300, help="longest sample; longer clips are split")
    p.add_argument("--intensity", type=float, default=1.0, help="beats: choreography intensity")
    p.add_argument("--appearance", default=None,
                   help="beats: also store video frames, the dancer rendered in a colour scheme (stages 2-3): cycle or "
                        "random over the training schemes, or a scheme name (m2penc/render/appearance.py)")
    p.add_argument("--variety", default="seeded", choices=("seeded", "by_level", "looped"),
                   help="beats: how the choreographer picks moves: seeded (varied dances; default), by_level (the "
                        "move nearest the music's level: a function of the music alone) or looped (one loop per beat, "
                        "the one nearest that beat's level: a function of any window of the music, learnable by a "
                        "regressor such as M2PEnc)")
    p.add_argument("--max-joint-speed", type=float, default=MAX_JOINT_SPEED,
                   help=f"beats: the choreographer's joint speed limit in m/s (default {MAX_JOINT_SPEED:g}; the looped "
                        "moves need ~7.5 at 120 BPM)")
    p.add_argument("--device", default="auto", help="auto (this process's GPU under torchrun), cpu, cuda:1, ...")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sdgpip)


def _cmd_sdgpip(args: argparse.Namespace) -> int:
    from .sdgpip.builder import BuildConfig, format_summary, run_build

    config = BuildConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BuildConfig)})
    with _cancel_on_signals() as control:
        summary = run_build(config, control=control, show_progress=not args.no_progress)
    print(format_summary(summary, config))
    return 0


def _add_champ_stage(sub: argparse._SubParsersAction, name: str) -> None:
    what = {"stage2": "the denoising U-Net (per frame) and ReferenceNet from Champ's weights, M2PEnc frozen",
            "stage3": "the motion modules and M2PEnc jointly on clips, 0.5 L_pix + 0.5 L_guid"}[name]
    p = sub.add_parser(name, help=f"train {what}", description=f"Paper sec. 3.4: {what}. Settings come from "
                       "--preset, then --config, then the flags, then --set.")
    _add_run_flags(p, {"stage2": "Stage2Config", "stage3": "Stage3Config"}[name])
    p.add_argument("--data", dest="data_dir", help="an SDGPip build with video (sdgpip --source aist --video)")
    p.add_argument("--champ", help="Champ's denoising_unet file (its folder holds reference_unet, motion_module)")
    p.add_argument("--vae", help="the SD VAE file or folder")
    p.add_argument("--image-encoder", dest="image_encoder", help="the CLIP image encoder file or folder")
    p.add_argument("--m2penc", help="the stage-1 M2PEnc weights")
    p.add_argument("--cond-drop", type=float, help="share of samples without reference/CLIP condition (CFG)")
    if name == "stage2":
        p.add_argument("--window-frames", type=int, help="frames of music M2PEnc reads per target frame")
    else:
        p.add_argument("--guidance-encoders", help="Champ's guidance_encoder_* folder (builds storing maps)")
        p.add_argument("--num-frames", type=int, help="frames per training clip (paper: 24)")
    p.set_defaults(func=_cmd_champ_stage, stage=name)


def _cmd_champ_stage(args: argparse.Namespace) -> int:
    from .champ_stages import Stage2Config, Stage3Config, run_stage2, run_stage3

    cls, run = {"stage2": (Stage2Config, run_stage2), "stage3": (Stage3Config, run_stage3)}[args.stage]
    config = _run_config(cls, args, args.stage)
    with _cancel_on_signals() as control:
        result = run(config, control=control)
    if _is_main_process():
        print(f"{args.stage} finished after {result.steps} steps; wrote {', '.join(str(p) for p in result.outputs)}")
    return 0


def _add_toy_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-toy-data", help="write a small synthetic stage-1 dataset",
                       description="Write shards whose targets are a fixed learnable function of "
                                   "smooth random features, shaped for an M2PEnc config.")
    p.add_argument("--out", required=True, help="folder to write the shards into")
    p.add_argument("--model-preset", default="tiny", help="M2PEncConfig preset giving the shapes (default: tiny)")
    p.add_argument("--model-config", help="M2PEncConfig JSON file giving the shapes (replaces --model-preset)")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--frames", type=int, default=90, help="frames per shard (default: 90 = 6 s at 15 fps)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_toy_data)


def _run_config(cls: type[C], args: argparse.Namespace, stage: str) -> C:
    """A stage's config: ``--preset`` (with ``--config`` alone: ``paper``), refined by ``--config FILE``, then
    flags, then ``--set``. One of ``--preset`` and ``--config`` is required: no run starts the paper's
    60k-step schedule by default.

    Every flag whose destination is a field of ``cls`` overrides it when given.
    """
    if args.config is None and args.preset is None:
        raise InputError(f"{stage} needs --config FILE or --preset NAME (paper or tiny)")
    config = cls.preset(args.preset or "paper")
    if args.config is not None:
        config = cls.from_json_file(args.config, base=config)
    names = [f.name for f in dataclasses.fields(cls)]
    overrides = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return config.with_overrides({**overrides, **_set_values(args.sets)})


def _is_main_process() -> bool:
    """Whether this is the process that reports (rank 0 under torchrun / accelerate launch, or the only one)."""
    from accelerate import PartialState

    return PartialState().is_main_process


@contextlib.contextmanager
def _cancel_on_signals() -> Iterator[RunControl]:
    """Ctrl-C or SIGTERM asks the job to stop after the current step (training saves a checkpoint first).

    SIGTERM is how schedulers (SLURM, docker, torchrun's shutdown) stop a job. A second signal
    stops at once. The previous handlers are restored afterwards.
    """
    requested = []

    def handler(signum: int, frame: Any) -> None:
        if requested:  # a second signal stops at once
            raise KeyboardInterrupt
        requested.append(signum)
        print("\nstopping after this step (Ctrl-C again to abort without a checkpoint)", file=sys.stderr)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield RunControl(should_cancel=lambda: bool(requested))
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _cmd_stage1(args: argparse.Namespace) -> int:
    from .stage1 import run_stage1

    from .config import Stage1Config

    config = _run_config(Stage1Config, args, "stage1")
    with _cancel_on_signals() as control:
        result = run_stage1(config, control=control)
    if _is_main_process():
        print(f"stage 1 finished after {result.steps} steps; M2PEnc weights: {result.weights_path}")
    return 0


def _cmd_toy_data(args: argparse.Namespace) -> int:
    from .toy_data import make_toy_data

    if args.model_config is not None:
        from .config import Stage1Config
        model = Stage1Config(model_config_file=args.model_config).model_config()
    else:
        model = M2PEncConfig.preset(args.model_preset)
    paths = make_toy_data(args.out, model, num_shards=args.shards, frames_per_shard=args.frames, seed=args.seed)
    print(f"wrote {len(paths)} toy shards ({args.frames} frames each, {model.feature_kind} features, "
          f"guidance {model.guidance_channels}x{model.grid_size}x{model.grid_size}, "
          f"{model.heatmap_channels} heatmaps) to {args.out}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train the demo weight set end to end on synthetic data",
                       description="The demo recipe (training/demo/recipe.py): a seeded music set, beat-choreographed "
                                   "dances rendered as a figure in clothes colours, an SDGPip build, then the small "
                                   "VAE and stages 1-3. Every step resumes: re-run the same command after a stop. "
                                   "The full preset took 42 minutes on 2 CPU cores.")
    p.add_argument("--out", required=True, help="run folder (music, data, each stage's run, demo_set/, demo_metrics.json)")
    p.add_argument("--preset", default="full", choices=("full", "quick"),
                   help="full (the shipped set; default) or quick (a few steps, for CI)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="change one recipe field (JSON value), e.g. --set seed=1 or --set 'stage2_run={\"steps\": 3000}'")
    p.add_argument("--ship", action="store_true",
                   help="copy the finished set into the pack (weights_manifest/demo-set/), where ComfyUI and "
                        "`m2pdance dance --demo` find it")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .demo.recipe import DemoPaths, DemoRecipe, run_demo_recipe, ship_demo_set

    recipe = DemoRecipe.preset(args.preset, **_set_values(args.sets))
    with _cancel_on_signals() as control:
        metrics = run_demo_recipe(recipe, Path(args.out), control=control)
    print(f"demo set in {DemoPaths(Path(args.out)).demo_set} ({metrics['bytes'] / 1e6:.1f} MB); metrics in "
          f"{Path(args.out) / 'demo_metrics.json'}")
    if args.ship:
        print(f"shipped into the pack: {ship_demo_set(DemoPaths(Path(args.out)), metrics).parent}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``m2pdance-train`` argument parser."""
    parser = argparse.ArgumentParser(prog="m2pdance-train", description="Train M2PDance models.")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _add_sdgpip(sub)
    _add_stage1(sub)
    _add_champ_stage(sub, "stage2")
    _add_champ_stage(sub, "stage3")
    _add_toy_data(sub)
    _add_demo(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``m2pdance-train``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except GenerationCancelled as e:
        print(f"cancelled: {e}", file=sys.stderr)
        return EXIT_CANCELLED
    except M2PDanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
