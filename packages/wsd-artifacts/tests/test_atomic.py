"""Atomic writes: a file or a directory appears complete or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wsd_artifacts import (
    ArtifactError,
    atomic_directory,
    check_new_directory,
    write_bytes_atomic,
    write_text_atomic,
)

# --- files ------------------------------------------------------------------


def test_a_file_is_written_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_text_atomic(path, "{}\n")
    assert path.read_text() == "{}\n"
    write_bytes_atomic(path, b"[]\n")
    assert path.read_bytes() == b"[]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_new_file_gets_the_mode_open_gives_and_a_replaced_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    umask = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "new.bin", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o644
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"old")
    kept.chmod(0o751)
    write_bytes_atomic(kept, b"new")
    assert kept.stat().st_mode & 0o777 == 0o751


def test_a_failed_file_write_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")

    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("wsd_artifacts.atomic.os.fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


# --- directories --------------------------------------------------------------


def test_a_directory_appears_on_success(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new", tmp_path / "empty"):
        with atomic_directory(out) as tmp:
            (tmp / "a.bin").write_bytes(b"1")
        assert [p.name for p in out.iterdir()] == ["a.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]


def test_a_failed_directory_write_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "half.bin").write_bytes(b"1")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_removes_the_parents_it_made(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "a" / "b" / "out") as tmp:
        (tmp / "half.bin").write_bytes(b"1")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_taken_directory_is_refused_in_the_callers_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    with pytest.raises(ArtifactError, match="out already exists and is not empty: choose a new"):
        check_new_directory(tmp_path / "out")
    with pytest.raises(KeyError, match="already exists and is not empty"):
        check_new_directory(tmp_path / "out", KeyError)
    with pytest.raises(ArtifactError, match=r"x is a file, so .* cannot be created"):
        check_new_directory(tmp_path / "out" / "x" / "deeper")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x"]


def test_a_failure_to_create_is_turned_into_the_callers_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    def cannot_create(out: Path, e: OSError) -> Exception:
        return ValueError(f"cannot create {out.name} ({e.strerror})")

    monkeypatch.setattr("wsd_artifacts.atomic.tempfile.mkdtemp", refuse)
    out = tmp_path / "a" / "out"
    with (
        pytest.raises(ValueError, match=r"cannot create out \(Permission denied\)"),
        atomic_directory(out, cannot_create=cannot_create),
    ):
        pass
    assert list(tmp_path.iterdir()) == []
