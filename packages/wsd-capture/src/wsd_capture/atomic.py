"""Write a directory so that it appears complete or not at all."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CaptureError


def check_new_directory(out: Path) -> None:
    """Raise :class:`CaptureError` unless ``out`` is absent or an empty directory.

    What :func:`atomic_directory` checks first; commands call it before any long
    work, so that a taken output directory fails at once.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CaptureError(f"{out} already exists and is not empty: choose a new directory")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise CaptureError(f"{parent} is a file, so {out} cannot be created: choose another path")


@contextmanager
def atomic_directory(
    out: Path,
    *,
    check: Callable[[Path], None] = check_new_directory,
    cannot_create: Callable[[Path, OSError], Exception] | None = None,
) -> Iterator[Path]:
    """Yield a temporary directory next to ``out``; rename it to ``out`` on success.

    ``check(out)`` runs first (by default: ``out`` must not exist or be an
    empty directory); ``cannot_create``, when given, turns a failure to make
    the temporary directory into the caller's error. On failure nothing is
    left behind: neither the temporary directory nor parents of ``out`` made
    for it.
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
