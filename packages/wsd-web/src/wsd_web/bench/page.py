"""The Markdown side of a report: the tables and ``docs/benchmarks.md``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from .results import (
    BASELINES,
    KIND_NAMES,
    MISSING,
    PEAK_STAGES,
    STAGES,
    BenchReportError,
    build_name,
    format_ms,
    is_number,
    median,
    memory_need,
    present_series,
    run_label,
    run_name,
    stage_label,
    stage_peak,
    top_kernels,
    webgpu_runs,
)

__all__ = ["render_page", "table"]


def _gpu_median(result: dict[str, Any] | None) -> float | None:
    if result is None or result.get("unet_step_gpu_ms") is None:
        return None
    return float(result["unet_step_gpu_ms"]["median"])


def _heading(doc: dict[str, Any]) -> str:
    kind = KIND_NAMES.get(doc["kind"], doc["kind"])
    text = f"{kind}, {doc['width']}x{doc['height']}, {doc['steps']} steps"
    names = [run_name(run) for run in webgpu_runs(doc)]
    if names != ["fp32"]:
        text += f", WebGPU {_and(names)}"
    return text


def _title(doc: dict[str, Any]) -> str:
    """A section's heading: :func:`_heading` with the result's name and date, so that
    results of one model, size and builds stay apart."""
    return f"{_heading(doc)} \u2014 {doc['name']}, {doc['date']}"


def _newest_first(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``docs`` by date, newest first (ISO dates sort as text), then by name."""
    by_name = sorted(docs, key=lambda doc: str(doc["name"]))
    return sorted(by_name, key=lambda doc: str(doc["date"]), reverse=True)


def _gpu(doc: dict[str, Any]) -> str:
    """The machine's first field (its GPU, as the report's ``--machine`` gives it)."""
    return str(doc["machine"]).split(",")[0].strip()


def _glance(docs: Sequence[dict[str, Any]]) -> str:
    """One row per WebGPU build of every result, newest first: the UNet step, its
    ratios to PyTorch, the VAE decode's to PyTorch fp16 and the generation."""
    rows = []
    for doc in docs:
        for run in webgpu_runs(doc):
            rows.append(
                [
                    _md_code(str(doc["name"])),
                    _md_text(str(doc["date"])),
                    _md_text(_gpu(doc)),
                    _md_text(
                        f"{KIND_NAMES.get(doc['kind'], doc['kind'])} {doc['width']}x{doc['height']}"
                    ),
                    _md_text(build_name(run)),
                    _md_text(str(run["kernel_path"])),
                    format_ms(median(run["webgpu"], "unet_step")),
                    _ratio(run.get("ratio_unet_step_vs_pytorch_fp16")),
                    _ratio(run.get("ratio_unet_step_vs_pytorch_fp32")),
                    _ratio(run.get("ratio_vae_decode_vs_pytorch_fp16")),
                    format_ms(median(run["webgpu"], "generation")),
                ]
            )
    header = [
        "Result",
        "Measured",
        "GPU",
        "Model",
        "Build",
        "Kernel path",
        "UNet step (ms)",
        "/ PyTorch fp16",
        "/ PyTorch fp32",
        "VAE decode / PyTorch fp16",
        "Generation (ms)",
    ]
    intro = (
        "## At a glance\n\nEvery WebGPU build of every result below (robustness on), "
        "newest first; ratios are WebGPU / PyTorch in the same run."
    )
    return f"{intro}\n\n{_md_table(header, rows)}"


