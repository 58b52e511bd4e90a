"""Tables 1 and 3 as Markdown and CSV: layout, the published numbers, cell formatting."""
from __future__ import annotations

import csv
import io

import pytest

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.eval.report import (CSV_FIELDS, PAPER_TABLE1, PAPER_TABLE3, Measured, Table, TableRow,
                                         format_value, paper_rows, render_csv, render_markdown, write_table)


def test_the_published_numbers():
    assert [(r.label, r.fvd, r.lpips, r.psnr, r.ssim) for r in PAPER_TABLE1.values()] == [
        ("MM-Diffusion", 1338.57, 0.425, 11.04, 0.770), ("DabFusion (scaled)", 1440.05, 0.561, 8.525, 0.776),
        ("Ours (M2PEnc + Champ)", 213.289, 0.102, 21.11, 0.908)]
    assert [(r.label, r.fvd, r.lpips, r.psnr, r.ssim) for r in PAPER_TABLE3.values()] == [
        ("DNS", 257.196, 0.194, 19.95, 0.812), ("P", 239.724, 0.156, 20.50, 0.857),
        ("PDNS (Ours)", 213.289, 0.102, 21.11, 0.908)]


def test_format_value():
    assert [format_value(v, 2) for v in (None, float("nan"), float("inf"), -float("inf"), 1.005, 3)] == \
        ["—", "—", "inf", "-inf", "1.00", "3.00"]
    assert [format_value(v, None) for v in (1338.57, 0.770, 8.525)] == ["1338.57", "0.77", "8.525"]


def _table() -> Table:
    ours = TableRow("m2penc", "Ours | piped\nlabel", measured=Measured(fvd=12.5, lpips=0.25, psnr=float("inf"),
                                                                      ssim=0.5, bas=0.75, videos=2, frames=32))
    rows = paper_rows(PAPER_TABLE1, {"ours": ours})
    rows.append(TableRow("edge", "EDGE", status="skipped", note="edge_checkpoint missing"))
    return Table("table1", "T", tuple(rows), ("a note",))


def test_markdown_puts_paper_and_ours_side_by_side():
    lines = render_markdown(_table()).splitlines()
    assert lines[2] == ("| Model | FVD ↓ (paper) | FVD ↓ (ours) | LPIPS ↓ (paper) | LPIPS ↓ (ours) | PSNR ↑ (paper) "
                        "| PSNR ↑ (ours) | SSIM ↑ (paper) | SSIM ↑ (ours) | BAS ↑ (ours) |")
    assert lines[4] == "| MM-Diffusion | 1338.57 | — | 0.425 | — | 11.04 | — | 0.77 | — | — |"
    assert lines[6] == "| Ours \\| piped label | 213.289 | 12.500 | 0.102 | 0.250 | 21.11 | inf | 0.908 | 0.500 | 0.7500 |"
    assert lines[7] == "| EDGE | — | skipped | — | skipped | — | skipped | — | skipped | skipped |"
    assert "- **EDGE**: edge_checkpoint missing" in lines and "- a note" in lines
    table = Table("table3", "T", _table().rows, row_header="Guidance Setup", bas=False)
    assert render_markdown(table).splitlines()[2].startswith("| Guidance Setup |")
    assert "BAS" not in render_markdown(table)


def test_csv_has_full_precision_and_the_counts(tmp_path):
    rows = list(csv.DictReader(io.StringIO(render_csv(_table()))))
    assert tuple(rows[0]) == CSV_FIELDS and [r["row"] for r in rows] == ["mm_diffusion", "dabfusion", "m2penc", "edge"]
    ours = rows[2]
    assert (ours["fvd"], ours["psnr"], ours["bas"], ours["videos"], ours["frames"]) == ("12.5", "inf", "0.75", "2", "32")
    assert (ours["fvd_paper"], ours["label"]) == ("213.289", "Ours | piped\nlabel")
    assert rows[3]["status"] == "skipped" and rows[3]["psnr"] == "" and rows[3]["videos"] == ""
    md, csv_path = write_table(_table(), tmp_path / "new")
    assert md.read_text().startswith("# T") and csv_path.read_text() == render_csv(_table())


def test_table_names_and_row_keys_are_checked():
    with pytest.raises(InputError, match="table name"):
        Table("../x", "T", ())
    with pytest.raises(InputError, match="unique"):
        Table("t", "T", (TableRow("a", "A"), TableRow("a", "B")))
