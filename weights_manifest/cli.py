"""``m2pdance weights list|verify|fetch|convert|smoke|demo``: the manifest on the command line."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import WORKFLOWS, entry, load_manifest
from .verify import FileReport, verify_file


def default_models_dir() -> Path:
    """``$COMFYUI_PATH/models`` if set, else ``./comfy_home/models`` (what the demo uses)."""
    root = os.environ.get("COMFYUI_PATH")
    return Path(root) / "models" if root else Path("comfy_home") / "models"


def _selected(workflow: str | None):
    for e in load_manifest():
        if workflow is None or e.needed_by(workflow) != "unused":
            yield e


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def cmd_list(args) -> int:
    models = Path(args.models_dir)
    print(f"models folder: {models.resolve()}")
    for e in _selected(args.workflow):
        present = e.path_in(models).is_file()
        need = e.needed_by(args.workflow) if args.workflow else ", ".join(f"{w}: {e.needed_by(w)}" for w in WORKFLOWS)
        print(f"[{'present' if present else 'MISSING'}] {e.id}: models/{e.folder}/{e.filename} "
              f"(~{_fmt_size(e.bytes or e.approx_bytes)}) - {e.role}\n    needed: {need}\n"
              f"    source: {e.source or 'not published'}\n    licence: {e.license}")
    smoke = _smoke_reports(models, hash_files=False)
    if smoke:
        print(f"tiny smoke weights: {sum(r.status != 'missing' for r in smoke)}/{len(smoke)} present")
    from .demo import DEMO_DIR, demo_available
    print(f"demo set shipped with the pack ({DEMO_DIR}): {'present' if demo_available() else 'MISSING'}")
    if DEMO_DIR != models and demo_available(models):
        print(f"demo set copied into {models}: present")
    return 0


def _smoke_reports(models: Path, hash_files: bool) -> list[FileReport]:
    """The smoke files recorded in ``models``."""
    from .smoke import smoke_entries

    return [verify_file(e, e.path_in(models), hash_files=hash_files, keys=keys) for e, keys in smoke_entries(models)]


def _demo_reports(models: Path, hash_files: bool) -> list[FileReport]:
    """The demo set's files: shipped with the pack, and copied into ``models`` if they are."""
    from .demo import DEMO_DIR, demo_entries

    return [verify_file(e, e.path_in(folder), hash_files=hash_files, keys=keys)
            for folder in dict.fromkeys([DEMO_DIR, models]) for e, keys in demo_entries(folder)]


def cmd_verify(args) -> int:
    models = Path(args.models_dir)
    reports = [verify_file(e, e.path_in(models), hash_files=not args.no_hash) for e in _selected(args.workflow)]
    reports += _smoke_reports(models, hash_files=not args.no_hash)
    reports += _demo_reports(models, hash_files=not args.no_hash)
    bad = 0
    for r in reports:
        if r.status == "missing":
            line = f"[missing] {r.entry_id}: {r.path}"
        elif r.status == "ok":
            line = f"[ok] {r.entry_id}: {r.path} (checked: {', '.join(r.checks) or 'readable'})"
        else:
            bad += 1
            line = f"[BAD] {r.entry_id}: {r.path}\n    " + "\n    ".join(r.problems)
        print(line)
    return 1 if bad else 0


def cmd_fetch(args) -> int:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        print("fetch needs huggingface_hub: pip install huggingface_hub", file=sys.stderr)
        return 2
    status = 0
    for entry_id in args.ids:
        e = entry(entry_id)
        if not e.hf_repo:
            print(f"{e.id}: not on the Hugging Face hub; download it yourself from {e.source or '(not published)'} "
                  f"to models/{e.folder}/{e.filename}", file=sys.stderr)
            status = 1
            continue
        target = e.path_in(Path(args.models_dir))
        try:
            got = hf_hub_download(e.hf_repo, e.hf_path, local_dir=str(target.parent / ".hf_download"))
        except Exception as exc:  # offline, gated, or missing
            print(f"{e.id}: could not download {e.hf_repo}/{e.hf_path} ({type(exc).__name__}: {exc}). "
                  f"If this machine is offline, download {e.source} elsewhere and copy it to {target}.", file=sys.stderr)
            status = 1
            continue
        os.replace(got, target)
        print(f"{e.id}: {target}")
    return status


