"""Fixtures of the wsd-compile tests."""

from __future__ import annotations

import pytest

from wsd_compile import RuntimeObjects, tvmjs_runtime


@pytest.fixture(scope="session")
def runtime_objects() -> RuntimeObjects:
    """The tvmjs runtime objects (built once per machine, ~2 min on 2 cores)."""
    return tvmjs_runtime()
