"""The manifest of a compiled model directory (``manifest.json``, version 2).

A compiled model is a directory of static files; the browser app reads only
``manifest.json`` to learn everything about it: the kind of pipeline, the
functions of the model library with their tensor shapes and dtypes, the
weights each function takes, the scheduler and tokenizer settings, and every
file with its size and sha384 integrity. The format is the JSON Schema
document ``manifest.schema.json`` shipped beside this module
(:func:`manifest_schema`); :func:`validate_manifest` checks a manifest
against that document and against the cross-field rules a schema cannot say.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from ._schema_messages import check_keywords, child_path, validate
from .atomic import write_text_atomic
from .errors import ArtifactError, ManifestError
from .integrity import sri_sha384_file
from .library import (
    WASM_HEADER,
    compute_build_id,
    libraries_code_integrity,
    manifest_libraries,
    read_build_info,
)
from .tensor_cache import INDEX_NAME, load_tensor_cache_index

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "wsd-manifest"
MANIFEST_VERSION = 3
SCHEMA_RESOURCE = "manifest.schema.json"

# Fields write_manifest computes; values for them in a body are replaced.
_COMPUTED = ("schema", "version", "build_id", "files")


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("wsd_artifacts").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    check_keywords(schema)
    return schema


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) document of manifest version 1 (a copy)."""
    return copy.deepcopy(_schema())


def validate_manifest(manifest: Any) -> dict[str, Any]:
    """Check ``manifest`` (a parsed manifest) and return it as a dict.

    Raises :class:`ManifestError` listing every problem, each with the path
    of the field (``functions.unet.inputs[0].dtype``) and what was expected.
    A manifest of a newer version is refused with a message that says so.
    """
    if isinstance(manifest, Mapping) and manifest.get("schema") == MANIFEST_SCHEMA:
        version = manifest.get("version")
        version = version if type(version) is int else 0
        if version > MANIFEST_VERSION:
            raise ManifestError(
                f"manifest version {version} is newer than this wsd-artifacts supports "
                f"({MANIFEST_VERSION}); upgrade wsd-artifacts"
            )
    elif isinstance(manifest, Mapping) and "schema" in manifest:
        raise ManifestError(
            f"not a wsd manifest: schema is {manifest['schema']!r}, expected {MANIFEST_SCHEMA!r}"
        )
    problems = validate(manifest, _schema())
    if not problems:
        problems = _cross_field_problems(manifest)
    if problems:
        raise ManifestError("invalid manifest", problems)
    return dict(manifest)


def _cross_field_problems(m: Mapping[str, Any]) -> list[str]:
    """The rules of version 1 that the schema document cannot express."""
    problems: list[str] = []
    files: Mapping[str, Any] = m["files"]
    components: Mapping[str, Any] = m["components"]
    if MANIFEST_NAME in files:
        problems.append(f'files["{MANIFEST_NAME}"]: the manifest must not list itself')
    named = [
        ("library", m["library"]),
        ("weights", m["weights"]),
        ("tokenizer.file", m["tokenizer"]["file"]),
    ]
    if "tokenizer_2" in m:
        named.append(("tokenizer_2.file", m["tokenizer_2"]["file"]))
    if m["kind"] == "sdxl":
        problems += [
            f"{key}: required for kind sdxl"
            for key in ("tokenizer_2", "conditioning")
            if key not in m
        ]
    problems += _kernel_path_problems(m)
    problems += _vae_tiling_problems(m)
    problems += _lora_problems(m)
    paths = m.get("kernel_paths", [])
    named += [(f"kernel_paths[{i}].library", p["library"]) for i, p in enumerate(paths)]
    for field, path in named:
        if path not in files:
            problems.append(f"{field}: expected a file listed in files, got {path!r}")
    if PurePosixPath(m["weights"]).name != INDEX_NAME:
        problems.append(
            f"weights: expected the path of a tensor-cache index named {INDEX_NAME}, "
            f"got {m['weights']!r}"
        )
    for name, fn in m["functions"].items():
        params = fn["params"]
        if params is not None and params not in components:
            known = ", ".join(repr(c) for c in components) or "none"
            problems.append(
                f"{child_path(child_path('functions', name), 'params')}: "
                f"expected null or the name of a component ({known}), got {params!r}"
            )
    for task, needed in m["tasks"].items():
        absent = [f for f in needed if f not in m["functions"]]
        if absent:
            problems.append(
                f"{child_path('tasks', task)}: lists functions the library "
                f"lacks: {', '.join(absent)}"
            )
    for name, comp in components.items():
        if comp["param_count"] != len(comp["param_names"]):
            path = child_path(child_path("components", name), "param_count")
            problems.append(
                f"{path}: expected {len(comp['param_names'])} (the length of param_names), "
                f"got {comp['param_count']}"
            )
    image, latent = m["image"], m["latent"]
    factor = latent["vae_scale_factor"]
    expected_hw = [image["height"] / factor, image["width"] / factor]
    if len(latent["shape"]) < 2 or latent["shape"][-2:] != expected_hw:
        problems.append(
            f"latent.shape: expected the last two dimensions to be image height and width "
            f"divided by vae_scale_factor ({_hw(expected_hw)}), got {latent['shape']}"
        )
    return problems


