"""The build stamp of a model library: a WebAssembly custom section ``wsd.build``.

A model directory is a set of static files that a server, a CDN or a browser
cache may mix up across deployments. The manifest records a ``build_id``;
the model library carries the same id in a custom section (JSON: ``build_id``
and the ``runtime`` it was linked with), so the app can tell "manifest and
``.wasm`` come from different builds" apart from "the file is corrupted", and
refuse a library linked against another tvmjs runtime before instantiating
it.

The id is computed from the library *without* its stamp (the code) and the
weights index, so stamping does not change it; see
:func:`wsd_artifacts.compute_build_id`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .atomic import write_bytes_atomic
from .errors import ArtifactError, ManifestError
from .integrity import sri_sha384_bytes, sri_sha384_file

WASM_HEADER = b"\0asm\x01\0\0\0"
BUILD_SECTION = "wsd.build"


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise ValueError("truncated LEB128")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _sections(data: bytes) -> Iterator[tuple[int, int, int, str | None, int]]:
    """``(id, start, end, custom name, content start)`` of each section."""
    pos = len(WASM_HEADER)
    while pos < len(data):
        start = pos
        section_id = data[pos]
        size, body = _read_leb128(data, pos + 1)
        end = body + size
        if end > len(data):
            raise ValueError("a section runs past the end of the file")
        name: str | None = None
        content = body
        if section_id == 0:
            length, name_at = _read_leb128(data, body)
            name = data[name_at : name_at + length].decode("utf-8", errors="replace")
            content = name_at + length
        yield section_id, start, end, name, content
        pos = end


def _check_wasm(data: bytes, what: str) -> None:
    if not data.startswith(WASM_HEADER):
        raise ArtifactError(f"{what} is not a WebAssembly module; rebuild it with wsd-compile")


def read_build_info(data: bytes) -> dict[str, Any] | None:
    """The ``wsd.build`` stamp of a library's bytes, or None when it has none.

    Bytes that are not WebAssembly have no stamp (None); a stamp that is not
    a JSON object raises :class:`ArtifactError`.
    """
    if not data.startswith(WASM_HEADER):
        return None
    try:
        for _, _, end, name, content in _sections(data):
            if name == BUILD_SECTION:
                info = json.loads(data[content:end].decode("utf-8"))
                if not isinstance(info, dict):
                    raise ValueError("not a JSON object")
                return info
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"the library's {BUILD_SECTION} section is unreadable ({e})") from None
    return None


def strip_build_info(data: bytes) -> bytes:
    """The library's bytes without its ``wsd.build`` section (unchanged if it has none)."""
    if not data.startswith(WASM_HEADER):
        return data
    try:
        spans = [(s, e) for _, s, e, name, _ in _sections(data) if name == BUILD_SECTION]
    except ValueError:
        return data
    out = bytearray()
    pos = 0
    for start, end in spans:
        out += data[pos:start]
        pos = end
    return bytes(out + data[pos:])


def library_code_integrity(path: str | Path) -> str:
    """The sha384 SRI of a library without its stamp: what the build id is computed from."""
    return sri_sha384_bytes(strip_build_info(Path(path).read_bytes()))


def stamp_library(path: str | Path, info: Mapping[str, Any]) -> None:
    """Replace the ``wsd.build`` section of the library at ``path`` with ``info`` (JSON).

    The file is rewritten atomically (:func:`wsd_artifacts.write_bytes_atomic`).
    """
    target = Path(path)
    data = target.read_bytes()
    _check_wasm(data, str(target))
    payload = json.dumps(dict(info), sort_keys=True, separators=(",", ":")).encode("utf-8")
    name = BUILD_SECTION.encode("utf-8")
    content = _leb128(len(name)) + name + payload
    section = b"\0" + _leb128(len(content)) + content
    write_bytes_atomic(target, strip_build_info(data) + section)


def compute_build_id(library_integrity: str, weights_integrity: str) -> str:
    """The build id: 16 hex digits of sha256 over the library code's and weights' integrities.

    ``sha256(f"{library_integrity}\\n{weights_integrity}")``, UTF-8, first 16
    hex digits, where ``library_integrity`` is the sha384 of the library
    without its ``wsd.build`` stamp (:func:`wsd_artifacts.library_code_integrity`)
    and ``weights_integrity`` that of the weights index: it changes whenever
    the model library or the weights change, and stamping does not change it.
    """
    text = f"{library_integrity}\n{weights_integrity}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def manifest_libraries(manifest_body: Mapping[str, Any]) -> list[str]:
    """Every library a manifest (body) names: ``library``, then those of its
    ``kernel_paths`` in order, each once (non-strings skipped: validation reports them)."""
    named = [manifest_body.get("library")]
    paths = manifest_body.get("kernel_paths")
    if isinstance(paths, list):
        named += [p.get("library") for p in paths if isinstance(p, Mapping)]
    found: list[str] = []
    for name in named:
        if isinstance(name, str) and name not in found:
            found.append(name)
    return found


