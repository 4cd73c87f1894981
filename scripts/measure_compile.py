#!/usr/bin/env python
"""Measure a compile of a full-size Stable Diffusion 1.5 or SDXL pipeline for WebGPU.

Not a test and not part of CI: a measurement to run by hand. Nothing is
downloaded. SD 1.5 measured on 2 shared cores (2026-11-21): writing the model
takes ~20 s, the compile ~65-100 s; the compiling process peaks at ~10 GiB RSS
(fp16); disk: 4.3 GB for the model directory plus 2.2 GB (fp16) or 4.1 GB
(fp32) of output. SDXL (``--kind sdxl``, 1024x1024): see docs/sdxl.md; its
fp32 model directory is ~14 GB; writing it peaks at 13.3 GiB RSS, the compile at
8.6 GiB (fp16; weights stream through the build, ``wsd_compile.weight_stream``).

What it does (``--kind sd15``; ``--kind sdxl`` does the same with SDXL base's
published configs: the 2.6 B-parameter UNet, CLIP ViT-L and OpenCLIP
bigG text encoders, the SDXL VAE, Euler):

1. Builds SD 1.5's real architecture from its published configs
   (runwayml/stable-diffusion-v1-5, literal dicts in ``wsd_capture.architectures``)
   with seeded random weights: the 860 M-parameter UNet, the CLIP ViT-L/14 text
   encoder (vocabulary 49408, so the embedding table has its real size) and
   the VAE, plus PNDM with SD 1.5's scheduler settings. The tokenizer is the
   project's tiny CLIP BPE tokenizer (``build_tiny_clip_tokenizer``, about a
   thousand tokens, so its ids all fall inside the 49408-row table); the real
   CLIP tokenizer.json is about 2 MB larger. The pipeline is saved with
   ``save_pretrained`` (no safety checker) as a diffusers directory.
2. Runs ``wsd_compile.compile_sd15(model_dir, out_dir=..., precision=...)``
   at the native 512x512.
3. Reports the time of each compile phase (``CompiledPipeline.seconds``);
   peak RSS: ``ru_maxrss`` of the compiling process, and per phase its RSS
   and its children's (emcc and the tools it runs) sampled from /proc (the
   children's ``ru_maxrss`` is reported too, but it is not theirs: Linux
   charges a vfork+exec child its parent's high-water RSS); the ``.wasm``
   size (bytes and gzip -9 bytes); the weight bytes and number of shards;
   the manifest's functions; the largest buffers (weights, and tensors the
   functions compute at graph level) against WebGPU's binding limits (128 MiB
   by default, 1 GiB and more on request); and whether
   ``wsd_artifacts.verify`` (what ``wsd-artifacts verify`` runs) accepts the
   output.

Model writing and compiling each run in a child process of this script, so
each gets its own peak RSS (``os.wait4``); the machine's load average and
lowest available memory during the run are reported too, since the cores
may be shared.

usage: measure_compile.py [--kind {sd15,sdxl}] [--out DIR] [--precision {fp16,fp32}]
                          [--quantize {none,int8,int4}]
                          [--keep] [--model-dir DIR] [--json FILE] [--seed N]

  --kind K         sd15 (default) or sdxl
  --out DIR        where the compiled pipeline goes (must not hold files);
                   default: a fresh directory under /tmp
  --precision P    fp16 (default) or fp32
  --quantize Q     none (default), int8 or int4 weights (wsd-compile --quantize)
  --keep           keep the compiled output (and a generated model directory);
                   by default both are deleted after measuring
  --model-dir DIR  the diffusers directory to compile: reused if it already
                   holds a pipeline (never deleted), else written there and kept
  --json FILE      also write the JSON summary to FILE

Example (in the background, from the repository root):

  nohup .venv/bin/python scripts/measure_compile.py --kind sd15 --precision fp16 \\
      --model-dir /tmp/sd15-random --json /tmp/sd15-fp16.json > /tmp/sd15-fp16.log 2>&1 &

Exit status: 0 when the compile succeeded and the output verifies, 1 when
it failed (the summary says where), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("sd15", "sdxl")
# The components whose parameters are counted, by kind.
_PARTS = {
    "sd15": ("unet", "text_encoder", "vae"),
    "sdxl": ("unet", "text_encoder", "text_encoder_2", "vae"),
}
PRECISIONS = ("fp16", "fp32")
QUANTIZE_CHOICES = ("none", "int8", "int4")  # wsd_compile.quantize.QUANTIZE_CHOICES
MIB = 1024 * 1024
_WORKER_WRITE = "write-model"
_WORKER_COMPILE = "compile"


def _now() -> str:
    return time.strftime("%H:%M:%S")


def _say(message: str) -> None:
    print(f"[{_now()}] {message}", file=sys.stderr, flush=True)


def _read_kib(path: str, key: str) -> int | None:
    """A ``key: N kB`` value of a /proc status-like file, in KiB (None if absent)."""
    try:
        with Path(path).open() as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- sampling


def _descendants_rss_kib(root: int) -> int:
    """Total RSS of all live descendants of process ``root`` (from /proc), in KiB."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    family: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - family
        family |= frontier
    return sum(_read_kib(f"/proc/{pid}/status", "VmRSS") or 0 for pid in family)


