"""Locating emscripten, the compiler of the tvmjs runtime and the model linker."""

from __future__ import annotations

import functools
import shutil
import subprocess

from .errors import ToolchainError

INSTALL_HINT = (
    "install emscripten (Debian: `apt-get install emscripten`; elsewhere: emsdk) "
    "or run scripts/setup.sh from the wsd checkout"
)


def find_emcc(emcc: str = "emcc") -> str:
    """The path of ``emcc``, or a ToolchainError that says how to install it."""
    path = shutil.which(emcc)
    if path is None:
        raise ToolchainError(f"{emcc!r} was not found on PATH: {INSTALL_HINT}")
    return path


@functools.cache
def emcc_version(emcc: str) -> str:
    """The first line of ``emcc --version`` (part of every cache key)."""
    # An argv list (no shell): the emcc found on PATH, asked for its version.
    proc = subprocess.run(  # nosec B603
        [emcc, "--version"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ToolchainError(f"`{emcc} --version` failed: {proc.stderr.strip()}; {INSTALL_HINT}")
    return proc.stdout.splitlines()[0].strip()