def libraries_code_integrity(root: str | Path, libraries: list[str]) -> str:
    """What a build id covers of its libraries: each one's code integrity
    (:func:`library_code_integrity`), space-separated, in manifest order (one
    library: its integrity alone)."""
    return " ".join(library_code_integrity(Path(root) / name) for name in libraries)


def stamp_build(model_dir: str | Path, manifest_body: Mapping[str, Any]) -> str:
    """Stamp every library that a manifest body names with its build; return the build id.

    The id is that of the libraries' code and the weights index the body
    names (:func:`compute_build_id` over :func:`libraries_code_integrity`);
    each library's stamp carries it and the body's ``runtime`` (a build with
    several kernel paths has one library per path, all of one build). A build
    calls this once the libraries and the weights are written, then
    :func:`wsd_artifacts.write_manifest`, which refuses a WebAssembly library
    that lacks the stamp. Raises :class:`ManifestError` when the body names
    no library or weights file in ``model_dir``, and :class:`ArtifactError`
    when a library is not WebAssembly.
    """
    root = Path(model_dir)
    libraries = manifest_libraries(manifest_body)
    weights_name = manifest_body.get("weights")
    named: list[tuple[str, object]] = [("library", name) for name in libraries] or [
        ("library", manifest_body.get("library"))
    ]
    named.append(("weights", weights_name))
    missing = [
        f"{field}: {name!r} names no file in {root}"
        for field, name in named
        if not (isinstance(name, str) and (root / name).is_file())
    ]
    if missing:
        raise ManifestError("cannot stamp the build", missing)
    build_id = compute_build_id(
        libraries_code_integrity(root, libraries), sri_sha384_file(root / str(weights_name))
    )
    quantize = _quantize(manifest_body)
    for name in libraries:
        stamp = {
            "build_id": build_id,
            "runtime": manifest_body.get("runtime"),
            "quantize": quantize,
        }
        stamp_library(root / name, stamp)
    return build_id


def _quantize(manifest: Mapping[str, Any]) -> str:
    """The weights' quantization a manifest (body) states: ``none`` when it states none."""
    model = manifest.get("model")
    found = model.get("quantize") if isinstance(model, Mapping) else None
    return str(found) if found is not None else "none"


def build_stamp_problems(model_dir: str | Path, manifest: Mapping[str, Any]) -> list[str]:
    """What is wrong between a (valid) manifest and its libraries' stamps; empty when they agree.

    Every library (:func:`manifest_libraries`) must carry a ``wsd.build``
    section with the manifest's ``build_id``, ``runtime`` and (where the stamp
    has one) the weights' quantization (``model.quantize``), and the id must
    be the one the libraries' code and the weights index give
    (:func:`compute_build_id`).
    """
    root = Path(model_dir)
    libraries = manifest_libraries(manifest)
    weights = root / manifest["weights"]
    if not weights.is_file() or not all((root / name).is_file() for name in libraries):
        return []  # reported as missing files
    problems: list[str] = []
    unreadable = False
    for name in libraries:
        found, readable = _library_stamp_problems(name, (root / name).read_bytes(), manifest)
        problems += found
        unreadable = unreadable or not readable
    if unreadable:
        return problems
    expected = compute_build_id(libraries_code_integrity(root, libraries), sri_sha384_file(weights))
    if expected != manifest["build_id"]:
        code = "library's" if len(libraries) == 1 else "libraries'"
        problems.append(
            f"build_id: the {code} code and {manifest['weights']} give {expected}, "
            f"the manifest says {manifest['build_id']}"
        )
    return problems


def _library_stamp_problems(
    name: str, data: bytes, manifest: Mapping[str, Any]
) -> tuple[list[str], bool]:
    """One library's stamp against the manifest, and whether it has a readable stamp."""
    if not data.startswith(WASM_HEADER):
        return [f"{name}: not a WebAssembly module"], False
    try:
        info = read_build_info(data)
    except ArtifactError as e:
        return [f"{name}: {e}"], False
    if info is None:
        return [f"{name}: has no {BUILD_SECTION} section; rebuild with wsd-compile"], False
    problems = []
    if info.get("build_id") != manifest["build_id"]:
        problems.append(
            f"{name}: belongs to build {info.get('build_id')}, "
            f"the manifest to build {manifest['build_id']}"
        )
    if info.get("runtime") != manifest["runtime"]:
        problems.append(
            f"{name}: linked with runtime {info.get('runtime')}, "
            f"the manifest says {manifest['runtime']}"
        )
    if "quantize" in info and info["quantize"] != _quantize(manifest):
        problems.append(
            f"{name}: built for {info['quantize']} weights, the manifest says {_quantize(manifest)}"
        )
    return problems, True
