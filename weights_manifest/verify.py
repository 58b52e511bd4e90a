"""Check weights files against the manifest: presence, size, sha256 and key names/shapes.

Key names and shapes are read without loading tensors where the format allows (safetensors
header; a torch zip file is memory-mapped with ``weights_only=True``), so checking a 10 GB
prior costs seconds, not its size in RAM. A truncated or corrupt file is reported as such.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import WeightEntry, expected_keys

CHUNK = 1 << 20


@dataclass
class FileReport:
    """What ``verify`` found for one manifest entry."""

    entry_id: str
    path: Path
    status: str  # "ok", "missing", "bad"
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_key_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a weights file without materialising its tensors."""
    path = Path(path)
    if path.suffix == ".safetensors":
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if header_len <= 0 or header_len > path.stat().st_size - 8:
                raise ValueError(f"safetensors header length {header_len} does not fit a {path.stat().st_size}-byte file")
            header = json.loads(f.read(header_len))
        data_end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + header_len + data_end > path.stat().st_size:
            raise ValueError("file is shorter than its header says: truncated")
        return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    import torch

    obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # Jukebox's {"model": state_dict, "hps": ..., "step": ...}
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return {k.removeprefix("module."): tuple(v.shape) for k, v in obj.items() if hasattr(v, "shape")}


def read_edge_key_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """EDGE's checkpoint holds pickled normalizer objects: read it with the code-free EDGE reader."""
    if Path(path).suffix == ".safetensors":
        return {k: v for k, v in read_key_shapes(path).items() if not k.startswith("normalizer.")}
    from ..m2penc.motion.edge.checkpoint import read_edge_checkpoint

    return {k: tuple(v.shape) for k, v in read_edge_checkpoint(path)[0].items()}


def verify_file(e: WeightEntry, path: Path, hash_files: bool = True,
                keys: Optional[dict[str, tuple[int, ...]]] = None) -> FileReport:
    """Check one file; ``keys`` overrides the manifest's key list (used for smoke files)."""
    report = FileReport(e.id, path, "ok")
    if not path.is_file():
        report.status = "missing"
        return report
    size = path.stat().st_size
    if e.bytes is not None:
        report.checks.append("size")
        if size != e.bytes:
            report.problems.append(f"size {size} bytes, expected {e.bytes} (truncated or a different file)")
    if e.sha256 is not None and hash_files:
        report.checks.append("sha256")
        got = sha256_of(path)
        if got != e.sha256:
            report.problems.append(f"sha256 {got[:16]}..., expected {e.sha256[:16]}... (corrupt or a different file)")
    wanted = keys if keys is not None else expected_keys(e)
    try:
        found = read_edge_key_shapes(path) if e.id.startswith("edge") else read_key_shapes(path)
    except Exception as exc:  # unreadable header / zip: the file is damaged
        report.problems.append(f"cannot read the file's tensors ({type(exc).__name__}: {exc}); truncated or corrupt")
        found = None
    if wanted is not None and found is not None:
        from ..m2penc.checkpoint import compare_state_dict

        report.checks.append("keys")
        missing, unexpected, mismatched = compare_state_dict(wanted, found)
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
            if items:
                report.problems.append(f"{len(items)} {label}, e.g. {items[:3]}")
    if report.problems:
        report.status = "bad"
    return report
