"""The result document: benchmark results checked, then combined with their ratios.

`combine` checks that ``wsd-web bench`` and ``python -m wsd_capture.bench``
results measured the same thing and joins them into one result document
(version `VERSION`): one record per WebGPU build in ``webgpu_runs`` (an fp32
and an fp16 build of one model, say), each with its WebGPU / PyTorch ratios,
beside PyTorch fp32 and fp16. Documents of version 1 (one WebGPU build, its
results at the top level) are still read. The page
(:mod:`wsd_web.bench.page`) and the charts (:mod:`wsd_web.bench.charts`) read
documents of either version through the accessors at the end of this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeGuard

__all__ = [
    "HEADLINE_STAGES",
    "KERNEL_PATHS",
    "SERIES",
    "STAGES",
    "TOP_KERNELS",
    "VERSION",
    "BenchReportError",
    "combine",
    "webgpu_runs",
]

VERSION = 2
#: The document versions this module reads: 1 held one WebGPU build at the top level.
READ_VERSIONS = (1, 2)

#: The timed stages: the key in ``stages`` is ``<stage>_ms``; ratios are ``<stage>_vs_<baseline>``.
STAGES: tuple[tuple[str, str], ...] = (
    ("text_encoder", "Text encoder"),
    ("unet_step", "UNet step"),
    ("scheduler_step", "Scheduler step"),
    ("vae_decode", "VAE decode"),
    ("generation", "Generation"),
)

#: The stages whose ratios each WebGPU record also holds as ``ratio_<stage>_vs_<baseline>``.
HEADLINE_STAGES = ("unet_step", "generation", "vae_decode")

#: The PyTorch results a document can hold: key and precision.
BASELINES = (("pytorch_fp32", "fp32"), ("pytorch_fp16", "fp16"))

#: The results of a one-build document, in table and chart order: key, label, bar colour.
SERIES: tuple[tuple[str, str, str], ...] = (
    ("webgpu", "WebGPU", "#2563eb"),
    ("webgpu_no_robustness", "WebGPU (no robustness)", "#93c5fd"),
    ("pytorch_fp32", "PyTorch fp32", "#ea580c"),
    ("pytorch_fp16", "PyTorch fp16", "#fdba74"),
)

#: Bar colours of the WebGPU builds in turn (robustness on, off); the first is `SERIES`'s.
WEBGPU_COLORS: tuple[tuple[str, str], ...] = (
    ("#2563eb", "#93c5fd"),
    ("#059669", "#6ee7b7"),
    ("#7c3aed", "#c4b5fd"),
    ("#db2777", "#f9a8d4"),
)

#: The known kernel paths of a build (``kernel_path`` in ``wsd-web bench`` results), and
#: the one a result without the field is taken to have, by precision.
KERNEL_PATHS = ("subgroup-matrix", "shader-f16", "fp32")
DEFAULT_KERNEL_PATH = {"fp32": "fp32", "fp16": "shader-f16"}

#: A generation's stages whose peak GPU bytes a WebGPU result holds (``stagePeakBytes``),
#: as the record's ``stage_peak_bytes`` names them, and their labels.
PEAK_STAGES: tuple[tuple[str, str, str], ...] = (
    ("textEncoder", "text_encoder", "text encoder"),
    ("denoise", "denoise", "denoise"),
    ("decode", "decode", "VAE decode"),
)

#: The kernels shown in the kernel table and chart.
TOP_KERNELS = 15

KIND_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL"}
MISSING = "—"
_SETTINGS = ("kind", "height", "width", "steps", "batch")
_PRECISIONS = ("fp32", "fp16")


class BenchReportError(ValueError):
    """Benchmark results that cannot be combined or rendered, and why."""


# -- checking and combining ---------------------------------------------------------------


def combine(
    webgpu: list[dict[str, Any]],
    pytorch: list[dict[str, Any]],
    *,
    command: str,
    machine: str,
) -> dict[str, Any]:
    """One result document from ``wsd-web bench`` and ``wsd_capture.bench`` results.

    ``webgpu`` holds the results of one or more builds: per build (told apart by
    precision and kernel path) the result with robustness on (what a browser
    runs) and maybe the one with robustness off; ``pytorch`` holds fp32 and/or
    fp16. All must agree on kind, size, steps and batch, and the WebGPU ones on
    the adapter. Raises `BenchReportError` (a `ValueError`) naming the input
    (``webgpu[1]``, ``pytorch[0]``) that is wrong.
    """
    return combine_labelled(
        [(f"webgpu[{i}]", r) for i, r in enumerate(webgpu)],
        [(f"pytorch[{i}]", r) for i, r in enumerate(pytorch)],
        command=command,
        machine=machine,
    )


def kernel_path(result: dict[str, Any]) -> str:
    """A checked WebGPU result's kernel path: its ``kernel_path``, else the ``kernelPath``
    the runner (``node/bench.mjs``) reports it ran, else its precision's."""
    for key in ("kernel_path", "kernelPath"):
        path = result.get(key)
        if isinstance(path, str):
            return path
    return DEFAULT_KERNEL_PATH[result["precision"]]


