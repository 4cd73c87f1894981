"""Benchmark reports: the WebGPU build against diffusers on PyTorch CUDA.

``wsd-web bench`` (Node + Dawn, the browser's tvmjs runtime and ``.wasm``)
and ``python -m wsd_capture.bench`` (diffusers, eager CUDA) each write JSON
results. `combine` checks that they measured the same thing and joins them
into one result document (version 1) with the WebGPU / PyTorch ratios;
`table`, `chart_svg`, `kernels_svg` and `render_page` turn result documents
into the Markdown and SVG committed under ``docs/``; `write_report` and
`render_docs` are the file side of ``wsd-web report``. Standard library only,
so a report renders anywhere, and byte-for-byte the same from the same JSON.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeGuard

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

_KIND_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL"}
_SETTINGS = ("kind", "height", "width", "steps", "batch")
_PRECISIONS = ("fp32", "fp16")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_MISSING = "—"
_FONT = "Helvetica, Arial, sans-serif"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


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
    return _combine(
        [(f"webgpu[{i}]", r) for i, r in enumerate(webgpu)],
        [(f"pytorch[{i}]", r) for i, r in enumerate(pytorch)],
        command=command,
        machine=machine,
    )


def _combine(
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
            ours, theirs = _median(on, stage), _median(baseline, stage)
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


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _brief(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_number(where: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not _is_number(value) or value < 0:
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


def _check_document(label: str, doc: object) -> dict[str, Any]:
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


# -- reading results ----------------------------------------------------------------------


def _median(result: dict[str, Any] | None, stage: str) -> float | None:
    if result is None:
        return None
    stat = result["stages"].get(f"{stage}_ms")
    return None if stat is None else float(stat["median"])


def _gpu_median(result: dict[str, Any] | None) -> float | None:
    if result is None or result.get("unet_step_gpu_ms") is None:
        return None
    return float(result["unet_step_gpu_ms"]["median"])


def _present(doc: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The results ``doc`` holds: (key, label, colour, result), in `SERIES` order."""
    return [(key, label, color, doc[key]) for key, label, color in SERIES if doc.get(key)]


def _stage_label(stage: str, label: str, steps: int) -> str:
    return f"{steps}-step generation" if stage == "generation" else label


def _heading(doc: dict[str, Any]) -> str:
    kind = _KIND_NAMES.get(doc["kind"], doc["kind"])
    text = f"{kind}, {doc['width']}x{doc['height']}, {doc['steps']} steps"
    precision = doc["webgpu"].get("precision")
    if isinstance(precision, str) and precision != "fp32":
        text += f", WebGPU {precision}"
    return text


def _top_kernels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    kernels: list[dict[str, Any]] = doc["webgpu"].get("kernels") or []
    return sorted(kernels, key=lambda k: (-k["ms"], k["name"]))[:TOP_KERNELS]


def _ms(value: float | None) -> str:
    if value is None:
        return _MISSING
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return _MISSING
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _gib(value: float | None) -> str:
    return _MISSING if value is None else f"{value / 2**30:.2f}"


# -- Markdown -----------------------------------------------------------------------------


def _md_text(text: str) -> str:
    """``text`` as literal Markdown inline text on one line."""
    text = " ".join(text.split())
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)


