"""Subresource-Integrity strings (``sha384-<base64>``), as browsers check them."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sri_sha384_bytes(data: bytes) -> str:
    """The SRI string of ``data``."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def sri_sha384_file(path: str | Path) -> str:
    """The SRI string of a file, read in chunks so large shards need little memory."""
    digest = hashlib.sha384()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return "sha384-" + base64.b64encode(digest.digest()).decode("ascii")
