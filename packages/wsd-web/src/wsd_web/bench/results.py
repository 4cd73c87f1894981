"""The result document: benchmark results checked, then combined with their ratios.

`combine` checks that ``wsd-web bench`` and ``python -m wsd_capture.bench``
results measured the same thing and joins them into one result document
(version `VERSION`) with the WebGPU / PyTorch ratios; the page
(:mod:`wsd_web.bench.page`) and the charts (:mod:`wsd_web.bench.charts`) read
documents through the accessors at the end of this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeGuard

__all__ = ["SERIES", "STAGES", "TOP_KERNELS", "VERSION", "BenchReportError", "combine"]

VERSION = 1

#: The timed stages: the key in ``stages`` is ``<stage>_ms``; ratios are ``<stage>_vs_<baseline>``.
STAGES: tuple[tuple[str, str], ...] = (
    ("text_encoder", "Text encoder"),
    ("unet_step", "UNet step"),
    ("scheduler_step", "Scheduler step"),
    ("vae_decode", "VAE decode"),
    ("generation", "Generation"),
)

#: The results a document holds, in table and chart order: key, label, bar colour.
SERIES: tuple[tuple[str, str, str], ...] = (
    ("webgpu", "WebGPU", "#2563eb"),
    ("webgpu_no_robustness", "WebGPU (no robustness)", "#93c5fd"),
    ("pytorch_fp32", "PyTorch fp32", "#ea580c"),
    ("pytorch_fp16", "PyTorch fp16", "#fdba74"),
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

    ``webgpu`` needs the result with robustness on (what a browser runs) and
    may hold the one with robustness off; ``pytorch`` holds fp32 and/or fp16.
    All must agree on kind, size, steps and batch. Raises `BenchReportError`
    (a `ValueError`) naming the input (``webgpu[1]``, ``pytorch[0]``) that is wrong.
    """
    return combine_labelled(
        [(f"webgpu[{i}]", r) for i, r in enumerate(webgpu)],
        [(f"pytorch[{i}]", r) for i, r in enumerate(pytorch)],
        command=command,
        machine=machine,
    )


def combine_labelled(
    webgpu: Sequence[tuple[str, Any]],
    pytorch: Sequence[tuple[str, Any]],
    *,
    command: str,
    machine: str,
) -> dict[str, Any]:
    web = [(label, _check_result(label, r, "webgpu")) for label, r in webgpu]
    torch = [(label, _check_result(label, r, "pytorch")) for label, r in pytorch]
    _check_agree([*web, *torch], _SETTINGS)
    _check_agree(web, ("precision",))
    on = _pick(web, "robustness", True, "WebGPU results with robustness on")
    if on is None:
        where = ", ".join(label for label, _ in web) or "the inputs"
        raise BenchReportError(
            f"no WebGPU result with robustness on in {where}: run wsd-web bench with "
            "robustness on (the default; it is what a browser runs)"
        )
    off = _pick(web, "robustness", False, "WebGPU results with robustness off")
    fp32 = _pick(torch, "precision", "fp32", "PyTorch fp32 results")
    fp16 = _pick(torch, "precision", "fp16", "PyTorch fp16 results")
    ratios: dict[str, float] = {}
    for stage, _ in STAGES:
        for key, baseline in (("pytorch_fp32", fp32), ("pytorch_fp16", fp16)):
            ours, theirs = median(on, stage), median(baseline, stage)
            if ours is not None and theirs is not None and theirs > 0:
                ratios[f"{stage}_vs_{key}"] = ours / theirs
    return {
        "version": VERSION,
        **{key: on[key] for key in _SETTINGS},
        "command": command,
        "machine": machine,
        "adapter": on["adapter"],
        "date": datetime.now(timezone.utc).date().isoformat(),
        "webgpu": on,
        "webgpu_no_robustness": off,
        "pytorch_fp32": fp32,
        "pytorch_fp16": fp16,
        "ratios": ratios,
        "ratio_unet_step_vs_pytorch_fp32": ratios.get("unet_step_vs_pytorch_fp32"),
    }


def _pick(
    results: Sequence[tuple[str, dict[str, Any]]], key: str, value: object, what: str
) -> dict[str, Any] | None:
    found = [(label, r) for label, r in results if r[key] == value]
    if len(found) > 1:
        raise BenchReportError(f"{found[0][0]} and {found[1][0]} are both {what}: give only one")
    return found[0][1] if found else None


def _check_agree(results: Sequence[tuple[str, dict[str, Any]]], keys: Iterable[str]) -> None:
    if not results:
        return
    first_label, first = results[0]
    for key in keys:
        for label, result in results[1:]:
            if result.get(key) != first.get(key):
                raise BenchReportError(
                    f"{label}: {key} is {result.get(key)!r} but {first_label} has "
                    f"{first.get(key)!r}: benchmark both with the same settings"
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
    if runtime == "pytorch":
        if result.get("precision") not in _PRECISIONS:
            raise BenchReportError(
                f"{label}: precision must be fp32 or fp16, got {_brief(result.get('precision'))}"
            )
        return result
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
    kernels = result.get("kernels", [])
    if not isinstance(kernels, list):
        raise BenchReportError(f"{label}: kernels must be a list, got {_brief(kernels)}")
    for i, kernel in enumerate(kernels):
        where = f"{label}: kernels[{i}]"
        if not isinstance(kernel, dict) or not isinstance(kernel.get("name"), str):
            raise BenchReportError(f"{where}: expected an object with a name, got {_brief(kernel)}")
        for key in ("calls", "ms", "share"):
            _check_number(f"{where}.{key}", kernel.get(key))
    return result


def check_document(label: str, doc: object) -> dict[str, Any]:
    """``doc`` if it is a result document (as `combine` writes it) that renders."""
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise BenchReportError(
            f"{label}: not a version {VERSION} benchmark result document "
            "(write one with wsd-web report --webgpu ... --pytorch ...)"
        )
    for key in ("command", "machine", "adapter", "date"):
        if not isinstance(doc.get(key), str):
            raise BenchReportError(f"{label}: {key} must be a string, got {_brief(doc.get(key))}")
    results = [(f"{label}: webgpu", _check_result(f"{label}: webgpu", doc.get("webgpu"), "webgpu"))]
    for key, _, _ in SERIES[1:]:
        if doc.get(key) is not None:
            runtime = key.split("_")[0]
            results.append((f"{label}: {key}", _check_result(f"{label}: {key}", doc[key], runtime)))
    _check_agree([(label, doc), *results], _SETTINGS)
    ratios = doc.get("ratios")
    if not isinstance(ratios, dict):
        raise BenchReportError(f"{label}: ratios must be an object, got {_brief(ratios)}")
    for key, value in ratios.items():
        _check_number(f"{label}: ratios.{key}", value)
    headline = "ratio_unet_step_vs_pytorch_fp32"
    _check_number(f"{label}: {headline}", doc.get(headline), optional=True)
    return doc


# -- reading documents, for the page and the charts ---------------------------------------


def median(result: dict[str, Any] | None, stage: str) -> float | None:
    if result is None:
        return None
    stat = result["stages"].get(f"{stage}_ms")
    return None if stat is None else float(stat["median"])


def present_series(doc: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The results ``doc`` holds: (key, label, colour, result), in `SERIES` order."""
    return [(key, label, color, doc[key]) for key, label, color in SERIES if doc.get(key)]


def stage_label(stage: str, label: str, steps: int) -> str:
    return f"{steps}-step generation" if stage == "generation" else label


def top_kernels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    kernels: list[dict[str, Any]] = doc["webgpu"].get("kernels") or []
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