@dataclass
class Sampler:
    """Samples RSS (per named phase) and the machine's load in a thread.

    ``rss_peak_kib`` is this process's RSS, ``children_rss_peak_kib`` the total
    RSS of its descendants at one instant (emcc, clang, wasm-ld, node), both as
    the highest value seen per phase; short spikes between samples are missed.
    """

    interval: float = 0.5
    phase: str = "start"
    rss_peak_kib: dict[str, int] = field(default_factory=dict)
    children_rss_peak_kib: dict[str, int] = field(default_factory=dict)
    min_mem_available_kib: int | None = None
    max_load1: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        phase = self.phase
        rss = _read_kib("/proc/self/status", "VmRSS")
        if rss is not None:
            self.rss_peak_kib[phase] = max(self.rss_peak_kib.get(phase, 0), rss)
        children = _descendants_rss_kib(os.getpid())
        self.children_rss_peak_kib[phase] = max(self.children_rss_peak_kib.get(phase, 0), children)
        avail = _read_kib("/proc/meminfo", "MemAvailable")
        if avail is not None:
            low = self.min_mem_available_kib
            self.min_mem_available_kib = avail if low is None else min(low, avail)
        self.max_load1 = max(self.max_load1, os.getloadavg()[0])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def _maxrss_mib(who: int) -> float:
    """``ru_maxrss`` (KiB on Linux) of this process or of its largest waited-for child, in MiB."""
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)


def _mib(values: dict[str, int]) -> dict[str, float]:
    return {k: round(v / 1024, 1) for k, v in values.items()}


# ---------------------------------------------------------------- the model


