"""``wsd-web bench``: how fast a compiled build runs on this machine's WebGPU.

Runs ``node/bench.mjs`` (Node + Dawn, npm ``webgpu``) with the tvmjs runtime,
model library and JS pipeline the page uses, once per robustness setting:
Dawn's default (bounds-checked shaders, what a browser user gets) and, unless
told otherwise, ``disable_robustness``. Each run reports the adapter; the
pipeline (shader) compile time; median, min, max and every sample of the
text encoder, one UNet step (batch 2, classifier-free guidance), one
scheduler step, the VAE decode and a whole generation; the UNet step's GPU
time from timestamp queries with a per-kernel breakdown where the adapter
has ``timestamp-query``; and the peak GPU memory the runtime allocated.
Every stage is run ``warmup`` times before ``repeats`` timed runs. The
build runs on the first of its kernel paths the device can run, or on the
one ``kernel_path`` names; each report names it (``kernelPath``). The VAE
decode stage and the generations decode as ``vae_tiling`` says (in tiles where
the device needs it, in tiles, whole); each report has the mode
(``vaeTiling``) and the tiles the image was decoded in (``vaeTiles``, 0: whole).
With ``offload`` the generations run with sequential offload (the text encoders'
and the VAE decoder's weights on the GPU only while they run, uploaded again every
generation); each report says whether (``offload``) and gives the most GPU bytes
held during each stage of a generation (``stagePeakBytes``: ``textEncoder``,
``denoise``, ``decode``, the maximum over the timed generations) beside the peak
of the whole run (``peak_gpu_bytes``). With ``memory_budget`` (GiB) a build that
cannot fit is refused before its library and weights are read, and the generations
(and the VAE decode stage) choose offload, unless given, and tiles, where
``vae_tiling`` is auto, to fit; each report has the budget (``memoryBudget``, bytes,
null: none), the mode the generations ran with (``offload``) and the bytes the build
reckons it needs (``memoryNeedBytes``).

On a machine without a GPU it runs on SwiftShader (``--swiftshader``, or
``VK_ICD_FILENAMES`` pointing at a Vulkan driver): useful to check that it
works, meaningless as a speed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .results import generation_peak

__all__ = [
    "BENCH_SCRIPT",
    "STAGES",
    "SWIFTSHADER_DIR",
    "VAE_TILES",
    "BenchError",
    "format_table",
    "run_bench",
    "swiftshader_environment",
]

BENCH_SCRIPT = Path(__file__).parents[1] / "node" / "bench.mjs"
SWIFTSHADER_DIR = Path("/usr/lib/chromium")
# An uncaught exception's first line: "Error: ...", "TypeError [ERR_X]: ...".
_THROWN = re.compile(r"^\w*Error\b[^:]*:")
#: How the VAE decodes (the runner's ``vaeTiling``): in tiles where needed, in tiles, whole.
VAE_TILES = ("auto", "on", "off")
STAGES = ("text_encoder_ms", "unet_step_ms", "scheduler_step_ms", "vae_decode_ms", "generation_ms")
_LABELS = {
    "text_encoder_ms": "text encoder",
    "unet_step_ms": "UNet step",
    "scheduler_step_ms": "scheduler step",
    "vae_decode_ms": "VAE decode",
    "generation_ms": "generation",
}


class BenchError(Exception):
    """The benchmark could not run; the message says why and what to do."""


def swiftshader_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment by default) with Vulkan pointed at
    SwiftShader, Chromium's Vulkan on the CPU: what Node + Dawn runs on where
    there is no GPU. Raises :class:`BenchError` if Debian's chromium is missing."""
    env = dict(os.environ if base is None else base)
    icd = SWIFTSHADER_DIR / "vk_swiftshader_icd.json"
    if not icd.is_file():
        raise BenchError(f"no SwiftShader Vulkan driver at {icd}: install Debian's chromium")
    env["VK_ICD_FILENAMES"] = str(icd)
    env.pop("VK_DRIVER_FILES", None)
    env["LD_LIBRARY_PATH"] = ":".join(
        p for p in (str(SWIFTSHADER_DIR), env.get("LD_LIBRARY_PATH", "")) if p
    )
    return env


