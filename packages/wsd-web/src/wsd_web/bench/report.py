"""The file side of ``wsd-web report``: result files in, the result document, its
charts and the page out, all rendered before any is written."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsd_artifacts import write_text_atomic

from .charts import chart_svg, kernels_svg
from .page import render_page
from .results import BenchReportError, check_document, combine_labelled

__all__ = ["render_docs", "write_report"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchReportError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise BenchReportError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise BenchReportError(f"{path}: cannot read it: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BenchReportError(
            f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None


def _read_results(paths: Sequence[str | Path]) -> list[tuple[str, Any]]:
    """Each file's result (a JSON object) or results (a list), labelled by file."""
    results: list[tuple[str, Any]] = []
    for path in map(Path, paths):
        data = _read_json(path)
        if isinstance(data, list):
            if not data:
                raise BenchReportError(f"{path}: an empty list, no results")
            results += [(f"{path}[{i}]", item) for i, item in enumerate(data)]
        else:
            results.append((str(path), data))
    return results


#: The keys of which a result document (of any version) has at least one.
_DOCUMENT_KEYS = ("version", "webgpu", "webgpu_runs")


def _read_documents(bench_dir: Path, *, skip: str | None = None) -> dict[str, dict[str, Any]]:
    """The result documents in ``bench_dir``, by name; JSON objects that are no result
    document at all (``gpu-parity.json``: none of `_DOCUMENT_KEYS`) are left alone."""
    docs = {}
    for path in sorted(bench_dir.glob("*.json")):
        if path.stem == skip:
            continue
        data = _read_json(path)
        if isinstance(data, dict) and not any(key in data for key in _DOCUMENT_KEYS):
            continue
        docs[path.stem] = check_document(str(path), data)
    return docs


def _write_all(
    out_dir: Path, docs: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]
) -> list[Path]:
    """Render everything first (so a failure writes nothing), then write it file by file."""
    bench_dir = out_dir / "benchmarks"
    files: dict[Path, str] = {
        bench_dir / f"{name}.json": json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
        + "\n"
        for name, doc in new.items()
    }
    stale: list[Path] = []
    named = [{**docs[name], "name": name} for name in sorted(docs)]
    for doc in named:
        files[bench_dir / f"{doc['name']}.svg"] = chart_svg(doc)
        kernels = kernels_svg(doc)
        if kernels is None:
            stale.append(bench_dir / f"{doc['name']}-kernels.svg")
        else:
            files[bench_dir / f"{doc['name']}-kernels.svg"] = kernels
    files[out_dir / "benchmarks.md"] = render_page(named)
    bench_dir.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        write_text_atomic(path, text)
    for path in stale:
        path.unlink(missing_ok=True)
    return list(files)


def write_report(
    webgpu_files: Sequence[str | Path],
    pytorch_files: Sequence[str | Path],
    *,
    command: str,
    machine: str,
    name: str,
    out_dir: str | Path,
) -> list[Path]:
    """Combine result files into ``OUT/benchmarks/NAME.json``, chart it, rewrite the page.

    ``webgpu_files`` hold the ``wsd-web bench`` results of one or more builds of
    one model at one size (an fp32 and an fp16 build, say); the document gets a
    record per build (see :func:`wsd_web.bench.results.combine`).

    The page (``OUT/benchmarks.md``) and every chart come from all of
    ``OUT/benchmarks/*.json``: a table of every build at a glance, then a section per result,
    newest first. Returns the files written;
    on bad input raises `BenchReportError` naming the file, having written nothing.
    """
    if not _NAME.fullmatch(name) or name.endswith("-kernels"):
        raise BenchReportError(
            f"name {name!r}: use letters, digits, '-' and '_' (like sd15-512), "
            "not ending in -kernels"
        )
    doc = combine_labelled(
        _read_results(webgpu_files), _read_results(pytorch_files), command=command, machine=machine
    )
    out = Path(out_dir)
    docs = _read_documents(out / "benchmarks", skip=name)
    docs[name] = doc
    return _write_all(out, docs, {name: doc})


def render_docs(out_dir: str | Path) -> list[Path]:
    """Rewrite ``OUT/benchmarks.md`` and the charts from ``OUT/benchmarks/*.json``."""
    out = Path(out_dir)
    docs = _read_documents(out / "benchmarks")
    if not docs:
        raise BenchReportError(
            f"{out / 'benchmarks'}: no benchmark results (*.json) to render; "
            "write one with wsd-web report --webgpu ... --pytorch ..."
        )
    return _write_all(out, docs, {})