def _and(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


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
    """Every result's medians; with one WebGPU build, also its ratio to PyTorch fp32."""
    present = present_series(doc)
    results = [result for _, _, _, result in present]
    runs = webgpu_runs(doc)
    with_ratio = len(runs) == 1 and doc.get("pytorch_fp32") is not None
    header = ["Median", *(label for _, label, _, _ in present)]
    if with_ratio:
        header.append("WebGPU / PyTorch fp32")
    rows: list[list[str]] = []

    def add(label: str, cells: list[str], ratio: float | None = None) -> None:
        rows.append([label, *cells, *([_ratio(ratio)] if with_ratio else [])])

    for stage, label in STAGES:
        medians = [median(result, stage) for result in results]
        if any(m is not None for m in medians):
            ratio = runs[0]["ratios"].get(f"{stage}_vs_pytorch_fp32")
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
    for key, _, name in PEAK_STAGES:
        stage_peaks = [stage_peak(result, key) for result in results]
        if any(p is not None for p in stage_peaks):
            add(f"Peak GPU memory in a generation: {name} (GiB)", [_gib(p) for p in stage_peaks])
    needs = [memory_need(result) for result in results]
    if any(n is not None for n in needs):
        add("GPU memory the build reckons (GiB)", [_gib(n) for n in needs])
    for key, label in (("pipeline_compile_ms", "Pipeline compile"), ("load_ms", "Load")):
        values = [result.get(key) if result["runtime"] == "webgpu" else None for result in results]
        if any(v is not None for v in values):
            add(f"{label} (ms)", [format_ms(v) for v in values])
    return _md_table(header, rows)


def _ratio_table(doc: dict[str, Any]) -> str | None:
    """With several WebGPU builds: each build's ratio to each PyTorch precision, per stage."""
    runs = webgpu_runs(doc)
    if len(runs) == 1:
        return None
    columns = [
        (run, key, f"{run_label(doc, run)} / PyTorch {precision}")
        for run in runs
        for key, precision in BASELINES
        if doc.get(key) is not None
    ]
    rows = []
    for stage, label in STAGES:
        ratios = [run["ratios"].get(f"{stage}_vs_{key}") for run, key, _ in columns]
        if any(r is not None for r in ratios):
            rows.append([stage_label(stage, label, doc["steps"]), *map(_ratio, ratios)])
    if not rows:
        return None
    return _md_table(["WebGPU / PyTorch", *(title for _, _, title in columns)], rows)


def _kernel_table(result: dict[str, Any]) -> str:
    top = top_kernels(result)
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


def _which_kernels(result: dict[str, Any]) -> str:
    total = len(result.get("kernels") or [])
    shown = len(top_kernels(result))
    return f"the {shown} kernels" if shown == total else f"the top {shown} of {total} kernels"


def _kernel_caption(doc: dict[str, Any]) -> str:
    """The caption of the kernels chart (and, with one WebGPU build, of its table)."""
    if len(webgpu_runs(doc)) == 1:
        which = _which_kernels(webgpu_runs(doc)[0]["webgpu"])
        return (
            f"{which[0].upper()}{which[1:]} of a UNet step by GPU time (WebGPU, robustness on; "
            "share = of the step's summed kernel time):"
        )
    return (
        "The top kernels of a UNet step by GPU time, per WebGPU build (robustness on; "
        "share = of the step's summed kernel time):"
    )


def _kernel_tables(doc: dict[str, Any]) -> list[str]:
    """A kernel table per WebGPU build that measured its kernels; with several builds, each
    after a line naming it."""
    runs = webgpu_runs(doc)
    if len(runs) == 1:
        return [_kernel_table(runs[0]["webgpu"])]
    parts = []
    for run in runs:
        if top_kernels(run["webgpu"]):
            parts.append(
                f"{run_label(doc, run)} ({_md_text(run['kernel_path'])} kernels), "
                f"{_which_kernels(run['webgpu'])}:"
            )
            parts.append(_kernel_table(run["webgpu"]))
    return parts


def _has_kernels(doc: dict[str, Any]) -> bool:
    return any(top_kernels(run["webgpu"]) for run in webgpu_runs(doc))


def table(doc: dict[str, Any]) -> str:
    """Markdown: the medians of every stage per result, the WebGPU / PyTorch ratios of every
    WebGPU build when there are several, and the top kernels when measured."""
    parts = [_stage_table(doc)]
    ratios = _ratio_table(doc)
    if ratios:
        parts.append(ratios)
    if _has_kernels(doc):
        parts += [_kernel_caption(doc), *_kernel_tables(doc)]
    return "\n\n".join(parts) + "\n"


def _times(run: dict[str, Any]) -> str | None:
    """``3.37x the time of PyTorch fp32 and 8.42x that of PyTorch fp16`` for a UNet step."""
    fp32 = run.get("ratio_unet_step_vs_pytorch_fp32")
    fp16 = run.get("ratio_unet_step_vs_pytorch_fp16")
    if fp32 is None and fp16 is None:
        return None
    if fp32 is None:
        return f"{_ratio(fp16)} the time of PyTorch fp16"
    text = f"{_ratio(fp32)} the time of PyTorch fp32"
    if fp16 is not None:
        text += f" and {_ratio(fp16)} that of PyTorch fp16"
    return text


def _headline(doc: dict[str, Any]) -> str | None:
    runs = webgpu_runs(doc)
    lead = "**Headline:** a UNet step on WebGPU (robustness on, as in a browser) takes "
    if len(runs) == 1:
        times = _times(runs[0])
        return None if times is None else f"{lead}{times}."
    clauses = [
        f"{times} with the {_md_text(run_name(run))} build"
        for run in runs
        if (times := _times(run)) is not None
    ]
    if not clauses:
        return None
    if len(clauses) > 1:
        clauses[-1] = f"and {clauses[-1]}"
    return f"{lead}{', '.join(clauses)}."


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


def _build(result: dict[str, Any]) -> str:
    """`` `sd15-fp16` (fp16)``: a WebGPU result's build and precision."""
    build = _md_code(str(result["model"])) if result.get("model") else ""
    if isinstance(result.get("precision"), str):
        build += f" ({_md_text(result['precision'])})"
    return build.strip()


def _device(doc: dict[str, Any], run: dict[str, Any]) -> str:
    """A WebGPU build's line: its kernel path, the features its device got, Dawn's toggles."""
    parts = [f"kernel path {_md_text(run['kernel_path'])}"]
    several = len(webgpu_runs(doc)) > 1
    if several and _build(run["webgpu"]):
        parts.insert(0, f"build {_build(run['webgpu'])}")
    for key, name in (("features", "device features"), ("dawn_toggles", "Dawn toggles")):
        if run.get(key):
            parts.append(f"{name} {', '.join(_md_code(v) for v in run[key])}")
    if run.get("offload"):
        parts.append("sequential offload in the generations (`--offload`)")
    budget = run["webgpu"].get("memoryBudget")
    if is_number(budget):
        parts.append(f"GPU memory budget {_gib(budget)} GiB (`--memory-budget`)")
    return f"- {run_label(doc, run) if several else 'WebGPU build'}: {'; '.join(parts)}."


def _about(doc: dict[str, Any]) -> str:
    """The machine, the setups (every WebGPU build's) and the date, as a Markdown list."""
    runs = webgpu_runs(doc)
    web = runs[0]["webgpu"]
    build = ""
    if len(runs) == 1:
        build = f", build {_md_code(str(web['model']))}" if web.get("model") else ""
        if isinstance(web.get("precision"), str):
            build += f" ({_md_text(web['precision'])})"
    lines = [
        f"- Machine: {_md_text(doc['machine'])}; measured {_md_text(doc['date'])}.",
        f"- WebGPU: {_md_code(doc['adapter'])} in Node + Dawn{build}, "
        f"batch {doc['batch']}{_runs(web)}.",
        *(_device(doc, run) for run in runs),
    ]
    torch = doc.get("pytorch_fp32") or doc.get("pytorch_fp16")
    if torch is not None:
        lines.append(f"- PyTorch: {_pytorch_setup(torch)}{_runs(torch)}.")
    return "\n".join(lines)


def _section(doc: dict[str, Any]) -> str:
    heading = _heading(doc)
    name = doc["name"]
    parts = [f"## {_title(doc)}", _about(doc)]
    if "swiftshader" in doc["adapter"].lower():
        parts.append("> Measured on SwiftShader (the CPU): for smoke testing only.")
    parts += [
        "Command:",
        _md_block(doc["command"], "bash"),
        f"![{_md_text(heading)}: median time per stage, WebGPU and PyTorch, log scale]"
        f"(benchmarks/{name}.svg)",
        _stage_table(doc),
    ]
    ratios = _ratio_table(doc)
    if ratios:
        parts.append(ratios)
    headline = _headline(doc)
    if headline:
        parts.append(headline)
    if _has_kernels(doc):
        parts += [
            _kernel_caption(doc),
            f"![{_md_text(heading)}: GPU time per UNet step of the top kernels]"
            f"(benchmarks/{name}-kernels.svg)",
            *_kernel_tables(doc),
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
  what the checks cost. A result can hold several builds of one model (fp32
  and fp16, say), each named by its precision and its kernel path: `fp32`,
  `shader-f16` (fp16 shaders) or `subgroup-matrix` (Dawn's
  `chromium-experimental-subgroup-matrix`, tensor cores through WebGPU), with
  the adapter features its device got.
- **PyTorch**: `python -m wsd_capture.bench` runs the diffusers pipeline's
  components eagerly on CUDA with SDPA attention and PyTorch's default TF32
  settings, in fp32 and fp16.
- Every time is a median in milliseconds over the repeats after warm-up runs.
  A UNet step runs both halves of classifier-free guidance (batch 2); the
  generation is the whole run, prompt to image. "UNet step, GPU time" sums the
  GPU timestamps of the step's kernels; its gap to the UNet step is dispatch
  and synchronisation.
- Ratios are WebGPU / PyTorch: 2.00x means WebGPU takes twice as long. With
  several WebGPU builds, a table gives each build's ratios to PyTorch fp32 and
  fp16."""

_REPRODUCE = """\
## How to reproduce

Each result above shows the exact command that produced it. The GPU machine
used here reaches no package registry, so everything travels with the work
tree and the weights are generated there from a seed:

1. On a machine with the project set up: `npm install webgpu@0.6.2` in
   `packages/wsd-web`, then `../shared/tools/gpu-carry.sh` (Node, Dawn and the
   Vulkan loader into `.carry/`) and `bash scripts/gpu_wheels.sh` (diffusers
   and what it imports, into `.carry/wheels`).
2. Compile the model (`wsd-compile sd15` or `sdxl`, fp32 and/or fp16, at one
   size; the published architectures with random weights come from
   `scripts/measure_compile.py`) and send the builds without their
   `shard-*.bin` files along with `.carry/`.
3. On the GPU machine: `bash scripts/bench_gpu.sh sd15 sd15-512 OUT 20 BUILD...`
   (kind, result name, output directory, steps, then one or more builds).
   It runs `wsd-web bench` on each build (robustness on and off,
   `--random-weights 1`) and `python -m wsd_capture.bench` once (fp32 and
   fp16, same size and steps), then, with `--webgpu` once per build:

```bash
wsd-web report --webgpu webgpu-fp32.json --webgpu webgpu-fp16.json --pytorch pytorch.json \\
    --command "the commands you ran" --machine "the machine" --name sd15-512 --out-dir docs
```

This writes `docs/benchmarks/NAME.json` and its charts and rewrites this page
from every `docs/benchmarks/*.json` (other JSON files there, such as
`gpu-parity.json`, are left alone); after editing the JSON by hand,
`wsd-web report --render-only --out-dir docs` renders the page and charts again.

`NAME.json` holds the settings (kind, size, steps, batch), the command, the
machine, the adapter and the date; `webgpu_runs`, one record per WebGPU build
(fp32 first), each with its `precision`, `kernel_path`, `features`,
`dawn_toggles`, `offload` (whether the generations ran with sequential
offload), `stage_peak_bytes` (the most GPU bytes a generation's
`text_encoder`, `denoise` and `decode` held) and `memory_need_bytes` (the GPU
bytes the build reckons the generations' memory modes need; all three absent
or null in results from before them), the ratios
`ratio_unet_step_vs_pytorch_fp32` and `_fp16` (and the same for `generation`
and `vae_decode`; null where not measured), every
stage's ratios under `ratios`, and the `wsd-web bench` results with robustness
on (`webgpu`) and off (`webgpu_no_robustness`); and `pytorch_fp32` and
`pytorch_fp16`. Ratios are WebGPU's median over PyTorch's. Version 1 results
(one build, its results at the top level) still render.

Timings on SwiftShader (Vulkan on the CPU, what `wsd-web render` and the tests
use on machines without a GPU) are for smoke testing only: they say nothing
about GPU speed and do not belong on this page."""


def render_page(docs: list[dict[str, Any]]) -> str:
    """``docs/benchmarks.md`` for result documents, each with its ``name`` (the file stem)."""
    for doc in docs:
        if not isinstance(doc.get("name"), str):
            raise BenchReportError(
                f"{_heading(doc)}: the document needs a name (its file stem) to link"
            )
    ordered = _newest_first(docs)
    sections = [_section(doc) for doc in ordered]
    return "\n\n".join([_INTRO, _glance(ordered), *sections, _REPRODUCE]) + "\n"