def _environment(swiftshader: bool) -> dict[str, str]:
    return swiftshader_environment() if swiftshader else dict(os.environ)


def _memory_options(offload: bool | None, memory_budget: float | None) -> dict[str, Any]:
    """The runner's ``offload`` and ``memoryBudget`` (bytes): without a budget offload is
    False unless given; with one, an offload not given is left out (the budget decides)."""
    if memory_budget is None:
        return {"offload": bool(offload)}
    if not 0 < memory_budget < math.inf:
        raise BenchError(f"memory budget {memory_budget!r}: give a positive number of GiB")
    fixed = {} if offload is None else {"offload": offload}
    return {**fixed, "memoryBudget": round(memory_budget * 2**30)}


def run_bench(
    build: str | os.PathLike[str],
    *,
    steps: int = 20,
    warmup: int = 3,
    repeats: int = 10,
    robustness: Sequence[bool] = (True, False),
    random_weights: int | None = None,
    profile: bool = True,
    swiftshader: bool = False,
    kernel_path: str | None = None,
    vae_tiling: str = "auto",
    offload: bool | None = None,
    memory_budget: float | None = None,
    kept_bindings: bool = True,
    timeout_s: float = 3600,
) -> list[dict[str, Any]]:
    """Benchmark the build in ``build`` once per robustness setting.

    ``random_weights``: a seed; the weights are then generated in the
    benchmark rather than read, so ``build`` needs only its manifest,
    library, weight index and tokenizers (what a remote GPU machine gets).
    ``kernel_path``: the name of the build's kernel path to run (the runner
    fails if the device cannot run it); default: the first the device runs.
    ``vae_tiling``: ``auto`` (tiles where the device cannot bind the whole
    decoder's buffers), ``on`` (tiles; the build needs ``vae_tiling``) or ``off``.
    ``offload``: run the generations with sequential offload (the stage timings
    run with every weight on the GPU); None (not given): off, or with a
    ``memory_budget`` as the budget decides. ``memory_budget``: the GPU memory
    (GiB) the model may use. ``kept_bindings``: False dispatches with tvmjs'
    own dispatch (a bind group made at every dispatch) instead of kept
    bindings, to measure what they save (the report's ``unet_record_ms``).
    Returns one report per setting (the fields are described in
    docs/benchmarks.md); raises :class:`BenchError` with the runner's message.
    """
    root = Path(build)
    if not (root / "manifest.json").is_file():
        raise BenchError(f"{root} has no manifest.json: give a directory written by wsd-compile")
    for name, value, least in (("steps", steps, 1), ("warmup", warmup, 0), ("repeats", repeats, 1)):
        if value < least:
            raise BenchError(f"{name} must be at least {least}, not {value}")
    if vae_tiling not in VAE_TILES:
        raise BenchError(f"VAE tiling {vae_tiling!r}: choose {', '.join(VAE_TILES)}")
    memory = _memory_options(offload, memory_budget)
    node = shutil.which("node")
    if node is None:
        raise BenchError("node is not on PATH: install Node 20 (scripts/setup.sh does)")
    env = _environment(swiftshader)
    reports = []
    for robust in robustness:
        options: dict[str, Any] = {
            "steps": steps,
            "warmup": warmup,
            "repeats": repeats,
            "robustness": robust,
            "randomWeights": random_weights,
            "profile": profile,
            "vaeTiling": vae_tiling,
            "keptBindings": kept_bindings,
            **memory,
        }
        if kernel_path is not None:
            options["kernelPath"] = kernel_path
        # An argv list (no shell): node on PATH, our own script, the build and JSON options.
        result = subprocess.run(  # nosec B603
            [node, str(BENCH_SCRIPT), str(root), json.dumps(options)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(node_failure(result.stderr, "bench failed:", result.returncode))
        # The report is the last line: Dawn prints shader compiler warnings on stdout too.
        printed = [line for line in result.stdout.splitlines() if line.strip()]
        if not printed:
            raise BenchError("the bench runner printed no report")
        reports.append(json.loads(printed[-1]))
    return reports


def node_failure(stderr: str, prefix: str, status: int) -> str:
    """The one line that says why a Node runner failed: its own ``prefix`` line, else the
    first line of an uncaught exception (``Error: Cannot find module ...``; Node's last line
    is only its version), else the last line it printed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    own = next((line for line in lines if line.startswith(prefix)), None)
    if own is not None:
        return own
    thrown = next((line for line in lines if _THROWN.match(line)), None)
    if thrown is not None:
        return thrown
    lines = [line for line in lines if not line.startswith("Node.js v")]
    return lines[-1] if lines else f"node exited {status}"


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def _offload_lines(report: dict[str, Any]) -> list[str]:
    """Whether the generations offloaded, their peak GPU memory per stage, the memory budget
    and the build's reckoning of its need (reports from before these fields say nothing)."""
    lines = []
    if "offload" in report:
        how = "on (weights uploaded per generation)" if report["offload"] else "off"
        lines.append(f"  sequential offload {how}")
    peaks = report.get("stagePeakBytes")
    if peaks:
        stages = (("textEncoder", "text encoder"), ("denoise", "denoise"), ("decode", "decode"))
        each = ", ".join(f"{name} {_mib(peaks[key])}" for key, name in stages if key in peaks)
        lines.append(f"  stage peak GPU     {each}")
        most = generation_peak(report)
        if most is not None:
            held = f"{most / 2**30:.2f} GiB"
            lines.append(f"  generation peak    {held} (the most a generation held)")
    if report.get("memoryBudget") is not None:
        lines.append(f"  memory budget      {report['memoryBudget'] / 2**30:.2f} GiB")
    if report.get("memoryNeedBytes") is not None:
        lines.append(f"  reckoned GPU need  {_mib(report['memoryNeedBytes'])} (the build's own)")
    return lines


def format_table(reports: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the medians (and spread) of each report."""
    lines = []
    for report in reports:
        robust = "on" if report["robustness"] else "off (disable_robustness)"
        lines.append(
            f"{report['kind']} {report['height']}x{report['width']} {report['precision']}, "
            f"{report['steps']} steps, robustness {robust}"
        )
        lines.append(f"  adapter            {report['adapter']}")
        if report.get("kernelPath"):
            lines.append(f"  kernel path        {report['kernelPath']}")
        if report.get("vaeTiling"):
            tiles = report.get("vaeTiles") or 0
            how = f"{tiles} tiles" if tiles else "whole"
            lines.append(f"  VAE tiling         {report['vaeTiling']} ({how})")
        lines.append(f"  pipeline compile   {_ms(report['pipeline_compile_ms'])} ms")
        for stage in STAGES:
            s = report["stages"][stage]
            lines.append(
                f"  {_LABELS[stage]:<18} {_ms(s['median']):>10} ms  "
                f"(min {_ms(s['min'])}, max {_ms(s['max'])}, n={len(s['samples'])})"
            )
        gpu = report.get("unet_step_gpu_ms")
        if gpu:
            lines.append(f"  UNet step GPU time {_ms(gpu['median']):>10} ms (timestamp queries)")
        encoder = report.get("text_encoder_kernels")
        if encoder:
            ms = sum(k["ms"] for k in encoder)
            calls = sum(k["calls"] for k in encoder)
            lines.append(f"  text encoder GPU {_ms(ms):>12} ms ({calls} dispatches)")
        whole = f"{report['peak_gpu_bytes'] / 2**30:.2f} GiB"
        lines.append(f"  peak GPU memory    {whole} (the whole run)")
        lines += _offload_lines(report)
        for kernel in report.get("kernels", [])[:10]:
            lines.append(
                f"    {kernel['ms']:8.2f} ms {kernel['calls']:4d}x {kernel['share']:6.1%}  "
                f"{kernel['name']}"
            )
    return "\n".join(lines)
