"""The demo set: small weights this pack trained itself (``m2pdance-train demo``), shipped inside it.

Unlike the smoke set (random, for tests), the demo set is trained end to end by the demo recipe
(:mod:`m2pdance.training.demo.recipe`) on synthetic songs danced by the beat choreographer and
rendered as a 3D-shaded figure in clothes colours: music -> M2PEnc -> guidance -> Champ-style
diffusion gives a small figure in the reference photo's colours that follows its pose guidance and swings
its arms out and back on every beat (README, "The demo set"), at
:data:`DEMO_SIZE` pixels, on a CPU. It knows only that world (one body shape, the demo's framing
and colour schemes): a real photo gives a figure in the demo's style, not that person.

The files live in :data:`DEMO_DIR`, laid out as ComfyUI's ``models/`` folder (:data:`DEMO_FILES`).
ComfyUI sees them without copying: the pack registers the ``champ`` and ``m2penc`` folders and adds the
demo VAE and CLIP files to its own loader's lists only (ComfyUI's core loaders cannot read them);
``m2pdance dance --demo`` reads them in place; ``m2pdance weights demo --models-dir D`` copies them into D.
:data:`RECORD` lists each file's size and sha256, the recipe and the git revision they were trained
from (also in every file's metadata).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

from . import HERE, WeightEntry

#: The shipped demo set, laid out as ComfyUI's ``models/`` folder (a folder name that is not a Python
#: identifier, so packaging tools do not take its sub-folders for packages).
DEMO_DIR = HERE / "demo-set"
#: Its record: files with sizes and sha256, the recipe, the git revision, the training metrics.
RECORD = "m2pdance_demo.json"
#: Folder (under ``models/champ``) of the demo's Champ files.
DEMO_CHAMP_DIR = "m2pdance-demo"
#: Role -> path under ``models/``: what the demo recipe exports and the pack ships.
DEMO_FILES: dict[str, str] = {
    "denoising_unet": f"champ/{DEMO_CHAMP_DIR}/denoising_unet.safetensors",
    "reference_unet": f"champ/{DEMO_CHAMP_DIR}/reference_unet.safetensors",
    **{f"guidance_encoder_{t}": f"champ/{DEMO_CHAMP_DIR}/guidance_encoder_{t}.safetensors"
       for t in ("depth", "normal", "semantic_map", "dwpose")},
    "vae": "vae/m2pdance-demo-vae.safetensors",
    "image_encoder": "clip_vision/m2pdance-demo-clip-vision.safetensors",
    "m2penc": "m2penc/m2pdance-demo-m2penc.safetensors",
}
#: The file each loader slot picks for the demo set: ComfyUI category -> name inside it.
DEMO_LOADER_FILES: dict[str, str] = {
    "champ": f"{DEMO_CHAMP_DIR}/denoising_unet.safetensors",
    "vae": "m2pdance-demo-vae.safetensors",
    "clip_vision": "m2pdance-demo-clip-vision.safetensors",
    "m2penc": "m2pdance-demo-m2penc.safetensors",
}
#: The frame side the demo set was trained at (its guidance grid is ``DEMO_SIZE / 8``), and the
#: sampler steps its runs use.
DEMO_SIZE = 128
DEMO_STEPS = 20
#: The pack's own model categories, whose folders get the demo set's folder added in ComfyUI.
DEMO_CATEGORIES = ("champ", "m2penc")
#: ComfyUI's core categories: the demo file joins only the pack's loader lists (:func:`demo_file`).
DEMO_COMPONENT_CATEGORIES = ("vae", "clip_vision")


def demo_folder(category: str) -> Path:
    """The shipped demo files' folder for a ComfyUI model category (``champ``, ``vae``...)."""
    return DEMO_DIR / category


def demo_file(category: str, name: str) -> Optional[Path]:
    """The shipped demo file a loader's ``name`` in ``category`` stands for, if it is one and present."""
    if DEMO_LOADER_FILES.get(category) != name.replace("\\", "/"):
        return None
    path = demo_folder(category) / DEMO_LOADER_FILES[category]
    return path if path.is_file() else None


def read_record(folder: Path = DEMO_DIR) -> Optional[dict[str, Any]]:
    """The demo record in ``folder`` (``None`` if there is none); a damaged one is an :class:`InputError`."""
    from ..m2penc.errors import InputError

    path = folder / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        files = record["files"]
        if not isinstance(files, list) or not all(
                isinstance(f, dict) and f.get("path") in DEMO_FILES.values() and isinstance(f.get("bytes"), int)
                and isinstance(f.get("sha256"), str) for f in files):
            raise ValueError("its files list is not the demo set's")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path} is damaged ({e}); copy the demo set again with `m2pdance weights demo`") from None
    return record


def demo_available(folder: Path = DEMO_DIR) -> bool:
    """True when every demo file and the record are present in ``folder``."""
    return (folder / RECORD).is_file() and all((folder / relative).is_file() for relative in DEMO_FILES.values())


def make_record(folder: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """The record of the demo files in ``folder`` (sizes, sha256) plus ``extra`` (recipe, revision, metrics)."""
    from .verify import sha256_of

    files = [{"role": role, "path": relative, "bytes": (folder / relative).stat().st_size,
              "sha256": sha256_of(folder / relative)} for role, relative in DEMO_FILES.items()]
    return {"files": files, **extra}


def install_demo_weights(models_dir: Path | str, source: Path = DEMO_DIR) -> list[Path]:
    """Copy the demo set into ``models_dir`` (a ComfyUI models folder); files already there and equal are kept."""
    from ..m2penc.checkpoint import atomic_write
    from ..m2penc.errors import WeightsNotFoundError
    from .verify import sha256_of

    if not demo_available(source):
        raise WeightsNotFoundError(f"the demo weights are not in {source}; train them with `m2pdance-train demo "
                                   "--out DIR --ship` (see README)")
    models_dir = Path(models_dir)
    written = []
    for relative in list(DEMO_FILES.values()) + [RECORD]:
        src, dst = source / relative, models_dir / relative
        if dst.is_file() and dst.stat().st_size == src.stat().st_size and sha256_of(dst) == sha256_of(src):
            written.append(dst)
            continue
        written.append(atomic_write(dst, lambda tmp, s=src: shutil.copyfile(s, tmp)))
    return written


def demo_entries(models_dir: Path | str) -> list[tuple[WeightEntry, Optional[dict]]]:
    """Manifest-style entries for the demo files recorded in ``models_dir`` (empty if none)."""
    record = read_record(Path(models_dir))
    if record is None:
        return []
    entries = []
    for item in record["files"]:
        folder, _, filename = item["path"].partition("/")
        entries.append((WeightEntry(
            id=f"demo:{item['path']}", role=f"demo set ({item['role']}), trained by `m2pdance-train demo`",
            folder=folder, filename=filename, source=None, hf_repo=None, hf_path=None, bytes=item["bytes"],
            approx_bytes=item["bytes"], sha256=item["sha256"], license="MIT (this pack; trained on synthetic data)",
            format="safetensors", keys=None, workflows={}), None))
    return entries