def _kernel_path_problems(m: Mapping[str, Any]) -> list[str]:
    paths = m.get("kernel_paths")
    if paths is None:
        return []
    problems = []
    if m["library"] not in [p["library"] for p in paths]:
        problems.append(
            f"kernel_paths: expected one path of the top-level library {m['library']!r} "
            f"(the build's own kernels), got {', '.join(repr(p['library']) for p in paths)}"
        )
    names = [p["name"] for p in paths]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"kernel_paths: names must be unique; repeated: {', '.join(repeated)}")
    return problems


def _vae_tiling_problems(m: Mapping[str, Any]) -> list[str]:
    tiling = m.get("vae_tiling")
    if tiling is None:
        return []
    sizes = [f"vae_tiling.{k}" for k in ("tile", "overlap") if len(tiling[k]) != 2]
    if sizes:
        return [f"{k}: expected [height, width], two latent sizes" for k in sizes]
    problems = []
    fn = m["functions"].get(tiling["function"])
    if fn is None:
        problems.append(
            f"vae_tiling.function: expected a function of the library, got {tiling['function']!r}"
        )
    elif fn["inputs"] and fn["inputs"][0]["shape"][-2:] != tiling["tile"]:
        problems.append(
            f"vae_tiling.tile: expected the latent size {fn['inputs'][0]['shape'][-2:]} "
            f"that {tiling['function']} decodes, got {tiling['tile']}"
        )
    encoder = tiling.get("encode_function")
    encode_fn = None if encoder is None else m["functions"].get(encoder)
    if encoder is not None and encode_fn is None:
        problems.append(
            f"vae_tiling.encode_function: expected a function of the library, got {encoder!r}"
        )
    elif encode_fn is not None and encode_fn["outputs"][0]["shape"][-2:] != tiling["tile"]:
        problems.append(
            f"vae_tiling.tile: expected the latent size {encode_fn['outputs'][0]['shape'][-2:]} "
            f"that {encoder} encodes to, got {tiling['tile']}"
        )
    if any(o >= t for o, t in zip(tiling["overlap"], tiling["tile"], strict=True)):
        problems.append(
            f"vae_tiling.overlap: expected less than the tile {tiling['tile']}, "
            f"got {tiling['overlap']}"
        )
    return problems


def _lora_problems(m: Mapping[str, Any]) -> list[str]:
    """LoRA targets must name a weight of their component, with a shape of its size."""
    problems = []
    for name, component in m["components"].items():
        names = set(component["param_names"])
        for path, targets in component.get("lora_targets", {}).items():
            for t in targets:
                where = f"components.{name}.lora_targets[{path!r}]"
                if t["param"] not in names:
                    problems.append(f"{where}: {t['param']!r} is not one of its param_names")
                if t["layout"] == "cols" and len(t["shape"]) != 2:
                    problems.append(f"{where}: a transposed (cols) weight must be 2-D")
    if any("lora_targets" in c for c in m["components"].values()) and "lora" not in m:
        problems.append("lora: required where components have lora_targets (the merge functions)")
    return problems


def _hw(values: list[float]) -> str:
    return " x ".join(f"{v:g}" for v in values)


def list_files(model_dir: str | Path) -> list[str]:
    """Every file under ``model_dir`` except the top-level manifest, as sorted POSIX paths."""
    root = Path(model_dir)
    found: list[str] = []
    for current, dirs, names in os.walk(root):
        dirs.sort()
        base = Path(current).relative_to(root)
        for name in names:
            rel = (base / name).as_posix()
            if rel != MANIFEST_NAME and (Path(current) / name).is_file():
                found.append(rel)
    return sorted(found)


def _file_record(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "integrity": sri_sha384_file(path)}