def _md_code(text: str) -> str:
    """``text`` as a Markdown code span."""
    text = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_block(text: str, language: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", *["--:"] * (len(header) - 1)]) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _stage_table(doc: dict[str, Any]) -> str:
    present = _present(doc)
    results = [result for _, _, _, result in present]
    with_ratio = doc.get("pytorch_fp32") is not None
    header = ["Median", *(label for _, label, _, _ in present)]
    if with_ratio:
        header.append("WebGPU / PyTorch fp32")
    rows: list[list[str]] = []

    def add(label: str, cells: list[str], ratio: float | None = None) -> None:
        rows.append([label, *cells, *([_ratio(ratio)] if with_ratio else [])])

    for stage, label in STAGES:
        medians = [_median(result, stage) for result in results]
        if any(m is not None for m in medians):
            ratio = doc["ratios"].get(f"{stage}_vs_pytorch_fp32")
            add(
                f"{_stage_label(stage, label, doc['steps'])} (ms)", [_ms(m) for m in medians], ratio
            )
    gpu = [_gpu_median(result) for result in results]
    if any(m is not None for m in gpu):
        add("UNet step, GPU time (ms)", [_ms(m) for m in gpu])
    peaks = [result.get("peak_gpu_bytes") for result in results]
    if any(p is not None for p in peaks):
        add("Peak GPU memory (GiB)", [_gib(p) for p in peaks])
    for key, label in (("pipeline_compile_ms", "Pipeline compile"), ("load_ms", "Load")):
        values = [result.get(key) if result["runtime"] == "webgpu" else None for result in results]
        if any(v is not None for v in values):
            add(f"{label} (ms)", [_ms(v) for v in values])
    return _md_table(header, rows)


def _kernel_table(doc: dict[str, Any]) -> str:
    top = _top_kernels(doc)
    rows = [
        [
            _md_code(k["name"]).replace("|", "\\|"),
            f"{k['calls']:g}",
            _ms(k["ms"]),
            f"{100 * k['share']:.1f}%",
        ]
        for k in top
    ]
    return _md_table(["Kernel", "Calls", "ms per UNet step", "Share"], rows)


def _kernel_caption(doc: dict[str, Any]) -> str:
    total = len(doc["webgpu"].get("kernels") or [])
    shown = len(_top_kernels(doc))
    which = f"The {shown} kernels" if shown == total else f"The top {shown} of {total} kernels"
    return (
        f"{which} of a UNet step by GPU time (WebGPU, robustness on; "
        "share = of the step's summed kernel time):"
    )


def table(doc: dict[str, Any]) -> str:
    """Markdown: the medians of every stage per result, and the top kernels when measured."""
    parts = [_stage_table(doc)]
    if _top_kernels(doc):
        parts += [_kernel_caption(doc), _kernel_table(doc)]
    return "\n\n".join(parts) + "\n"


def _headline(doc: dict[str, Any]) -> str | None:
    ratio = doc.get("ratio_unet_step_vs_pytorch_fp32")
    if ratio is None:
        return None
    text = (
        f"**Headline:** a UNet step on WebGPU (robustness on, as in a browser) takes "
        f"{_ratio(ratio)} the time of PyTorch fp32"
    )
    fp16 = doc["ratios"].get("unet_step_vs_pytorch_fp16")
    if fp16 is not None:
        text += f" and {_ratio(fp16)} that of PyTorch fp16"
    return text + "."


def _runs(result: dict[str, Any]) -> str:
    warmup, repeats = result.get("warmup"), result.get("repeats")
    if not (_is_number(warmup) and _is_number(repeats)):
        return ""
    return f"; median of {repeats:g} runs after {warmup:g} warm-up"


def _pytorch_setup(torch: dict[str, Any]) -> str:
    parts = [_md_text(str(torch.get("device") or "CUDA"))]
    parts += [
        f"{name} {_md_text(str(torch[key]))}"
        for key, name in (("torch", "torch"), ("diffusers", "diffusers"), ("cuda", "CUDA"))
        if torch.get(key)
    ]
    if torch.get("attention"):
        parts.append(f"attention {_md_text(str(torch['attention']))}")
    tf32 = torch.get("tf32")
    if isinstance(tf32, dict):
        parts += [
            f"TF32 {name} {'on' if tf32[key] else 'off'}"
            for key, name in (("matmul", "matmul"), ("cudnn", "cuDNN"))
            if key in tf32
        ]
    if torch.get("scheduler"):
        parts.append(_md_text(str(torch["scheduler"])))
    return ", ".join(parts)


def _about(doc: dict[str, Any]) -> str:
    """The machine, the two setups and the date, as a Markdown list."""
    web = doc["webgpu"]
    build = f", build {_md_code(str(web['model']))}" if web.get("model") else ""
    if isinstance(web.get("precision"), str):
        build += f" ({_md_text(web['precision'])})"
    lines = [
        f"- Machine: {_md_text(doc['machine'])}; measured {_md_text(doc['date'])}.",
        f"- WebGPU: {_md_code(doc['adapter'])} in Node + Dawn{build}, "
        f"batch {doc['batch']}{_runs(web)}.",
    ]
    torch = doc.get("pytorch_fp32") or doc.get("pytorch_fp16")
    if torch is not None:
        lines.append(f"- PyTorch: {_pytorch_setup(torch)}{_runs(torch)}.")
    return "\n".join(lines)


def _section(doc: dict[str, Any]) -> str:
    heading = _heading(doc)
    name = doc.get("name")
    if not isinstance(name, str):
        raise BenchReportError(f"{heading}: the document needs a name (its file stem) to link")
    parts = [f"## {heading}", _about(doc)]
    if "swiftshader" in doc["adapter"].lower():
        parts.append("> Measured on SwiftShader (the CPU): for smoke testing only.")
    parts += [
        "Command:",
        _md_block(doc["command"], "bash"),
        f"![{_md_text(heading)}: median time per stage, WebGPU and PyTorch, log scale]"
        f"(benchmarks/{name}.svg)",
        _stage_table(doc),
    ]
    headline = _headline(doc)
    if headline:
        parts.append(headline)
    if _top_kernels(doc):
        parts += [
            _kernel_caption(doc),
            f"![{_md_text(heading)}: GPU time per UNet step of the top kernels]"
            f"(benchmarks/{name}-kernels.svg)",
            _kernel_table(doc),
        ]
    return "\n\n".join(parts)


_INTRO = """\
<!-- Written by `wsd-web report` from benchmarks/*.json; edit those, then run
     `wsd-web report --render-only --out-dir docs`. -->

# Benchmarks

wsd's WebGPU build against diffusers on PyTorch CUDA, on the same GPU.

- **WebGPU**: `wsd-web bench` runs the compiled build in Node through Dawn (npm
  `webgpu`) with the same tvmjs runtime, model library (`.wasm`) and JS
  pipeline as the browser app. Robustness on (Dawn's bounds checks in every
  shader) is what a browser user gets; "WebGPU (no robustness)" is the same run
  with Dawn's `disable_robustness` toggle, which browsers do not offer, to show
  what the checks cost.
- **PyTorch**: `python -m wsd_capture.bench` runs the diffusers pipeline's
  components eagerly on CUDA with SDPA attention and PyTorch's default TF32
  settings, in fp32 and fp16.
- Every time is a median in milliseconds over the repeats after warm-up runs.
  A UNet step runs both halves of classifier-free guidance (batch 2); the
  generation is the whole run, prompt to image. "UNet step, GPU time" sums the
  GPU timestamps of the step's kernels; its gap to the UNet step is dispatch
  and synchronisation.
- Ratios are WebGPU / PyTorch: 2.00x means WebGPU takes twice as long."""

_REPRODUCE = """\
## How to reproduce

Each result above shows the exact command that produced it. The GPU machine
used here reaches no package registry, so everything travels with the work
tree and the weights are generated there from a seed:

1. On a machine with the project set up: `npm install webgpu@0.6.2` in
   `packages/wsd-web`, then `../shared/tools/gpu-carry.sh` (Node, Dawn and the
   Vulkan loader into `.carry/`) and `bash scripts/gpu_wheels.sh` (diffusers
   and what it imports, into `.carry/wheels`).
2. Compile the model (`wsd-compile sd15` or `sdxl`, fp32; the published
   architectures with random weights come from `scripts/measure_compile.py`)
   and send the build without its `shard-*.bin` files along with `.carry/`.
3. On the GPU machine: `bash scripts/bench_gpu.sh BUILD sd15 sd15-512 OUT`.
   It runs `wsd-web bench` (robustness on and off, `--random-weights 1`) and
   `python -m wsd_capture.bench` (fp32 and fp16, same size and steps), then:

```bash
wsd-web report --webgpu webgpu.json --pytorch pytorch.json \\
    --command "the commands you ran" --machine "the machine" --name sd15-512 --out-dir docs
```

This writes `docs/benchmarks/NAME.json` and its charts and rewrites this page
from every `docs/benchmarks/*.json`; after editing the JSON by hand,
`wsd-web report --render-only --out-dir docs` renders the page and charts again.

Timings on SwiftShader (Vulkan on the CPU, what `wsd-web render` and the tests
use on machines without a GPU) are for smoke testing only: they say nothing
about GPU speed and do not belong on this page."""


def render_page(docs: list[dict[str, Any]]) -> str:
    """``docs/benchmarks.md`` for result documents, each with its ``name`` (the file stem)."""
    sections = [_section(doc) for doc in docs]
    return "\n\n".join([_INTRO, *sections, _REPRODUCE]) + "\n"


# -- SVG ----------------------------------------------------------------------------------


def _xml(text: str) -> str:
    text = _XML_INVALID.sub("", text)
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        text = text.replace(raw, entity)
    return text


def _f(value: float) -> str:
    return f"{value:.1f}"


def _text(
    x: float, y: float, text: str, *, size: int = 12, anchor: str = "start", **attrs: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_xml(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{_xml(text)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, color: str) -> str:
    return f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{color}"/>'


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="{_FONT}" role="img">'
    )
    background = f'<rect width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>'
    return "\n".join([head, f"<title>{_xml(title)}</title>", background, *body, "</svg>"]) + "\n"


def _tick(exponent: int) -> str:
    return f"{10**exponent:,}" if exponent >= 0 else f"{10.0**exponent:.{-exponent}f}"


def chart_svg(doc: dict[str, Any]) -> str:
    """A horizontal grouped bar chart (log scale) of every stage's median per result."""
    present = _present(doc)
    groups = [
        (stage, _stage_label(stage, label, doc["steps"]))
        for stage, label in STAGES
        if any(_median(r, stage) is not None for *_, r in present)
    ]
    values = [v for stage, _ in groups for *_, r in present if (v := _median(r, stage)) is not None]
    positive = [v for v in values if v > 0] or [1.0]
    lo = math.floor(math.log10(min(positive)) + 1e-9)
    hi = max(math.ceil(math.log10(max(positive)) - 1e-9), lo + 1)

    width, left, right, top = 960.0, 170.0, 100.0, 104.0
    bar, gap, group_gap = 16.0, 3.0, 20.0
    plot_w = width - left - right
    group_h = len(present) * bar + (len(present) - 1) * gap
    bottom = top + len(groups) * group_h + (len(groups) - 1) * group_gap + 12
    height = bottom + 48

    def x(value: float) -> float:
        return left + (math.log10(value) - lo) / (hi - lo) * plot_w

    kind = _KIND_NAMES.get(doc["kind"], doc["kind"])
    title = (
        f"{kind}, {doc['width']}x{doc['height']}, {doc['steps']} steps, batch {doc['batch']}: "
        "median time per stage (lower is better)"
    )
    torch = doc.get("pytorch_fp32") or doc.get("pytorch_fp16")
    subtitle = f"WebGPU (Node + Dawn): {doc['adapter']}"
    if torch is not None and torch.get("device"):
        subtitle += f"  |  PyTorch CUDA: {torch['device']}"
    body = [
        _text(left, 28, title, size=16, font_weight="bold"),
        _text(left, 50, subtitle, size=12, fill="#444444"),
    ]
    legend_x = left
    for _, label, color, _ in present:
        body.append(f'<rect x="{_f(legend_x)}" y="66" width="12" height="12" fill="{color}"/>')
        body.append(_text(legend_x + 17, 76, label, size=12))
        legend_x += 17 + 7 * len(label) + 20
    for e in range(lo, hi):
        for m in range(2, 10):
            body.append(_line(x(m * 10.0**e), top - 6, x(m * 10.0**e), bottom, "#f0f0f0"))
    for e in range(lo, hi + 1):
        body.append(_line(x(10.0**e), top - 6, x(10.0**e), bottom, "#c8c8c8"))
        body.append(_text(x(10.0**e), bottom + 16, _tick(e), size=11, anchor="middle"))
    body.append(
        _text(
            left + plot_w / 2, bottom + 38, "median time (ms, log scale)", size=12, anchor="middle"
        )
    )
    y = top
    for stage, label in groups:
        body.append(_text(left - 10, y + group_h / 2 + 4, label, size=12, anchor="end"))
        for key, series_label, color, result in present:
            value = _median(result, stage)
            if value is not None and value > 0:
                end = x(value)
                body.append(
                    f'<rect x="{_f(left)}" y="{_f(y)}" width="{_f(max(end - left, 1.0))}" '
                    f'height="{_f(bar)}" fill="{color}" data-series="{key}" data-stage="{stage}">'
                    f"<title>{_xml(f'{series_label}, {label}: {_ms(value)} ms')}</title></rect>"
                )
                body.append(_text(max(end, left + 1) + 4, y + bar - 4, f"{_ms(value)} ms", size=11))
            y += bar + gap
        y += group_gap - gap
    body.append(_line(left, top - 6, left, bottom, "#444444"))
    return _svg(width, height, title, body)


def _nice_step(span: float) -> float:
    raw = span / 5
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def kernels_svg(doc: dict[str, Any]) -> str | None:
    """Bars of the top kernels' GPU time per UNet step; None when none were measured."""
    top = _top_kernels(doc)
    if not top:
        return None
    names = [k["name"] if len(k["name"]) <= 48 else k["name"][:47] + "…" for k in top]
    left = 24 + 6.7 * max(len(n) for n in names)
    plot_w, right, first = 520.0, 150.0, 84.0
    width = left + plot_w + right
    bar, gap = 16.0, 6.0
    bottom = first + len(top) * (bar + gap) + 6
    height = bottom + 48
    step = _nice_step(max(max(k["ms"] for k in top), 1e-3))
    ticks = math.ceil(max(k["ms"] for k in top) / step - 1e-9) or 1
    decimals = max(0, -math.floor(math.log10(step)))

    def x(value: float) -> float:
        return left + value / (ticks * step) * plot_w

    kind = _KIND_NAMES.get(doc["kind"], doc["kind"])
    total = len(doc["webgpu"]["kernels"])
    title = (
        f"{kind}, {doc['width']}x{doc['height']}: top {len(top)} of {total} WebGPU kernels, "
        "GPU time per UNet step"
    )
    body = [
        _text(24, 28, title, size=16, font_weight="bold"),
        _text(
            24,
            50,
            f"Adapter: {doc['adapter']} (timestamp queries, robustness on)",
            size=12,
            fill="#444444",
        ),
    ]
    for i in range(ticks + 1):
        tx = x(i * step)
        body.append(_line(tx, first - 6, tx, bottom, "#dddddd"))
        body.append(_text(tx, bottom + 16, f"{i * step:.{decimals}f}", size=11, anchor="middle"))
    body.append(_text(left + plot_w / 2, bottom + 38, "ms per UNet step", size=12, anchor="middle"))
    for i, (kernel, name) in enumerate(zip(top, names, strict=True)):
        y = first + i * (bar + gap)
        body.append(
            _text(left - 8, y + bar - 4, name, size=11, anchor="end", font_family="monospace")
        )
        end = x(kernel["ms"])
        calls = f"{kernel['calls']:g} call" + ("" if kernel["calls"] == 1 else "s")
        body.append(
            f'<rect x="{_f(left)}" y="{_f(y)}" width="{_f(max(end - left, 1.0))}" '
            f'height="{_f(bar)}" fill="{SERIES[0][2]}" data-kernel="{_xml(kernel["name"])}">'
            f"<title>{_xml(kernel['name'])}</title></rect>"
        )
        label = f"{_ms(kernel['ms'])} ms, {100 * kernel['share']:.1f}%, {calls}"
        body.append(_text(max(end, left + 1) + 4, y + bar - 4, label, size=11))
    body.append(_line(left, first - 6, left, bottom, "#444444"))
    return _svg(width, height, title, body)


# -- files --------------------------------------------------------------------------------


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


def _read_documents(bench_dir: Path, *, skip: str | None = None) -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(bench_dir.glob("*.json")):
        if path.stem != skip:
            docs[path.stem] = _check_document(str(path), _read_json(path))
    return docs


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        _write_atomically(path, text)
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

    The page (``OUT/benchmarks.md``) and every chart come from all of
    ``OUT/benchmarks/*.json``, sorted by name. Returns the files written;
    on bad input raises `BenchReportError` naming the file, having written nothing.
    """
    if not _NAME.fullmatch(name) or name.endswith("-kernels"):
        raise BenchReportError(
            f"name {name!r}: use letters, digits, '-' and '_' (like sd15-512), "
            "not ending in -kernels"
        )
    doc = _combine(
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