def combine_labelled(
    webgpu: Sequence[tuple[str, Any]],
    pytorch: Sequence[tuple[str, Any]],
    *,
    command: str,
    machine: str,
) -> dict[str, Any]:
    web = [(label, _check_result(label, r, "webgpu")) for label, r in webgpu]
    torch = [(label, _check_result(label, r, "pytorch")) for label, r in pytorch]
    if not web:
        raise BenchReportError("no WebGPU results: give wsd-web bench results")
    _check_agree([*web, *torch], _SETTINGS)
    _check_agree(web, ("adapter",), why="benchmark every build on the same machine")
    # One record per build: precision, kernel path and quantized weights.
    builds: dict[tuple[str, str, str], list[tuple[str, dict[str, Any]]]] = {}
    for label, result in web:
        build = (result["precision"], kernel_path(result), _quantize(result))
        builds.setdefault(build, []).append((label, result))
    fp32 = _pick(torch, "precision", "fp32", "PyTorch fp32 results")
    fp16 = _pick(torch, "precision", "fp16", "PyTorch fp16 results")
    order = sorted(builds, key=lambda b: (_PRECISIONS.index(b[0]), _QUANTIZE.index(b[2]), b[1]))
    runs = [_run(builds[build], fp32, fp16) for build in order]
    return {
        "version": VERSION,
        **{key: runs[0]["webgpu"][key] for key in _SETTINGS},
        "command": command,
        "machine": machine,
        "adapter": runs[0]["webgpu"]["adapter"],
        "date": datetime.now(timezone.utc).date().isoformat(),
        "webgpu_runs": runs,
        "pytorch_fp32": fp32,
        "pytorch_fp16": fp16,
    }


def _run(
    results: list[tuple[str, dict[str, Any]]],
    fp32: dict[str, Any] | None,
    fp16: dict[str, Any] | None,
) -> dict[str, Any]:
    """The record of one WebGPU build: its results (robustness on and off) and ratios."""
    precision, path = results[0][1]["precision"], kernel_path(results[0][1])
    weights = _quantize(results[0][1])
    quantized = "" if weights == "none" else f" {weights}"
    what = f"WebGPU {precision}{quantized} ({path} kernels) results"
    _check_agree(results, ("build_id",), why="give one build's results per precision and kernels")
    if len({bool(result.get("offload")) for _, result in results}) > 1:
        raise BenchReportError(
            f"{', '.join(label for label, _ in results)}: some ran with --offload and some "
            "without: give one offload setting's results per build"
        )
    on = _pick(results, "robustness", True, f"{what} with robustness on")
    if on is None:
        where = ", ".join(label for label, _ in results)
        raise BenchReportError(
            f"no {what.removesuffix(' results')} result with robustness on in {where}: "
            "run wsd-web bench with robustness on (the default; it is what a browser runs)"
        )
    off = _pick(results, "robustness", False, f"{what} with robustness off")
    ratios: dict[str, float] = {}
    for stage, _ in STAGES:
        for key, baseline in (("pytorch_fp32", fp32), ("pytorch_fp16", fp16)):
            ours, theirs = median(on, stage), median(baseline, stage)
            if ours is not None and theirs is not None and theirs > 0:
                ratios[f"{stage}_vs_{key}"] = ours / theirs
    return _record(precision, path, on, off, ratios)


