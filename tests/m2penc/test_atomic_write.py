"""atomic_write: the temp file reaches the disk (fsync) before the rename, the folder after it."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from m2pdance.m2penc import checkpoint
from m2pdance.m2penc.checkpoint import atomic_write


@pytest.fixture
def events(monkeypatch) -> list[tuple]:
    """Every os.fsync (what it synced: ``("fsync", "file", size)`` / ``("fsync", "folder")``) and os.replace."""
    seen: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        seen.append(("fsync", "folder") if stat.S_ISDIR(info.st_mode) else ("fsync", "file", info.st_size))
        real_fsync(fd)

    def replace(src, dst) -> None:
        seen.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    monkeypatch.setattr(checkpoint.os, "replace", replace)
    return seen


def test_temp_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, events):
    target = tmp_path / "shard-000000.tar"
    assert atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"x" * 3000)) == target
    assert target.read_bytes() == b"x" * 3000
    expected = [("fsync", "file", 3000), ("replace", "shard-000000.tar")]
    if os.name != "nt":
        expected.append(("fsync", "folder"))
    assert events == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar"]


def test_a_folder_that_cannot_be_synced_is_not_an_error(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    target = atomic_write(tmp_path / "a.json", lambda tmp: Path(tmp).write_text("{}"))
    assert target.read_text() == "{}"


def test_a_failed_file_sync_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    target.write_text("old")

    def fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(target, lambda tmp: Path(tmp).write_text("new"))
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
