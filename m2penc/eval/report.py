"""Tables 1 and 3 of the paper as Markdown and CSV, our measured numbers beside the published ones.

Layout (one row per model / guidance setup, as in the paper; each metric has a "paper" and an
"ours" column side by side, so a reproduction reads across a row):

* **Table 1** (§4.3.2, video quality on the AIST++ test set): MM-Diffusion, DabFusion (scaled) and
  the paper's model with their published FVD / LPIPS / PSNR / SSIM, then our measured rows (the
  M2PEnc pipeline sits in the paper model's row; other pipelines get rows without paper numbers).
* **Table 3** (§5, pose-guidance ablation): DNS, P, PDNS with the published numbers and ours.

Cells: ``—`` where a number does not exist (no published value, metric not computed), ``skipped``
where a pipeline did not run (the note says why), ``inf`` for an infinite PSNR. The CSV holds the
same rows with full precision and the counts behind each number (videos, frames, FVD clips).
Nothing in here computes a metric: the measured values come from :mod:`.video_sets` and
:mod:`.beat_alignment` via :class:`Measured`.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from ..checkpoint import atomic_write
from ..errors import InputError
from .lpips import lpips_paths
from .video_sets import SetScores, i3d_file_in, load_metric_models, pair_folders, score_sets

PathLike = Union[str, os.PathLike]
#: Metric columns: (key, Markdown header, decimals in Markdown).
METRICS: tuple[tuple[str, str, int], ...] = (
    ("fvd", "FVD ↓", 3), ("lpips", "LPIPS ↓", 3), ("psnr", "PSNR ↑", 2), ("ssim", "SSIM ↑", 3))
#: Beat Alignment Score: ours only (not in the paper's tables).
BAS_COLUMN: tuple[str, str, int] = ("bas", "BAS ↑", 4)
CSV_FIELDS: tuple[str, ...] = (
    "table", "row", "label", "status",
    "fvd_paper", "fvd", "lpips_paper", "lpips", "psnr_paper", "psnr", "ssim_paper", "ssim", "bas",
    "videos", "frames", "fvd_real_clips", "fvd_generated_clips", "psnr_infinite_frames", "note")
MISSING = "—"
SKIPPED = "skipped"


@dataclass(frozen=True)
class PaperRow:
    """One row as published (FVD, LPIPS, PSNR in dB, SSIM)."""

    label: str
    fvd: float
    lpips: float
    psnr: float
    ssim: float


#: Table 1 of the paper (§4.3.2), in its order; keys name the rows.
PAPER_TABLE1: dict[str, PaperRow] = {
    "mm_diffusion": PaperRow("MM-Diffusion", 1338.57, 0.425, 11.04, 0.770),
    "dabfusion": PaperRow("DabFusion (scaled)", 1440.05, 0.561, 8.525, 0.776),
    "ours": PaperRow("Ours (M2PEnc + Champ)", 213.289, 0.102, 21.11, 0.908),
}
#: Table 3 of the paper (§5): pose-guidance setups. Its PDNS row repeats Table 1's "Ours".
PAPER_TABLE3: dict[str, PaperRow] = {
    "dns": PaperRow("DNS", 257.196, 0.194, 19.95, 0.812),
    "p": PaperRow("P", 239.724, 0.156, 20.50, 0.857),
    "pdns": PaperRow("PDNS (Ours)", 213.289, 0.102, 21.11, 0.908),
}


@dataclass(frozen=True)
class Measured:
    """Our numbers for one row (``None``: not computed) and the counts behind them."""

    fvd: Optional[float] = None
    lpips: Optional[float] = None
    psnr: Optional[float] = None
    ssim: Optional[float] = None
    bas: Optional[float] = None
    videos: int = 0
    frames: int = 0
    fvd_real_clips: int = 0
    fvd_generated_clips: int = 0
    psnr_infinite_frames: int = 0

    @classmethod
    def from_scores(cls, scores: SetScores, bas: Optional[float] = None) -> "Measured":
        """The pooled means of a :class:`.video_sets.SetScores` (and a BAS computed elsewhere)."""
        pooled = {m: scores.pooled(m) for m in ("psnr", "ssim", "lpips")}
        return cls(fvd=scores.fvd.value, lpips=pooled["lpips"].mean if pooled["lpips"] else None,
                   psnr=pooled["psnr"].mean if pooled["psnr"] else None,
                   ssim=pooled["ssim"].mean if pooled["ssim"] else None, bas=bas, videos=len(scores.pairs),
                   frames=scores.frames, fvd_real_clips=scores.fvd.real_clips,
                   fvd_generated_clips=scores.fvd.generated_clips,
                   psnr_infinite_frames=pooled["psnr"].infinite_frames if pooled["psnr"] else 0)


@dataclass(frozen=True)
class TableRow:
    """One table row.

    Attributes:
        key: a stable id (``"m2penc"``, ``"mm_diffusion"`` ...), the CSV's ``row``.
        label: what the row is called in the Markdown.
        paper: the published numbers, or ``None``.
        measured: ours, or ``None`` (a paper-only row, or a skipped pipeline).
        status: ``"measured"``, ``"skipped"``, ``"paper"`` (published only) or ``"reference"``.
        note: shown under the table (why it was skipped, what the row is).
    """

    key: str
    label: str
    paper: Optional[PaperRow] = None
    measured: Optional[Measured] = None
    status: str = "measured"
    note: str = ""


@dataclass(frozen=True)
class Table:
    """A whole table: its file stem, title, rows and the protocol notes printed under it.

    Attributes:
        row_header: the first column's title (the paper: "Model" in Table 1, "Guidance Setup" in Table 3).
        bas: show the BAS column in the Markdown (the CSV always has it).
    """

    name: str
    title: str
    rows: tuple[TableRow, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    row_header: str = "Model"
    bas: bool = True

    def __post_init__(self) -> None:
        if not self.name or any(not (c.isalnum() or c in "_-") for c in self.name):
            raise InputError(f"table name must be letters, digits, _ or -, got {self.name!r}")
        keys = [r.key for r in self.rows]
        if len(set(keys)) != len(keys):
            raise InputError(f"table {self.name}: row keys must be unique, got {keys}")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (no pipe, no line break)."""
    return " ".join(str(text).replace("|", "\\|").split())