def _record(
    precision: Any, path: Any, on: dict[str, Any], off: Any, ratios: dict[str, Any]
) -> dict[str, Any]:
    """One WebGPU record of a document: the build, its headline ratios and its results."""
    return {
        "precision": precision,
        "kernel_path": path,
        "features": on.get("features"),
        "dawn_toggles": on.get("dawn_toggles"),
        # The build's weights and the memory modes it ran in (older results lack them).
        "quantize": _quantize(on),
        "vae_tiling": on.get("vaeTiling"),
        "offload": on.get("offload"),
        "stage_peak_bytes": _snake_peaks(on.get("stagePeakBytes")),
        # The most a timed generation held; peak_gpu_bytes also counts the stage timings,
        # which run with every weight resident even when the generations offload.
        "generation_peak_gpu_bytes": generation_peak(on),
        "memory_need_bytes": on.get("memoryNeedBytes"),
        **{
            f"ratio_{stage}_vs_{key}": ratios.get(f"{stage}_vs_{key}")
            for stage in HEADLINE_STAGES
            for key, _ in BASELINES
        },
        "ratios": ratios,
        "webgpu": on,
        "webgpu_no_robustness": off,
    }


def _snake_peaks(peaks: Any) -> dict[str, Any] | None:
    """A result's ``stagePeakBytes`` as a record's ``stage_peak_bytes`` (None: not measured)."""
    if not isinstance(peaks, dict):
        return None
    return {snake: peaks.get(camel) for camel, snake, _ in PEAK_STAGES}


def _pick(
    results: Sequence[tuple[str, dict[str, Any]]], key: str, value: object, what: str
) -> dict[str, Any] | None:
    found = [(label, r) for label, r in results if r[key] == value]
    if len(found) > 1:
        raise BenchReportError(f"{found[0][0]} and {found[1][0]} are both {what}: give only one")
    return found[0][1] if found else None


def _check_agree(
    results: Sequence[tuple[str, dict[str, Any]]],
    keys: Iterable[str],
    *,
    why: str = "benchmark both with the same settings",
) -> None:
    if not results:
        return
    first_label, first = results[0]
    for key in keys:
        for label, result in results[1:]:
            if result.get(key) != first.get(key):
                raise BenchReportError(
                    f"{label}: {key} is {result.get(key)!r} but {first_label} has "
                    f"{first.get(key)!r}: {why}"
                )


