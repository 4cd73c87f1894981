"""Writing an output directory all at once: complete, or not at all."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WsdCompileError


class OutputExistsError(WsdCompileError):
    """The output directory already exists and holds files."""


@contextmanager
def fresh_output_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``out`` that becomes ``out`` on success.

    Refuses an ``out`` that already holds files (nothing is overwritten); on
    any failure the temporary directory is removed, so no half-written
    output is ever left at ``out``.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(
            f"{out} already exists; remove it or choose another output directory"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