def format_value(value: Optional[float], decimals: Optional[int]) -> str:
    """``None`` -> ``—``, infinities -> ``inf`` / ``-inf``, else fixed decimals (``None``: as published,
    the shortest form that reads back as the same number)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}" if decimals is None else f"{value:.{decimals}f}"


def render_markdown(table: Table) -> str:
    """The table as GitHub Markdown: header, one line per row, then the notes as a list."""
    columns = METRICS + ((BAS_COLUMN,) if table.bas else ())
    headers = [_cell(table.row_header)]
    for key, title, _ in columns:
        headers += [f"{title} (ours)"] if key == BAS_COLUMN[0] else [f"{title} (paper)", f"{title} (ours)"]
    lines = [f"# {table.title}", "", "| " + " | ".join(headers) + " |",
             "|---|" + "---:|" * (len(headers) - 1)]
    for row in table.rows:
        cells = [_cell(row.label)]
        for key, _, decimals in columns:
            if key != BAS_COLUMN[0]:
                cells.append(format_value(getattr(row.paper, key) if row.paper else None, None))
            if row.status == SKIPPED:
                cells.append(SKIPPED)
            else:
                cells.append(format_value(getattr(row.measured, key) if row.measured else None, decimals))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"**{_cell(r.label)}**: {_cell(r.note)}" for r in table.rows if r.note] + [_cell(n) for n in table.notes]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _csv_number(value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value))


def render_csv(table: Table) -> str:
    """The rows as CSV (:data:`CSV_FIELDS`), full precision; empty cells where a number does not exist."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in table.rows:
        m = row.measured if row.status != SKIPPED else None
        record = {"table": table.name, "row": row.key, "label": row.label, "status": row.status, "note": row.note}
        for key, _, _ in METRICS:
            record[f"{key}_paper"] = _csv_number(getattr(row.paper, key) if row.paper else None)
            record[key] = _csv_number(getattr(m, key) if m else None)
        record["bas"] = _csv_number(m.bas if m else None)
        for key in ("videos", "frames", "fvd_real_clips", "fvd_generated_clips", "psnr_infinite_frames"):
            record[key] = str(getattr(m, key)) if m else ""
        writer.writerow(record)
    return buffer.getvalue()


