"""Tiny smoke weights for every model slot, written into a ComfyUI ``models/`` tree.

``m2pdance weights smoke`` (README) writes seeded random weights in the file names the example
workflows use, so every workflow runs as shipped on a fresh machine, on CPU, in seconds. They
are random: the video is noise, not a dance. A record (``m2pdance_smoke.json``) lists each file's
size and sha256 so ``m2pdance weights verify`` can detect truncated or altered smoke files.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import torch

from . import WeightEntry
from ..m2penc.checkpoint import atomic_write, save_model

RECORD = "m2pdance_smoke.json"
CHAMP_DIR = "m2pdance-tiny"  # under models/champ
SMOKE_FILES = {
    "champ": f"{CHAMP_DIR}/denoising_unet.safetensors",
    "vae": "m2pdance-tiny-vae.safetensors",
    "clip_vision": "m2pdance-tiny-clip-vision.safetensors",
    "m2penc": "m2pdance-tiny-m2penc.safetensors",
    "jukebox_vqvae": "m2pdance-tiny-vqvae.safetensors",
    "jukebox_prior": "m2pdance-tiny-prior.safetensors",
    "edge": "m2pdance-tiny-edge.safetensors",
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_champ(models_dir: Path, seed: int) -> list[Path]:
    from ..m2penc.champ.models import build_champ

    models = build_champ("tiny", seed=seed)
    placement = {"vae": models_dir / "vae" / SMOKE_FILES["vae"],
                 "image_encoder": models_dir / "clip_vision" / SMOKE_FILES["clip_vision"]}
    written = []
    for stem, module in models.modules().items():
        kind = "guidance_encoder" if stem.startswith("guidance_encoder_") else stem
        path = placement.get(stem, models_dir / "champ" / CHAMP_DIR / f"{stem}.safetensors")
        written.append(save_model(path, module.state_dict(), f"champ.{kind}", module.m2p_config.to_json()))
    return written


def _write_m2penc(models_dir: Path, seed: int) -> list[Path]:
    from ..m2penc.champ.config import DenoisingUNetConfig
    from ..m2penc.encoder import M2PEnc, M2PEncConfig, save_m2penc

    channels = DenoisingUNetConfig.preset("tiny").block_out_channels[0]  # what tiny Champ adds after conv_in
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = M2PEnc(M2PEncConfig.preset("tiny", guidance_channels=channels))
    return [save_m2penc(model, models_dir / "m2penc" / SMOKE_FILES["m2penc"])]


def _write_jukebox(models_dir: Path, seed: int) -> list[Path]:
    try:
        from ..m2penc.jukebox import write_tiny_jukebox
    except ImportError:
        return []
    vqvae, prior = write_tiny_jukebox(models_dir / "jukebox", seed=seed,
                                      vqvae_name=SMOKE_FILES["jukebox_vqvae"], prior_name=SMOKE_FILES["jukebox_prior"])
    return [Path(vqvae), Path(prior)]


def _write_edge(models_dir: Path, seed: int) -> list[Path]:
    """A tiny EDGE reading the 35-d light features in EDGE's real 5-s windows (150 frames at 30 fps)."""
    from ..m2penc.motion.edge import DanceDecoder, EDGEConfig, EDGEModelBundle, save_edge
    from ..m2penc.motion.edge.normalizer import MinMaxNormalizer

    config = EDGEConfig.preset("tiny", seq_len=150)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DanceDecoder(config)
    # identity-like normalisation: contacts in [0, 1], positions and 6D rotations in [-1, 1]
    low = torch.full((config.nfeats,), -1.0)
    low[:4] = 0.0
    normalizer = MinMaxNormalizer.from_data_range(low, torch.ones(config.nfeats))
    return [save_edge(EDGEModelBundle(model, normalizer, config), models_dir / "edge" / SMOKE_FILES["edge"])]


def write_smoke_weights(models_dir: Path | str, seed: int = 0) -> list[Path]:
    """Write every tiny model into ``models_dir`` (a ComfyUI models folder) and the record file."""
    models_dir = Path(models_dir)
    written = (_write_champ(models_dir, seed) + _write_m2penc(models_dir, seed) + _write_jukebox(models_dir, seed)
               + _write_edge(models_dir, seed))
    record = [{"id": f"smoke:{p.relative_to(models_dir).as_posix()}", "folder": p.parent.relative_to(models_dir).as_posix(),
               "filename": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in written]
    atomic_write(models_dir / RECORD, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)))
    return written


def smoke_entries(models_dir: Path | str) -> list[tuple[WeightEntry, Optional[dict]]]:
    """Manifest-style entries for the smoke files recorded in ``models_dir`` (empty if none)."""
    path = Path(models_dir) / RECORD
    if not path.is_file():
        return []
    entries = []
    for item in json.loads(path.read_text()):
        entries.append((WeightEntry(
            id=item["id"], role="tiny random smoke weights", folder=item["folder"], filename=item["filename"],
            source=None, hf_repo=None, hf_path=None, bytes=item["bytes"], approx_bytes=item["bytes"],
            sha256=item["sha256"], license="generated", format="safetensors", keys=None, workflows={}), None))
    return entries
