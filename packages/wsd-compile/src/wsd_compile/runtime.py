"""The tvmjs runtime objects every model ``.wasm`` links against.

TVM's web runtime is three C++ translation units (``web/emcc/wasm_runtime.cc``,
``tvmjs_support.cc``, ``webgpu_runtime.cc``). The apache-tvm wheel ships
their sources but not the prebuilt objects, and nine small internal headers
they include are missing from the wheels; wsd supplies its own versions of
those (``runtime_compat/``). This module assembles a source tree from the
installed wheels plus those headers, compiles the three units with emcc to
wasm object files (not LLVM bitcode: linking plain objects is ~3x faster
and does not depend on the wheel's LLVM matching emcc's), and caches the
result per user, keyed by the TVM, tvm-ffi and emcc versions and the
headers' contents, so it happens once per machine.

A user with a TVM checkout can set ``TVM_HOME``; its ``web/dist/wasm/*.bc``
(built by ``make -C $TVM_HOME/web``) are then used as they are.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .cache import cache_root
from .errors import ToolchainError
from .toolchain import emcc_version, find_emcc

#: The runtime translation units, in link order.
RUNTIME_UNITS = ("wasm_runtime", "tvmjs_support", "webgpu_runtime")

_COMPAT_DIR = Path(__file__).parent / "runtime_compat"
_CFLAGS = ("-O3", "-std=c++17", "-Wno-ignored-attributes")
_FIX = "run `wsd-compile runtime` to build them"


@dataclass(frozen=True)
class RuntimeObjects:
    """Prebuilt tvmjs runtime objects, ready to link with a model library."""

    objects: tuple[Path, ...]
    """One file per unit of ``RUNTIME_UNITS``, in link order."""
    origin: str
    """``"cache"`` (built earlier), ``"built"`` (built by this call) or ``"TVM_HOME"``."""
    build_seconds: float
    """Wall time of the emcc build that produced them (0 for ``TVM_HOME``)."""

    def check(self) -> None:
        """Raise ToolchainError naming the fix if any object file has gone missing."""
        for path in self.objects:
            if not path.is_file():
                raise ToolchainError(f"tvmjs runtime object {path} is missing: {_FIX}")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ToolchainError(f"Python package {name!r} is not installed: pip install apache-tvm")
    return Path(spec.origin).parent


def _compat_headers() -> Iterator[Path]:
    return (p for p in sorted(_COMPAT_DIR.rglob("*.h")))


def tvm_version() -> str:
    """The apache-tvm version whose web runtime model libraries link (recorded in manifests)."""
    return importlib.metadata.version("apache-tvm")


def runtime_cache_key(emcc: str) -> str:
    """A key that changes whenever the runtime objects would come out differently."""
    h = hashlib.sha256()
    for part in (
        importlib.metadata.version("apache-tvm"),
        importlib.metadata.version("apache-tvm-ffi"),
        emcc_version(emcc),
        " ".join(_CFLAGS),
    ):
        h.update(part.encode() + b"\0")
    for header in _compat_headers():
        h.update(header.relative_to(_COMPAT_DIR).as_posix().encode() + b"\0")
        h.update(header.read_bytes())
    return f"tvm{importlib.metadata.version('apache-tvm')}-{h.hexdigest()[:16]}"


def assemble_source_tree(dest: Path) -> Path:
    """Lay out a TVM source root at ``dest`` from the installed wheels plus wsd's headers.

    The layout is the one TVM's ``web/Makefile`` expects. Returns ``dest``.
    """
    tvm, ffi = _package_dir("tvm"), _package_dir("tvm_ffi")
    copies = {
        tvm / "web" / "emcc": dest / "web" / "emcc",
        tvm / "src": dest / "src",
        tvm / "include": dest / "include",
        ffi / "include": dest / "3rdparty" / "tvm-ffi" / "include",
        ffi / "src": dest / "3rdparty" / "tvm-ffi" / "src",
        ffi / "3rdparty" / "dlpack": dest / "3rdparty" / "tvm-ffi" / "3rdparty" / "dlpack",
    }
    for src, dst in copies.items():
        if not src.is_dir():
            raise ToolchainError(
                f"{src} is missing from the installed wheel; "
                "reinstall apache-tvm and apache-tvm-ffi"
            )
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for header in _compat_headers():
        target = dest / header.relative_to(_COMPAT_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(header, target)
    return dest


def _include_flags(root: Path) -> list[str]:
    dirs = [
        root,
        root / "include",
        root / "3rdparty" / "tvm-ffi" / "include",
        root / "3rdparty" / "tvm-ffi" / "3rdparty" / "dlpack" / "include",
        root / "3rdparty" / "compiler-rt",
    ]
    return [f"-I{d}" for d in dirs]


def _compile_unit(emcc: str, root: Path, unit: str, out: Path) -> None:
    cmd = [emcc, *_CFLAGS, *_include_flags(root), "-c", "-o", str(out)]
    cmd.append(str(root / "web" / "emcc" / f"{unit}.cc"))
    # An argv list (no shell): emcc, our flags and a runtime source from the TVM wheel.
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # nosec B603
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-30:])
        raise ToolchainError(f"emcc failed to compile the tvmjs runtime unit {unit}:\n{tail}")


def _from_tvm_home(tvm_home: Path) -> RuntimeObjects:
    dist = tvm_home / "web" / "dist" / "wasm"
    objects = tuple(dist / f"{unit}.bc" for unit in RUNTIME_UNITS)
    missing = [p.name for p in objects if not p.is_file()]
    if missing:
        raise ToolchainError(
            f"TVM_HOME={tvm_home} has no {', '.join(missing)} in {dist}: build them with "
            f"`make -C {tvm_home / 'web'}`, or unset TVM_HOME to use wsd's own runtime build"
        )
    return RuntimeObjects(objects, "TVM_HOME", 0.0)


def tvmjs_runtime(*, rebuild: bool = False, emcc: str = "emcc", jobs: int = 2) -> RuntimeObjects:
    """The tvmjs runtime objects, built with emcc on first use and cached per user.

    With ``TVM_HOME`` set, the objects of that checkout's ``web/dist/wasm`` are
    used instead. ``rebuild`` discards a cached build first; ``jobs`` is how
    many units compile at once (each takes about a minute and ~1 GB of RAM).
    """
    tvm_home = os.environ.get("TVM_HOME")
    if tvm_home:
        return _from_tvm_home(Path(tvm_home))
    emcc_path = find_emcc(emcc)
    final = cache_root() / "tvmjs-runtime" / runtime_cache_key(emcc_path)
    objects = tuple(final / f"{unit}.o" for unit in RUNTIME_UNITS)
    if not rebuild and all(p.is_file() for p in (*objects, final / "build.json")):
        info = json.loads((final / "build.json").read_text())
        return RuntimeObjects(objects, "cache", float(info["build_seconds"]))
    if final.exists():  # asked to rebuild, or an incomplete earlier build
        shutil.rmtree(final)

    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        root = assemble_source_tree(work / "tvm")
        out = work / "objects"
        out.mkdir()
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [
                pool.submit(_compile_unit, emcc_path, root, unit, out / f"{unit}.o")
                for unit in RUNTIME_UNITS
            ]
            for future in futures:
                future.result()
        seconds = time.perf_counter() - start
        (out / "build.json").write_text(
            json.dumps(
                {
                    "apache-tvm": importlib.metadata.version("apache-tvm"),
                    "apache-tvm-ffi": importlib.metadata.version("apache-tvm-ffi"),
                    "emcc": emcc_version(emcc_path),
                    "cflags": list(_CFLAGS),
                    "build_seconds": round(seconds, 1),
                },
                indent=1,
            )
        )
        if final.exists():  # another process finished first; keep its result
            shutil.rmtree(out)
        else:
            out.rename(final)
    return RuntimeObjects(objects, "built", seconds)