def write_table(table: Table, out_dir: PathLike) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.csv`` into ``out_dir`` (created; each file written atomically)."""
    folder = Path(out_dir)
    paths = (folder / f"{table.name}.md", folder / f"{table.name}.csv")
    for path, text in zip(paths, (render_markdown(table), render_csv(table))):
        atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
    return paths


def paper_rows(paper: dict[str, PaperRow], measured: dict[str, TableRow]) -> list[TableRow]:
    """The published rows in the paper's order, each replaced by ``measured[key]`` (keeping the paper
    numbers) when we measured that row; rows we did not measure stay paper-only."""
    rows = []
    for key, published in paper.items():
        if key in measured:
            mine = measured[key]
            rows.append(TableRow(mine.key, mine.label, published, mine.measured, mine.status, mine.note))
        else:
            rows.append(TableRow(key, published.label, published, None, "paper"))
    return rows


def render_pairs_csv(sets: Mapping[str, SetScores],
                     bas: Optional[Mapping[str, Mapping[str, Optional[float]]]] = None) -> str:
    """One CSV line per scored pair: ``set, clip, frames, psnr, psnr_infinite_frames, ssim, lpips, bas``
    (per-video means over its frames), then BAS-only lines for entries of ``bas`` without a pair
    (e.g. the ground-truth motion)."""
    bas = bas or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["set", "clip", "frames", "psnr", "psnr_infinite_frames", "ssim", "lpips", "bas"])
    done: set[tuple[str, str]] = set()
    for key, scores in sets.items():
        for pair in scores.pairs:
            value = bas.get(key, {}).get(pair.name)
            writer.writerow([key, pair.name, pair.frames, _csv_number(pair.psnr.mean), pair.psnr.infinite_frames,
                             _csv_number(pair.ssim.mean), _csv_number(pair.lpips.mean if pair.lpips else None),
                             _csv_number(value)])
            done.add((key, pair.name))
    for key, values in bas.items():
        for name, value in values.items():
            if (key, name) not in done:
                writer.writerow([key, name, "", "", "", "", "", _csv_number(value)])
    return buffer.getvalue()


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def evaluate_video_folders(generated_dir: PathLike, real_dir: PathLike, out_dir: PathLike, models_dir: PathLike,
                           device: Union[str, None] = "auto", lpips_net: str = "alex",
                           log: Callable[[str], None] = print) -> tuple[SetScores, list[Path]]:
    """``m2pdance eval videos``: score two folders (:func:`.video_sets.score_folders`) and write
    ``table1.md/.csv`` (the paper's Table 1 rows, then the generated folder's row) and ``clips.csv``.

    Args:
        generated_dir, real_dir: folders of videos paired by file stem.
        out_dir: where the tables go (created).
        models_dir: a ComfyUI models folder holding ``lpips/`` and ``i3d/`` (missing files: those
            columns are not computed and the notes name the manifest entries).
    """
    models_path = Path(models_dir).expanduser()
    if not models_path.is_dir():
        raise InputError(f"models folder {models_path} does not exist or is not a folder (it should hold lpips/ "
                         f"and i3d/; see `m2pdance weights list`)")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    generated, real = pair_folders(generated_dir, real_dir)
    metrics = load_metric_models(lpips_paths(models_path, lpips_net), i3d_file_in(models_path), device, lpips_net)
    for note in metrics.notes:
        log(note)
    scores = score_sets(generated, real, metrics, progress=log)
    label = Path(generated_dir).expanduser().resolve().name or "generated"
    notes = [f"{len(scores.pairs)} pairs of videos matched by file name ({scores.frames} frames): PSNR / SSIM / "
             f"LPIPS-{lpips_net} per frame at the videos' own size, averaged over all frames of all pairs",
             f"FVD over every video of each folder: {scores.fvd.real_clips} real and {scores.fvd.generated_clips} "
             "generated 16-frame clips (Kinetics-400 I3D logits, 224x224, covariances normalised by N)"]
    if scores.fvd.reason:
        notes.append(f"no FVD: {scores.fvd.reason}")
    if scores.generated_only:
        notes.append(f"generated without a real twin (FVD only): {', '.join(scores.generated_only)}")
    if scores.real_only:
        notes.append(f"real without a generated twin (FVD only): {', '.join(scores.real_only)}")
    notes += list(scores.notes)
    rows = paper_rows(PAPER_TABLE1, {}) + [TableRow("generated", f"{label} (this run)",
                                                    measured=Measured.from_scores(scores))]
    table = Table("table1", f"Video quality: {label} against {Path(real_dir).name} (paper's Table 1 beside)",
                  tuple(rows), tuple(notes))
    paths = list(write_table(table, out))
    paths.append(write_text(out / "clips.csv", render_pairs_csv({"generated": scores})))
    return scores, paths