def write_manifest(model_dir: str | Path, manifest_body: Mapping[str, Any]) -> dict[str, Any]:
    """Complete, check and write ``model_dir/manifest.json``; return the manifest written.

    ``manifest_body`` holds every field except the computed ones: ``schema``,
    ``version``, ``files`` (size and sha384 of every file in ``model_dir``,
    recursively, except ``manifest.json``) and ``build_id``
    (:func:`compute_build_id`); values given for those are replaced. The
    manifest is not written unless a library that is WebAssembly carries the
    stamp of that build id and the manifest's ``runtime`` (the caller stamps it
    with :func:`stamp_build` first), so the app can check that manifest and
    library belong together; the library is never rewritten here. Besides
    the schema, it checks that ``library``, ``weights`` and ``tokenizer.file``
    name files in ``model_dir``, that the weights index's shards are there,
    and that every component's ``param_names`` are tensors of the index whose
    count and total bytes match ``param_count`` and ``param_bytes``.
    The manifest is written to a temporary file and renamed into place, so a
    reader never sees half of one. Raises :class:`ManifestError` listing
    every problem (or :class:`ArtifactError` for an unreadable weights index).
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise ManifestError(f"{root} is not a directory; write the model files there first")
    body = dict(manifest_body)
    tokenizer = body.get("tokenizer")
    missing = [
        f"{field}: {name!r} names no file in {root}"
        for field, name in (
            ("library", body.get("library")),
            *(("kernel_paths.library", name) for name in manifest_libraries(body)[1:]),
            ("weights", body.get("weights")),
            ("tokenizer.file", tokenizer.get("file") if isinstance(tokenizer, Mapping) else None),
        )
        if isinstance(name, str) and not (root / name).is_file()
    ]
    if missing:
        raise ManifestError("cannot write the manifest", missing)

    build_id = "0" * 16  # only when library/weights are invalid, which validation reports
    libraries, weights = manifest_libraries(body), body.get("weights")
    if libraries and isinstance(weights, str) and all((root / n).is_file() for n in libraries):
        build_id = compute_build_id(
            libraries_code_integrity(root, libraries), sri_sha384_file(root / weights)
        )
    files = {rel: _file_record(root / rel) for rel in list_files(root)}
    merged = {k: v for k, v in body.items() if k not in _COMPUTED}
    merged.update(schema=MANIFEST_SCHEMA, version=MANIFEST_VERSION, build_id=build_id, files=files)
    # Fields in the schema's order, then any unknown ones (which validation reports).
    order = [k for k in _schema()["required"] if k in merged]
    manifest = {k: merged[k] for k in order} | {k: merged[k] for k in merged if k not in order}
    validate_manifest(manifest)

    problems = _weights_problems(root, manifest) + _stamp_problems(root, manifest)
    if problems:
        raise ManifestError("cannot write the manifest", problems)
    write_text_atomic(root / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _stamp_problems(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    """How to stamp the libraries, when one is WebAssembly without the stamp of this build."""
    build_id, runtime = manifest["build_id"], manifest["runtime"]
    problems = []
    for name in manifest_libraries(manifest):
        data = (root / name).read_bytes()
        if not data.startswith(WASM_HEADER):
            continue  # only WebAssembly carries a stamp
        try:
            info = read_build_info(data) or {}
        except ArtifactError:
            info = {}
        if info.get("build_id") == build_id and info.get("runtime") == runtime:
            continue
        problems.append(
            f"library: {name} is not stamped with build {build_id} and runtime "
            f"{runtime}; stamp it with wsd_artifacts.stamp_build(model_dir, manifest_body) first"
        )
    return problems


def _weights_problems(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    weights = PurePosixPath(manifest["weights"])
    cache = load_tensor_cache_index(root / weights.parent)
    problems: list[str] = []
    for shard in cache.shards:
        rel = (weights.parent / shard.data_path).as_posix()
        if rel not in manifest["files"]:
            problems.append(f"weights: {weights} lists shard {rel!r}, which is not in {root}")
    nbytes = {r.name: r.nbytes for r in cache.records}
    for name, comp in manifest["components"].items():
        where = child_path("components", name)
        absent = [p for p in comp["param_names"] if p not in nbytes]
        if absent:
            shown = ", ".join(repr(p) for p in absent[:5])
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            problems.append(
                f"{where}.param_names: expected names of tensors in {weights}, "
                f"not found: {shown}{more}"
            )
            continue
        total = sum(nbytes[p] for p in comp["param_names"])
        if comp["param_bytes"] != total:
            problems.append(
                f"{where}.param_bytes: expected {total} (the bytes of its tensors in "
                f"{weights}), got {comp['param_bytes']}"
            )
    return problems


def load_manifest(model_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``model_dir/manifest.json``.

    Raises :class:`ManifestError` when the file is missing, is not JSON, is
    of a newer version than this package reads, or breaks the schema.
    """
    root = Path(model_dir)
    path = root / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not root.is_dir():
            raise ManifestError(
                f"{root} does not exist or is not a directory; check the path"
            ) from None
        raise ManifestError(
            f"{path} does not exist: is {root} a compiled model directory? "
            "Build it with wsd-compile"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path} cannot be read ({e}); check the file") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(
            f"{path} is not valid JSON ({e}); rebuild or re-download the model"
        ) from None
    try:
        return validate_manifest(doc)
    except ManifestError as e:
        raise ManifestError(f"{path}: {e.message}", e.problems) from None