def is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _brief(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_number(where: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not is_number(value) or value < 0:
        raise BenchReportError(f"{where}: expected a non-negative number, got {_brief(value)}")


def _check_stat(where: str, stat: object) -> None:
    if not isinstance(stat, dict):
        raise BenchReportError(f"{where}: expected an object with a median, got {_brief(stat)}")
    _check_number(f"{where}.median", stat.get("median"))


def _check_strings(where: str, value: object) -> None:
    """``value`` is None (not recorded) or a list of strings."""
    if value is not None and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        raise BenchReportError(f"{where}: expected a list of strings, got {_brief(value)}")


def _check_offload(where: str, result: dict[str, Any], peaks_key: str, keys: Sequence[str]) -> None:
    """``result``'s ``offload`` is None (not recorded) or a boolean, its ``peaks_key`` None
    or an object with a non-negative number (or null) under each of ``keys``."""
    offload = result.get("offload")
    if offload is not None and not isinstance(offload, bool):
        raise BenchReportError(f"{where}: offload must be true or false, got {_brief(offload)}")
    peaks = result.get(peaks_key)
    if peaks is None:
        return
    if not isinstance(peaks, dict):
        raise BenchReportError(
            f"{where}: {peaks_key} must be an object of stage peaks, got {_brief(peaks)}"
        )
    for key in keys:
        _check_number(f"{where}: {peaks_key}.{key}", peaks.get(key), optional=True)


def _check_precision(where: str, value: object) -> None:
    if value not in _PRECISIONS:
        raise BenchReportError(f"{where}: precision must be fp32 or fp16, got {_brief(value)}")


def _check_kernel_path(where: str, value: object, key: str = "kernel_path") -> None:
    if not isinstance(value, str) or not value:
        known = ", ".join(KERNEL_PATHS)
        raise BenchReportError(
            f"{where}: {key} must be a string (one of {known}), got {_brief(value)}"
        )


def _check_result(label: str, result: object, runtime: str) -> dict[str, Any]:
    """``result`` if it is a ``runtime`` benchmark result this module can render."""
    if not isinstance(result, dict):
        raise BenchReportError(f"{label}: expected a JSON object, got {_brief(result)}")
    if result.get("runtime") != runtime:
        raise BenchReportError(
            f"{label}: runtime is {_brief(result.get('runtime'))}, expected {runtime!r}"
        )
    if not isinstance(result.get("kind"), str):
        raise BenchReportError(f"{label}: kind must be a string, got {_brief(result.get('kind'))}")
    for key in _SETTINGS[1:]:
        value = result.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise BenchReportError(
                f"{label}: {key} must be a positive integer, got {_brief(value)}"
            )
    stages = result.get("stages")
    if not isinstance(stages, dict) or not any(f"{s}_ms" in stages for s, _ in STAGES):
        names = ", ".join(f"{s}_ms" for s, _ in STAGES)
        raise BenchReportError(f"{label}: stages must be an object with some of {names}")
    for stage, _ in STAGES:
        if f"{stage}_ms" in stages:
            _check_stat(f"{label}: stages.{stage}_ms", stages[f"{stage}_ms"])
    _check_number(f"{label}: peak_gpu_bytes", result.get("peak_gpu_bytes"), optional=True)
    _check_precision(label, result.get("precision"))
    if runtime == "pytorch":
        return result
    for key in ("kernel_path", "kernelPath"):
        if key in result:
            _check_kernel_path(label, result[key], key)
    for key in ("features", "dawn_toggles"):
        _check_strings(f"{label}: {key}", result.get(key))
    _check_offload(label, result, "stagePeakBytes", [key for key, _, _ in PEAK_STAGES])
    for key in ("memoryNeedBytes", "memoryBudget"):
        _check_number(f"{label}: {key}", result.get(key), optional=True)
    if not isinstance(result.get("robustness"), bool):
        raise BenchReportError(
            f"{label}: robustness must be true or false, got {_brief(result.get('robustness'))}"
        )
    if not isinstance(result.get("adapter"), str):
        raise BenchReportError(
            f"{label}: adapter must be a string, got {_brief(result.get('adapter'))}"
        )
    for key in ("load_ms", "pipeline_compile_ms"):
        _check_number(f"{label}: {key}", result.get(key), optional=True)
    if result.get("unet_step_gpu_ms") is not None:
        _check_stat(f"{label}: unet_step_gpu_ms", result["unet_step_gpu_ms"])
    for field in ("kernels", "vae_kernels", "text_encoder_kernels"):
        _check_kernels(f"{label}: {field}", result.get(field, []))
    return result


def _check_kernels(where: str, kernels: object) -> None:
    """A per-kernel profile: a list of objects with a name, calls, ms and share."""
    if not isinstance(kernels, list):
        raise BenchReportError(f"{where} must be a list, got {_brief(kernels)}")
    for i, kernel in enumerate(kernels):
        at = f"{where}[{i}]"
        if not isinstance(kernel, dict) or not isinstance(kernel.get("name"), str):
            raise BenchReportError(f"{at}: expected an object with a name, got {_brief(kernel)}")
        for key in ("calls", "ms", "share"):
            _check_number(f"{at}.{key}", kernel.get(key))


def _check_ratios(where: str, record: dict[str, Any]) -> None:
    ratios = record.get("ratios")
    if not isinstance(ratios, dict):
        raise BenchReportError(f"{where}: ratios must be an object, got {_brief(ratios)}")
    for key, value in ratios.items():
        _check_number(f"{where}: ratios.{key}", value)


def _check_run(where: str, run: object) -> list[tuple[str, dict[str, Any]]]:
    """The results of ``run`` if it is a WebGPU record that renders."""
    if not isinstance(run, dict):
        raise BenchReportError(f"{where}: expected a JSON object, got {_brief(run)}")
    _check_precision(where, run.get("precision"))
    _check_kernel_path(where, run.get("kernel_path"))
    for key in ("features", "dawn_toggles"):
        _check_strings(f"{where}: {key}", run.get(key))
    _check_offload(where, run, "stage_peak_bytes", [key for _, key, _ in PEAK_STAGES])
    _check_number(f"{where}: memory_need_bytes", run.get("memory_need_bytes"), optional=True)
    _check_ratios(where, run)
    for stage in HEADLINE_STAGES:
        for key, _ in BASELINES:
            name = f"ratio_{stage}_vs_{key}"
            _check_number(f"{where}: {name}", run.get(name), optional=True)
    results = [(f"{where}.webgpu", _check_result(f"{where}.webgpu", run.get("webgpu"), "webgpu"))]
    if run.get("webgpu_no_robustness") is not None:
        label = f"{where}.webgpu_no_robustness"
        results.append((label, _check_result(label, run["webgpu_no_robustness"], "webgpu")))
    return results


def check_document(label: str, doc: object) -> dict[str, Any]:
    """``doc`` if it is a result document (as `combine` writes it, or version 1) that renders."""
    if not isinstance(doc, dict) or doc.get("version") not in READ_VERSIONS:
        raise BenchReportError(
            f"{label}: not a version {VERSION} (or 1) benchmark result document "
            "(write one with wsd-web report --webgpu ... --pytorch ...)"
        )
    for key in ("command", "machine", "adapter", "date"):
        if not isinstance(doc.get(key), str):
            raise BenchReportError(f"{label}: {key} must be a string, got {_brief(doc.get(key))}")
    results: list[tuple[str, dict[str, Any]]] = []
    if doc["version"] == 1:
        results.append(
            (f"{label}: webgpu", _check_result(f"{label}: webgpu", doc.get("webgpu"), "webgpu"))
        )
        if doc.get("webgpu_no_robustness") is not None:
            where = f"{label}: webgpu_no_robustness"
            results.append((where, _check_result(where, doc["webgpu_no_robustness"], "webgpu")))
        _check_ratios(label, doc)
        headline = "ratio_unet_step_vs_pytorch_fp32"
        _check_number(f"{label}: {headline}", doc.get(headline), optional=True)
    else:
        runs = doc.get("webgpu_runs")
        if not isinstance(runs, list) or not runs:
            raise BenchReportError(
                f"{label}: webgpu_runs must be a non-empty list, got {_brief(runs)}"
            )
        for i, run in enumerate(runs):
            results += _check_run(f"{label}: webgpu_runs[{i}]", run)
    for key, _ in BASELINES:
        if doc.get(key) is not None:
            where = f"{label}: {key}"
            results.append((where, _check_result(where, doc[key], "pytorch")))
    _check_agree([(label, doc), *results], _SETTINGS)
    return doc


# -- reading documents, for the page and the charts ---------------------------------------


def webgpu_runs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The WebGPU records of a checked document of either version, in document order."""
    if doc.get("version", VERSION) != 1:
        runs: list[dict[str, Any]] = doc["webgpu_runs"]
        return runs
    on = doc["webgpu"]
    ratios = doc["ratios"]
    return [_record(on["precision"], kernel_path(on), on, doc.get("webgpu_no_robustness"), ratios)]


def build_name(run: dict[str, Any]) -> str:
    """A WebGPU record's build: its precision, and its weights' quantization if any
    (``fp16``, ``fp16 int8``)."""
    weights = run.get("quantize") or "none"
    return str(run["precision"]) + ("" if weights == "none" else f" {weights}")


def run_name(run: dict[str, Any]) -> str:
    """A WebGPU record's short name: its :func:`build_name`, and its kernel path where
    not the build's usual one (``fp16 (fp32 path)``: an fp16 build's fallback)."""
    name, path = build_name(run), run["kernel_path"]
    return name if path == DEFAULT_KERNEL_PATH.get(run["precision"]) else f"{name} ({path} path)"


#: The weights a result's build can have, in the order a document lists them.
_QUANTIZE = ("none", "int8", "int4")


def _quantize(result: dict[str, Any]) -> str:
    """A result's quantized weights (``none`` for a result from before the field)."""
    found = result.get("quantize", "none")
    if found not in _QUANTIZE:
        raise BenchReportError(
            f"quantize is {found!r}: expected one of {', '.join(_QUANTIZE)} "
            "(wsd-web bench writes it)"
        )
    return str(found)


def run_label(doc: dict[str, Any], run: dict[str, Any]) -> str:
    """The label of a WebGPU build: ``WebGPU`` if it is the document's only one, else
    ``WebGPU <name>`` (see `run_name`)."""
    return "WebGPU" if len(webgpu_runs(doc)) == 1 else f"WebGPU {run_name(run)}"


def median(result: dict[str, Any] | None, stage: str) -> float | None:
    if result is None:
        return None
    stat = result["stages"].get(f"{stage}_ms")
    return None if stat is None else float(stat["median"])


def present_series(doc: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The results ``doc`` holds: (key, label, colour, result), each WebGPU build (robustness
    on, then off) in turn, then PyTorch fp32 and fp16. A one-build document's keys and labels
    are `SERIES`'s; with several builds the key is ``webgpu_<i>[_no_robustness]``."""
    runs = webgpu_runs(doc)
    present: list[tuple[str, str, str, dict[str, Any]]] = []
    for i, run in enumerate(runs):
        key = "webgpu" if len(runs) == 1 else f"webgpu_{i}"
        label = run_label(doc, run)
        on, off = WEBGPU_COLORS[i % len(WEBGPU_COLORS)]
        present.append((key, label, on, run["webgpu"]))
        off_result = run.get("webgpu_no_robustness")
        if off_result:
            present.append((f"{key}_no_robustness", f"{label} (no robustness)", off, off_result))
    present += [(key, label, color, doc[key]) for key, label, color in SERIES[2:] if doc.get(key)]
    return present


def stage_label(stage: str, label: str, steps: int) -> str:
    return f"{steps}-step generation" if stage == "generation" else label


def generation_peak(result: dict[str, Any] | None) -> int | None:
    """The most GPU bytes a WebGPU result's timed generations held: the largest of its
    ``stagePeakBytes`` (None: not measured)."""
    peaks = [stage_peak(result, key) for key, _, _ in PEAK_STAGES]
    known = [p for p in peaks if p is not None]
    return int(max(known)) if known else None


def stage_peak(result: dict[str, Any] | None, stage: str) -> float | None:
    """A WebGPU result's peak GPU bytes in a generation's ``stage`` (its ``stagePeakBytes``
    key), None where not measured (PyTorch results, results from before the field)."""
    peaks = None if result is None else result.get("stagePeakBytes")
    value = peaks.get(stage) if isinstance(peaks, dict) else None
    return float(value) if is_number(value) else None


def memory_need(result: dict[str, Any] | None) -> float | None:
    """The GPU bytes a WebGPU result's build reckons its generations need
    (``memoryNeedBytes``), None where not known."""
    value = None if result is None else result.get("memoryNeedBytes")
    return float(value) if is_number(value) else None


def top_kernels(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A WebGPU result's longest kernels, at most `TOP_KERNELS`."""
    kernels: list[dict[str, Any]] = result.get("kernels") or []
    return sorted(kernels, key=lambda k: (-k["ms"], k["name"]))[:TOP_KERNELS]


def format_ms(value: float | None) -> str:
    if value is None:
        return MISSING
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
