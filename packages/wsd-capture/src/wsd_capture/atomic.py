"""Write a directory so that it appears complete or not at all."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CaptureError


@contextmanager
def atomic_directory(out: Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``out``; rename it to ``out`` on success.

    ``out`` must not exist or be an empty directory; on failure nothing is left behind.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CaptureError(f"{out} already exists and is not empty: choose a new directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
