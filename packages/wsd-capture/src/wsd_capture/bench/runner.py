"""Every stage of a kind at each precision, one record per precision, and the table."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .generation import CFG_BATCH, Generation
from .models import cpu_pipeline
from .timing import Timing, measure_ms, summarize

PROG = "python -m wsd_capture.bench"
#: The stages timed, in the order they are reported.
STAGES: tuple[str, ...] = (
    "text_encoder_ms",
    "unet_step_ms",
    "scheduler_step_ms",
    "vae_decode_ms",
    "generation_ms",
)


def _time_stages(
    gen: Generation, *, warmup: int, repeats: int
) -> tuple[dict[str, Timing], int | None]:
    """Every stage's timing, and the peak GPU memory of the generation runs (None on the CPU)."""
    device = gen.device
    timed: dict[str, list[float]] = {}

    def stage(name: str, work: Callable[[], object], **kw: Any) -> None:
        _say(f"  {name}")
        timed[name] = measure_ms(work, device=device, warmup=warmup, repeats=repeats, **kw)

    cond = gen.encode()
    t, latents = gen.run_to_middle()
    sample = gen.model_input(latents, t)
    noise_pred = gen.unet(sample, t, cond)
    stage("text_encoder_ms", gen.encode)
    stage("unet_step_ms", lambda: gen.unet(sample, t, cond))
    stage(
        "scheduler_step_ms",
        lambda: gen.guided_step(noise_pred, t, latents),
        setup=gen.run_to_middle,
    )
    stage("vae_decode_ms", lambda: gen.decode(latents))
    _say("  generation_ms")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed["generation_ms"] = measure_ms(
        gen.generate,
        device=device,
        warmup=min(warmup, 1),
        repeats=min(repeats, max(3, repeats // 3)),
    )
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return {name: summarize(timed[name]) for name in STAGES}, peak


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _environment(device: torch.device) -> dict[str, Any]:
    import diffusers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": name,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cuda": torch.version.cuda,
        "tf32": {
            "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
        },
    }


def run_benchmark(
    kind: str,
    *,
    device: str | torch.device = "cuda",
    precisions: Sequence[str] = ("fp32", "fp16"),
    height: int | None = None,
    width: int | None = None,
    steps: int = 20,
    warmup: int = 3,
    repeats: int = 10,
    seed: int = 0,
    model_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Time every stage of ``kind`` at each precision: one result record per precision.

    ``height``/``width`` default to the model's native size. ``model_dir``
    loads a diffusers directory of ``kind`` (``sd15`` or ``sdxl``) instead of
    building the architecture. Raises :class:`CaptureError` for a size the
    model cannot take (after building it; the command checks before) or a model
    directory that cannot be loaded.
    """
    dev = torch.device(device)
    source = Path(model_dir) if model_dir is not None else None
    results = []
    for precision in precisions:
        _say(f"{kind} {precision}: building the pipeline")
        pipe = cpu_pipeline(kind, source, seed)
        gen = Generation(
            pipe,
            device=dev,
            precision=precision,
            height=height,
            width=width,
            steps=steps,
            seed=seed,
        )
        _say(f"{kind} {precision} {gen.height}x{gen.width}: timing")
        with torch.inference_mode():
            stages, peak = _time_stages(gen, warmup=warmup, repeats=repeats)
        results.append(
            {
                "runtime": "pytorch",
                "tool": PROG,
                "kind": kind,
                "height": gen.height,
                "width": gen.width,
                "steps": steps,
                "batch": CFG_BATCH,
                "precision": precision,
                "attention": "sdpa",
                **_environment(dev),
                "scheduler": type(pipe.scheduler).__name__,
                "warmup": warmup,
                "repeats": repeats,
                "stages": stages,
                "peak_gpu_bytes": peak,
            }
        )
        del gen, pipe
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return results


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """The results as a readable table per precision (milliseconds)."""
    blocks = []
    for r in results:
        tf32 = r["tf32"]
        lines = [
            f"{r['kind']} {r['height']}x{r['width']}, {r['steps']} steps, batch {r['batch']}, "
            f"{r['precision']}, {r['attention']}, {r['scheduler']}",
            f"{r['device']}: torch {r['torch']}, CUDA {r['cuda']}, diffusers {r['diffusers']}, "
            f"TF32 matmul {tf32['matmul']}, cudnn {tf32['cudnn']}",
            f"{'stage':<18} {'median':>10} {'min':>10} {'max':>10}  runs",
        ]
        for name in STAGES:
            s = r["stages"][name]
            lines.append(
                f"{name:<18} {s['median']:>10.3f} {s['min']:>10.3f} {s['max']:>10.3f}  "
                f"{len(s['samples'])}"
            )
        peak = r["peak_gpu_bytes"]
        if peak is not None:
            lines.append(f"{'peak GPU memory':<18} {peak / 2**30:>10.2f} GiB")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
