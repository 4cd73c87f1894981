"""The Markdown side of a report: the tables and ``docs/benchmarks.md``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from .results import (
    KIND_NAMES,
    MISSING,
    STAGES,
    BenchReportError,
    format_ms,
    is_number,
    median,
    present_series,
    stage_label,
    top_kernels,
)

__all__ = ["render_page", "table"]


def _gpu_median(result: dict[str, Any] | None) -> float | None:
    if result is None or result.get("unet_step_gpu_ms") is None:
        return None
    return float(result["unet_step_gpu_ms"]["median"])


def _heading(doc: dict[str, Any]) -> str:
    kind = KIND_NAMES.get(doc["kind"], doc["kind"])
    text = f"{kind}, {doc['width']}x{doc['height']}, {doc['steps']} steps"
    precision = doc["webgpu"].get("precision")
    if isinstance(precision, str) and precision != "fp32":
        text += f", WebGPU {precision}"
    return text


def _ratio(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _gib(value: float | None) -> str:
    return MISSING if value is None else f"{value / 2**30:.2f}"


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
    present = present_series(doc)
    results = [result for _, _, _, result in present]
    with_ratio = doc.get("pytorch_fp32") is not None
    header = ["Median", *(label for _, label, _, _ in present)]
    if with_ratio:
        header.append("WebGPU / PyTorch fp32")
    rows: list[list[str]] = []

    def add(label: str, cells: list[str], ratio: float | None = None) -> None:
        rows.append([label, *cells, *([_ratio(ratio)] if with_ratio else [])])

    for stage, label in STAGES:
        medians = [median(result, stage) for result in results]
        if any(m is not None for m in medians):
            ratio = doc["ratios"].get(f"{stage}_vs_pytorch_fp32")
            add(
                f"{stage_label(stage, label, doc['steps'])} (ms)",
                [format_ms(m) for m in medians],
                ratio,
            )
    gpu = [_gpu_median(result) for result in results]
    if any(m is not None for m in gpu):
        add("UNet step, GPU time (ms)", [format_ms(m) for m in gpu])
    peaks = [result.get("peak_gpu_bytes") for result in results]
    if any(p is not None for p in peaks):
        add("Peak GPU memory (GiB)", [_gib(p) for p in peaks])
    for key, label in (("pipeline_compile_ms", "Pipeline compile"), ("load_ms", "Load")):
        values = [result.get(key) if result["runtime"] == "webgpu" else None for result in results]
        if any(v is not None for v in values):
            add(f"{label} (ms)", [format_ms(v) for v in values])
    return _md_table(header, rows)


def _kernel_table(doc: dict[str, Any]) -> str:
    top = top_kernels(doc)
    rows = [
        [
            _md_code(k["name"]).replace("|", "\\|"),
            f"{k['calls']:g}",
            format_ms(k["ms"]),
            f"{100 * k['share']:.1f}%",
        ]
        for k in top
    ]
    return _md_table(["Kernel", "Calls", "ms per UNet step", "Share"], rows)


def _kernel_caption(doc: dict[str, Any]) -> str:
    total = len(doc["webgpu"].get("kernels") or [])
    shown = len(top_kernels(doc))
    which = f"The {shown} kernels" if shown == total else f"The top {shown} of {total} kernels"
    return (
        f"{which} of a UNet step by GPU time (WebGPU, robustness on; "
        "share = of the step's summed kernel time):"
    )


def table(doc: dict[str, Any]) -> str:
    """Markdown: the medians of every stage per result, and the top kernels when measured."""
    parts = [_stage_table(doc)]
    if top_kernels(doc):
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
    if not (is_number(warmup) and is_number(repeats)):
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
    if top_kernels(doc):
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
