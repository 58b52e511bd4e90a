"""The weights manifest: one source of truth for every file the pack can use.

``manifest.json`` (data) lists, per file: id, role, ComfyUI ``models/`` sub-folder and file
name, source, size and sha256 where published (``null`` where not), licence, the key list it
must match (``keys/*.keys.json``, the names and shapes of the real checkpoints) and whether
each example workflow needs it. Loaders, error messages, the README table and the
``m2pdance weights`` command all read it from here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
MANIFEST_PATH = HERE / "manifest.json"
KEYS_DIR = HERE / "keys"
WORKFLOWS = ("music_to_dance", "music_to_pose_preview", "champ_pose_driven", "motion_to_dance", "music_to_dance_edge",
             "music_to_skeleton", "music_to_pose_video", "music_to_wan_animate")


@dataclass(frozen=True)
class WeightEntry:
    """One file the pack can use."""

    id: str
    role: str
    folder: str  # sub-folder of ComfyUI's models/
    filename: str
    source: Optional[str]
    hf_repo: Optional[str]
    hf_path: Optional[str]
    bytes: Optional[int]
    approx_bytes: Optional[int]
    sha256: Optional[str]
    license: str
    format: str
    keys: Optional[str]  # file name under keys/
    workflows: dict[str, str]

    def needed_by(self, workflow: str) -> str:
        """``required``, ``optional ...`` or ``unused`` for an example workflow."""
        return self.workflows.get(workflow, "unused")

    def path_in(self, models_dir: Path) -> Path:
        return Path(models_dir) / self.folder / self.filename

    def hint(self) -> str:
        """A sentence telling a user where this file goes and where to get it."""
        where = f"models/{self.folder}/{self.filename}"
        src = f" from {self.source}" if self.source else ""
        return f"manifest entry '{self.id}': put {self.role} at {where}{src} (`m2pdance weights list`)"


@lru_cache(maxsize=1)
def load_manifest() -> tuple[WeightEntry, ...]:
    data = json.loads(MANIFEST_PATH.read_text())
    return tuple(WeightEntry(**e) for e in data["entries"])


def entry(entry_id: str) -> WeightEntry:
    """The manifest entry with this id (a clear error lists the known ids)."""
    for e in load_manifest():
        if e.id == entry_id:
            return e
    raise KeyError(f"no manifest entry {entry_id!r}; known: {[e.id for e in load_manifest()]}")


def expected_keys(e: WeightEntry) -> Optional[dict[str, tuple[int, ...]]]:
    """Key -> shape the file must hold, or ``None`` when the manifest has no key list for it."""
    if e.keys is None:
        return None
    raw: dict[str, Any] = json.loads((KEYS_DIR / e.keys).read_text())
    shapes = {}
    for key, value in raw.items():
        # Two layouts: [shape...] (Champ lists) or [[shape...], dtype] (Jukebox lists).
        shape = value[0] if value and isinstance(value[0], list) else value
        shapes[key] = tuple(shape)
    return shapes


def readme_table() -> str:
    """The README's weights table, rendered from the manifest (a test keeps them identical)."""
    rows = ["| id | goes to `models/...` | needed by " + " / ".join(WORKFLOWS) + " | source | licence |",
            "|---|---|---|---|---|"]
    for e in load_manifest():
        need = " / ".join(e.needed_by(w).split(" (")[0] for w in WORKFLOWS)
        source = f"[{e.hf_repo or 'download'}]({e.source})" if e.source and e.source.startswith("http") else (e.source or "not published")
        rows.append(f"| `{e.id}` | `{e.folder}/{e.filename}` | {need} | {source} | {e.license} |")
    return "\n".join(rows)