def _count(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def write_model(model_dir: Path, seed: int, kind: str = "sd15") -> dict[str, Any]:
    """Write SD 1.5's (or SDXL's) architecture with seeded random weights as a diffusers
    directory."""
    from wsd_capture.architectures import build_random_pipeline

    start = time.perf_counter()
    pipe = build_random_pipeline(kind, seed)
    built = time.perf_counter() - start
    params = {name: _count(getattr(pipe, name)) for name in _PARTS[kind]}
    return _save(pipe, params, model_dir, built, len(pipe.tokenizer))


def _save(
    pipe: Any, params: dict[str, int], model_dir: Path, built: float, vocab: int
) -> dict[str, Any]:
    _say(f"built {type(pipe).__name__} with random weights in {built:.1f} s: {params}")
    start = time.perf_counter()
    partial = model_dir.with_name(f".{model_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    pipe.save_pretrained(partial, safe_serialization=True)
    partial.rename(model_dir)
    saved = time.perf_counter() - start
    _say(f"saved {model_dir} in {saved:.1f} s")
    return {
        "parameters": params,
        "tokenizer_vocab": vocab,
        "seconds": {"build": round(built, 3), "save": round(saved, 3)},
    }


# ---------------------------------------------------------------- the compile


def compile_model(
    model_dir: Path, out_dir: Path, precision: str, kind: str = "sd15", quantize: str = "none"
) -> dict[str, Any]:
    """Run ``compile_sd15`` (or ``compile_sdxl``) here and report its times and memory."""
    from wsd_compile import compile_sd15, compile_sdxl

    compile_fn = compile_sdxl if kind == "sdxl" else compile_sd15
    result: dict[str, Any] = {"ok": False}
    with Sampler() as sampler:

        def log(line: str) -> None:
            _say(f"{compile_fn.__name__}: {line}")
            if line.endswith("..."):
                sampler.phase = line.removesuffix("...")

        try:
            compiled = compile_fn(
                model_dir, out_dir=out_dir, precision=precision, quantize=quantize, log=log
            )
        except BaseException as e:
            result.update(
                failed_phase=sampler.phase,
                error_type=f"{type(e).__module__}.{type(e).__qualname__}",
                error=str(e),
                traceback=traceback.format_exc(),
            )
        else:
            result.update(
                ok=True,
                seconds=compiled.seconds,
                wasm_bytes=compiled.wasm_bytes,
                weight_bytes=compiled.weight_bytes,
                largest_buffers=[
                    {"tensor": b.describe(), "bytes": b.nbytes} for b in compiled.largest_buffers
                ],
                max_buffer_bytes=compiled.manifest["limits"]["max_buffer_bytes"],
            )
    # Linux's RUSAGE_CHILDREN ru_maxrss is no measure of emcc: a child started
    # with vfork+exec (as subprocess does) is charged the parent's high-water
    # RSS at exec, so it reads as this process's own peak. The sampled
    # descendants' RSS is what the link tools really used.
    result["peak_rss_mib"] = {
        "self": _maxrss_mib(resource.RUSAGE_SELF),
        "ru_maxrss_children": _maxrss_mib(resource.RUSAGE_CHILDREN),
        "children_sampled": round(max(sampler.children_rss_peak_kib.values()) / 1024, 1),
        "sampled_by_phase": _mib(sampler.rss_peak_kib),
        "children_sampled_by_phase": _mib(sampler.children_rss_peak_kib),
    }
    return result


# ---------------------------------------------------------------- orchestration


@dataclass(frozen=True)
class ChildRun:
    """A worker child's exit code, wall time, peak RSS and JSON result."""

    returncode: int
    seconds: float
    maxrss_mib: float
    result: dict[str, Any]


def _run_worker(args: Sequence[str], result_file: Path) -> ChildRun:
    """Run this script as a worker child; its peak RSS comes from ``os.wait4``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    cmd += ["--result", str(result_file)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        result = {"ok": False, "error": f"the worker exited with {proc.returncode}, no result"}
    return ChildRun(proc.returncode, round(seconds, 1), round(usage.ru_maxrss / 1024, 1), result)


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _has_model(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def measure_output(out_dir: Path) -> dict[str, Any]:
    """Sizes, shards, functions and ``verify`` of a compiled output directory."""
    from wsd_artifacts import load_manifest, load_tensor_cache_index, verify

    manifest = load_manifest(out_dir)
    wasm = out_dir / manifest["library"]
    data = wasm.read_bytes()
    weights = Path(manifest["weights"])
    cache = load_tensor_cache_index(out_dir / weights.parent)
    report = verify(out_dir)
    return {
        "wasm_bytes": len(data),
        "wasm_gzip9_bytes": len(gzip.compress(data, compresslevel=9)),
        "weight_bytes": cache.total_bytes,
        "shards": len(cache.shards),
        "largest_shard_bytes": max((s.nbytes for s in cache.shards), default=0),
        "tensors": len(cache.records),
        "output_bytes": _tree_bytes(out_dir),
        "files": len(manifest["files"]),
        "components": {
            name: {"param_count": c["param_count"], "param_bytes": c["param_bytes"]}
            for name, c in manifest["components"].items()
        },
        "functions": {
            name: {
                "inputs": [f"{t['name']}:{t['dtype']}{t['shape']}" for t in info["inputs"]],
                "outputs": [f"{t['name']}:{t['dtype']}{t['shape']}" for t in info["outputs"]],
                "params": info["params"],
            }
            for name, info in manifest["functions"].items()
        },
        "largest_weight": max(
            ({"name": r.name, "shape": list(r.shape), "bytes": r.nbytes} for r in cache.records),
            key=lambda r: r["bytes"],
            default=None,
        ),
        "weights_over_128MiB": sum(r.nbytes > 128 * MIB for r in cache.records),
        "weights_over_1GiB": sum(r.nbytes > 1024 * MIB for r in cache.records),
        "verify": {"ok": report.ok, "checked": report.checked, "problems": report.problems()},
    }


def _machine(sampler: Sampler, load_start: Sequence[float]) -> dict[str, Any]:
    total = _read_kib("/proc/meminfo", "MemTotal") or 0
    low = sampler.min_mem_available_kib
    return {
        "cpus": os.cpu_count(),
        "mem_total_mib": round(total / 1024),
        "min_mem_available_mib": None if low is None else round(low / 1024),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "max_load1": round(sampler.max_load1, 2),
    }


def _table(summary: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    comp = summary["compile"]
    model = summary.get("model", {})
    if "child_seconds" in model:
        rows.append(
            (
                "model write (s) / peak RSS (MiB)",
                f"{model['child_seconds']} / {model['child_peak_rss_mib']}",
            )
        )
    for phase, seconds in comp.get("seconds", {}).items():
        rows.append((f"compile {phase} (s)", f"{seconds:.1f}"))
    rows.append(("compile wall incl. imports (s)", str(comp.get("child_seconds"))))
    rss = comp.get("peak_rss_mib", {})
    rows.append(("peak RSS compile process (MiB)", str(comp.get("child_peak_rss_mib"))))
    rows.append(("peak RSS children: emcc etc., sampled (MiB)", str(rss.get("children_sampled"))))
    children = rss.get("children_sampled_by_phase", {})
    for phase, mib in rss.get("sampled_by_phase", {}).items():
        rows.append(
            (f"  sampled RSS in {phase}: self / children (MiB)", f"{mib} / {children.get(phase)}")
        )
    out = summary.get("output")
    if out:
        rows += [
            ("model.wasm (bytes)", f"{out['wasm_bytes']:,}"),
            ("model.wasm gzip -9 (bytes)", f"{out['wasm_gzip9_bytes']:,}"),
            ("weights (bytes)", f"{out['weight_bytes']:,}"),
            ("weight shards", str(out["shards"])),
            ("functions", ", ".join(out["functions"])),
            ("largest weight", json.dumps(out["largest_weight"])),
            (
                "weights > 128 MiB / > 1 GiB",
                f"{out['weights_over_128MiB']} / {out['weights_over_1GiB']}",
            ),
        ]
        rows += [
            (f"buffer {i + 1} (graph level)", b["tensor"])
            for i, b in enumerate(comp.get("largest_buffers", [])[:5])
        ]
        rows += [
            ("wsd-artifacts verify", "ok" if out["verify"]["ok"] else "FAILED"),
        ]
    elif "failed_phase" in comp:
        rows.append(("compile", f"FAILED in {comp['failed_phase']}: {comp.get('error')}"))
    if "error" in summary:
        rows.append(("error", summary["error"]))
    m = summary["machine"]
    rows.append(
        (
            "machine",
            f"{m['cpus']} CPUs, {m['mem_total_mib']} MiB, max load1 "
            f"{m['max_load1']}, min MemAvailable {m['min_mem_available_mib']} MiB",
        )
    )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    _say(f"removed {path}")


def measure(args: argparse.Namespace) -> int:
    """Write the model (unless reused), compile it in a child, measure, clean up."""
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix=f"wsd-measure-{args.kind}-"))
    model_dir = Path(args.model_dir) if args.model_dir else work / "model"
    out_dir = Path(args.out) if args.out else work / f"{args.kind}-{args.precision}"
    generated = False
    summary: dict[str, Any] = {
        "kind": args.kind,
        "precision": args.precision,
        "quantize": args.quantize,
        "model_dir": str(model_dir),
        "out_dir": str(out_dir),
    }
    status = 1
    with Sampler(interval=1.0) as sampler:
        try:
            if _has_model(model_dir):
                _say(f"reusing the model in {model_dir}")
                summary["model"] = {"reused": True}
            else:
                _say(f"writing {args.kind} with random weights to {model_dir}")
                model_dir.parent.mkdir(parents=True, exist_ok=True)
                run = _run_worker(
                    [_WORKER_WRITE, str(model_dir), "--seed", str(args.seed), "--kind", args.kind],
                    work / "write.json",
                )
                generated = run.returncode == 0 and _has_model(model_dir)
                summary["model"] = {
                    **run.result,
                    "child_seconds": run.seconds,
                    "child_peak_rss_mib": run.maxrss_mib,
                }
                if not generated:
                    raise RuntimeError(f"writing the model failed (exit {run.returncode})")
            summary["model"]["bytes_on_disk"] = _tree_bytes(model_dir)

            _say(f"compiling ({args.precision}) into {out_dir}")
            run = _run_worker(
                [
                    _WORKER_COMPILE,
                    str(model_dir),
                    str(out_dir),
                    "--precision",
                    args.precision,
                    "--kind",
                    args.kind,
                    "--quantize",
                    args.quantize,
                ],
                work / "compile.json",
            )
            summary["compile"] = {
                **run.result,
                "child_seconds": run.seconds,
                "child_peak_rss_mib": run.maxrss_mib,
                "exit": run.returncode,
            }
            if run.returncode == 0 and run.result.get("ok"):
                summary["output"] = measure_output(out_dir)
                status = 0 if summary["output"]["verify"]["ok"] else 1
        except Exception as e:
            summary.setdefault("compile", {"ok": False})
            summary["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            if not args.keep:
                if out_dir.exists():
                    _remove(out_dir)
                if generated and not args.model_dir:
                    _remove(model_dir)
            for name in ("write.json", "compile.json"):
                (work / name).unlink(missing_ok=True)
            if not any(work.iterdir()):
                work.rmdir()
    summary["machine"] = _machine(sampler, load_start)
    summary["orchestrator_peak_rss_mib"] = _maxrss_mib(resource.RUSAGE_SELF)
    text = json.dumps(summary, indent=1)
    print(text)
    print(_table(summary))
    if args.json:
        Path(args.json).write_text(text + "\n")
    return status


def _worker(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="measure_compile.py --worker")
    parser.add_argument("kind", choices=[_WORKER_WRITE, _WORKER_COMPILE])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", dest="model_kind", choices=KINDS, default="sd15")
    parser.add_argument("--quantize", choices=QUANTIZE_CHOICES, default="none")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    task: Callable[[], dict[str, Any]]
    if args.kind == _WORKER_WRITE:
        task = lambda: write_model(args.model_dir, args.seed, args.model_kind)  # noqa: E731
    else:
        if args.out_dir is None:
            parser.error("compile needs OUT_DIR")
        task = lambda: compile_model(  # noqa: E731
            args.model_dir, args.out_dir, args.precision, args.model_kind, args.quantize
        )
    result = task()
    args.result.write_text(json.dumps(result, indent=1))
    return 0 if result.get("ok", True) else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker(argv[1:])
    parser = argparse.ArgumentParser(
        description="Compile SD 1.5 or SDXL (real architecture, random weights) for WebGPU "
        "and report time, memory, sizes and the largest buffers.",
        epilog="See the module docstring (at the top of this file) for details.",
    )
    parser.add_argument("--kind", choices=KINDS, default="sd15", help="the pipeline family")
    parser.add_argument("--out", metavar="DIR", help="compiled output (default: under /tmp)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument(
        "--keep", action="store_true", help="keep the output (and a generated model)"
    )
    parser.add_argument(
        "--model-dir",
        metavar="DIR",
        help="diffusers directory: reused if it holds a pipeline, else written there and kept",
    )
    parser.add_argument(
        "--quantize", choices=QUANTIZE_CHOICES, default="none", help="weight quantization"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the JSON summary here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    return measure(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
