"""Where wsd keeps what is expensive to rebuild: outside any checkout, per user."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    """``$WSD_CACHE_DIR`` if set, else the platform's user cache dir for ``wsd``."""
    override = os.environ.get("WSD_CACHE_DIR")
    return Path(override) if override else platformdirs.user_cache_path("wsd")
