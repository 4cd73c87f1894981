"""Linking model libraries with the tvmjs runtime into one ``.wasm``."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolchainError
from .runtime import RuntimeObjects, tvmjs_runtime
from .toolchain import find_emcc

# What tvmjs expects of a model library: a standalone wasm with no entry point,
# BigInt for 64-bit values at the JS boundary, and growable memory.
_LDFLAGS = (
    "--no-entry",
    "-s",
    "WASM_BIGINT=1",
    "-s",
    "STANDALONE_WASM=1",
    "-s",
    "ALLOW_MEMORY_GROWTH=1",
    "-s",
    "ERROR_ON_UNDEFINED_SYMBOLS=0",
)


@dataclass(frozen=True)
class LinkResult:
    """A linked model ``.wasm`` and what it took."""

    path: Path
    seconds: float
    nbytes: int


def link_wasm(
    objects: Sequence[str | Path],
    output: str | Path,
    *,
    runtime: RuntimeObjects | None = None,
    optimize: str = "-O2",
    emcc: str = "emcc",
) -> LinkResult:
    """Link model object files (wasm objects from TVM) with the tvmjs runtime.

    ``runtime`` defaults to :func:`tvmjs_runtime` (built on first use).
    ``optimize`` is the emcc optimisation level of the link step.
    """
    emcc_path = find_emcc(emcc)
    runtime = runtime or tvmjs_runtime(emcc=emcc)
    runtime.check()
    for obj in objects:
        if not Path(obj).is_file():
            raise ToolchainError(
                f"model object {obj} does not exist; export the model library again"
            )
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [emcc_path, optimize, "-o", str(out), *_LDFLAGS]
    # The shaders are data of the library: its initial memory must hold them
    # (emcc's default of 16 MiB does not for a UNet with unrolled kernels).
    data = sum(Path(p).stat().st_size for p in objects)
    cmd += ["-s", f"INITIAL_MEMORY={max(16, -(-2 * data // 2**24) * 16)}MB"]
    cmd += [str(p) for p in runtime.objects] + [str(p) for p in objects]
    start = time.perf_counter()
    # An argv list (no shell): emcc found on PATH, our flags, the runtime's and the model's objects.
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # nosec B603
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise ToolchainError(f"emcc failed to link {out.name}:\n{tail}")
    return LinkResult(out, seconds, out.stat().st_size)
