"""Writing an output directory all at once: complete, or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsd_artifacts import atomic_directory

from .errors import WsdCompileError


class OutputExistsError(WsdCompileError):
    """The output directory already exists and holds files."""


def check_output_dir(out: Path) -> None:
    """Raise unless ``out`` can become a new output directory (absent, or empty).

    :class:`OutputExistsError` when it holds files (or is a file);
    :class:`WsdCompileError` when a parent of it is a file.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(
            f"{out} already exists; remove it or choose another output directory"
        )
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise WsdCompileError(
            f"{parent} is a file, so {out} cannot be created; choose another output directory"
        )


def _cannot_create(out: Path, e: OSError) -> WsdCompileError:
    return WsdCompileError(
        f"cannot create {out} ({e.strerror or e}); choose another output directory"
    )


@contextmanager
def fresh_output_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``out`` that becomes ``out`` on success.

    Refuses an ``out`` that already holds files (nothing is overwritten); on
    any failure the temporary directory is removed, and so are the parents of
    ``out`` made for it, so no half-written output is ever left behind.
    """
    with atomic_directory(out, check=check_output_dir, cannot_create=_cannot_create) as tmp:
        yield tmp