def _is_edge_checkpoint(path: str) -> bool:
    """A torch zip whose pickle names EDGE's normalizer classes (peeked at, nothing unpickled)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
            return bool(pickles) and b"dataset.preprocess" in archive.read(pickles[0])
    except (OSError, zipfile.BadZipFile):
        return False


def cmd_convert(args) -> int:
    from ..m2penc.checkpoint import atomic_write, carries_code, load_state_dict
    from ..m2penc.errors import WeightsError
    from safetensors.torch import save_file

    if _is_edge_checkpoint(args.src):
        from ..m2penc.motion.edge.checkpoint import convert_edge_checkpoint

        print(f"wrote {convert_edge_checkpoint(args.src, args.dst)} (EDGE weights + normalizer + config)")
        return 0
    try:
        state = load_state_dict(args.src)
    except WeightsError as e:
        if e.__cause__ is not None and carries_code(e.__cause__):
            raise WeightsError(f"will not convert {Path(args.src).name}: it carries Python code besides tensors, "
                               "and converting reads the file the same safe way loading does (no code is run). "
                               "Get the file from the source `m2pdance weights list` names.") from None
        raise
    tensors = {k.removeprefix("module."): v.contiguous() for k, v in state.items()}
    atomic_write(args.dst, lambda tmp: save_file(tensors, tmp))
    print(f"wrote {args.dst} ({len(tensors)} tensors)")
    return 0


def cmd_smoke(args) -> int:
    from .smoke import write_smoke_weights

    written = write_smoke_weights(Path(args.models_dir), seed=args.seed)
    for path in written:
        print(f"wrote {path}")
    print("These are tiny RANDOM weights for smoke runs: the video they make is noise, not a dance.")
    return 0


def cmd_demo(args) -> int:
    from .demo import install_demo_weights

    for path in install_demo_weights(Path(args.models_dir)):
        print(f"wrote {path}")
    print("The demo set: trained by this pack on synthetic dances (`m2pdance-train demo`); it draws a small figure "
          "in the reference's colours, in its own style, at 128 px, its arms swinging out and back on every beat "
          "(README, 'The demo set').")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("weights", help="list, verify, fetch, convert weights; write tiny smoke weights; "
                                              "copy the demo set")
    sub = p.add_subparsers(dest="weights_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", default=str(default_models_dir()),
                        help="ComfyUI models folder (default: $COMFYUI_PATH/models or ./comfy_home/models)")
    s = sub.add_parser("list", parents=[common], help="what is present or missing (for a workflow)")
    s.add_argument("--workflow", choices=WORKFLOWS)
    s.set_defaults(func=cmd_list)
    s = sub.add_parser("verify", parents=[common], help="check sizes, hashes and key names/shapes")
    s.add_argument("--workflow", choices=WORKFLOWS)
    s.add_argument("--no-hash", action="store_true", help="skip sha256 (faster on large files)")
    s.set_defaults(func=cmd_verify)
    s = sub.add_parser("fetch", parents=[common], help="download entries from the Hugging Face hub (when online)")
    s.add_argument("ids", nargs="+")
    s.set_defaults(func=cmd_fetch)
    s = sub.add_parser("convert", help="convert a .pth/.bin/.tar checkpoint (or EDGE's checkpoint.pt) to "
                                       "safetensors, safely: tensors only; a file that carries code is refused, "
                                       "not converted")
    s.add_argument("src")
    s.add_argument("dst")
    s.set_defaults(func=cmd_convert)
    s = sub.add_parser("smoke", parents=[common], help="write tiny random weights for every model slot")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_smoke)
    s = sub.add_parser("demo", parents=[common], help="copy the demo set shipped with the pack into the models folder "
                                                      "(ComfyUI and `m2pdance dance --demo` also read it in place)")
    s.set_defaults(func=cmd_demo)
