"""Writing a file or a whole directory so that it appears complete or not at all.

A reader (a browser, a server, a later command) must never see half of a
manifest, a library or a model directory, even when the writer is killed or
the disk fills up. Everything is written beside its target and renamed into
place, which the file system does in one step.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ArtifactError


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path``: a reader sees the old file or the new one, never a part.

    The bytes go to a temporary file beside ``path``, flushed to disk, which is
    then renamed over it; on failure the temporary file is removed and ``path``
    is left as it was. A replaced file keeps its mode; a new one gets the mode
    ``open`` would give it.
    """
    target = Path(path)
    mode = target.stat().st_mode & 0o777 if target.exists() else None
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """:func:`write_bytes_atomic` for ``text``, encoded as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


def check_new_directory(out: Path, error: Callable[[str], Exception] = ArtifactError) -> None:
    """Raise ``error(message)`` unless ``out`` is absent or an empty directory.

    What :func:`atomic_directory` checks first; commands call it before any
    long work, so that a taken output directory fails at once. ``error`` is the
    caller's exception type, so a command reports the problem as its own.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise error(f"{out} already exists and is not empty: choose a new directory")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise error(f"{parent} is a file, so {out} cannot be created: choose another path")


@contextmanager
def atomic_directory(
    out: Path,
    *,
    check: Callable[[Path], None] = check_new_directory,
    cannot_create: Callable[[Path, OSError], Exception] | None = None,
) -> Iterator[Path]:
    """Yield a temporary directory next to ``out``; rename it to ``out`` on success.

    ``check(out)`` runs first (by default :func:`check_new_directory`: ``out``
    must not exist or be an empty directory); ``cannot_create``, when given,
    turns a failure to make the temporary directory into the caller's error.
    On failure nothing is left behind: neither the temporary directory nor
    parents of ``out`` made for it.
    """
    check(out)
    made = [p for p in reversed(out.parents) if not p.exists()]
    try:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        except OSError as e:
            if cannot_create is None:
                raise
            raise cannot_create(out, e) from e
        try:
            yield tmp
            if out.exists():
                out.rmdir()  # empty, checked above
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except BaseException:
        for parent in reversed(made):
            try:
                parent.rmdir()
            except OSError:
                break
        raise
