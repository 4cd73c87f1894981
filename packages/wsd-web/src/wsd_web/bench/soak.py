"""``wsd-web soak``: many generations in one loaded runtime, and the GPU memory they leave.

Runs ``node/soak.mjs`` (Node + Dawn, npm ``webgpu``, with the tvmjs runtime,
model library and JS pipeline the page uses): the build is loaded once, then
``generations`` generations run one after another in that process, through the
runner's prompts in turn (an empty prompt, empty negative prompts, one past
CLIP's 77 tokens), through every scheduler the page offers for the build (or
those ``schedulers`` names, in that order) in turn, generation ``i`` with seed
``seed + i``. After each it records the GPU bytes tvmjs holds (nothing
released), the most held during the generation, its time and any error; the
first error stops the soak.

The report (one JSON object) has the build and the device as ``wsd-web bench``
reports them, ``rows`` (one per generation) and ``summary``:
``allocated_after_first``, ``allocated_after_last``, ``max_allocated_after``,
``growth_bytes`` (last - first), ``errors``, ``generations`` (finished),
``median_seconds``, ``grew`` (the generations after which more was held than
after the one before), ``growth_after_first_cycle_bytes`` (from the end of the
first cycle of schedulers to the last: what a leak adds, where a high-water
mark set once does not), and ``allocated_after_load`` / ``allocated_after_release``
(before the first generation; after the last with the VM's pooled buffers
freed). The soak passes with no error and ``growth_bytes`` within
``tolerance_bytes``: :func:`soak_failures` says why it did not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..render import SCHEDULERS
from .runner import VAE_TILES, BenchError, _environment, _memory_options, node_failure

__all__ = [
    "SOAK_SCRIPT",
    "SoakError",
    "SoakOptionError",
    "format_summary",
    "run_soak",
    "soak_failures",
]

SOAK_SCRIPT = Path(__file__).parents[1] / "node" / "soak.mjs"
#: The runner's lines on stderr: its progress, and what made a soak fail.
_PROGRESS = "soak: "


class SoakError(Exception):
    """The soak could not run; the message says why and what to do."""


class SoakOptionError(SoakError):
    """An option's value is wrong; the message says which and what it takes."""


def _check_options(
    root: Path,
    generations: int,
    steps: int,
    tolerance_bytes: int,
    seed: int,
    random_weights: int | None,
    vae_tiling: str,
    schedulers: Sequence[str] | None,
) -> None:
    for name, value, least in (
        ("generations", generations, 1),
        ("steps", steps, 1),
        ("tolerance bytes", tolerance_bytes, 0),
        ("seed", seed, 0),
        ("random weights seed", 0 if random_weights is None else random_weights, 0),
    ):
        if value < least:
            raise SoakOptionError(f"{name} must be at least {least}, not {value}")
    if vae_tiling not in VAE_TILES:
        raise SoakOptionError(f"VAE tiling {vae_tiling!r}: choose {', '.join(VAE_TILES)}")
    if schedulers is not None:
        unknown = [name for name in schedulers if name not in SCHEDULERS]
        if not schedulers or unknown:
            raise SoakOptionError(
                f"schedulers {', '.join(unknown) or '(none)'}: choose from {', '.join(SCHEDULERS)}"
            )
    if not (root / "manifest.json").is_file():
        raise SoakError(f"{root} has no manifest.json: give a directory written by wsd-compile")


def _spawn(argv: list[str], env: dict[str, str], progress: TextIO | None) -> tuple[int, str, str]:
    """Run the runner; its exit status, stdout and stderr (whose progress lines also go to
    ``progress`` as they come)."""
    kept: list[str] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        # An argv list (no shell): node on PATH, our own script, the build and JSON options.
        with subprocess.Popen(  # nosec B603
            argv, stdout=out, stderr=subprocess.PIPE, text=True, env=env
        ) as proc:
            for line in proc.stderr or ():
                if line.startswith(_PROGRESS) and progress is not None:
                    progress.write(line)
                    progress.flush()
                kept.append(line)
        out.seek(0)
        return proc.returncode, out.read(), "".join(kept)


def _report(status: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The runner's report (the last line of stdout: Dawn prints shader warnings there too),
    or a :class:`SoakError` with the runner's reason."""
    printed = [line for line in stdout.splitlines() if line.strip()]
    if printed:
        try:
            report = json.loads(printed[-1])
        except json.JSONDecodeError:
            report = None
        if isinstance(report, dict) and report.get("tool") == "wsd-web soak":
            return report
    lines = [line for line in stderr.splitlines() if not line.startswith(("usage:", _PROGRESS))]
    raise SoakError(node_failure("\n".join(lines), "soak failed:", status))


def run_soak(
    build: str | os.PathLike[str],
    *,
    generations: int = 100,
    steps: int = 20,
    tolerance_bytes: int = 0,
    seed: int = 0,
    schedulers: Sequence[str] | None = None,
    random_weights: int | None = None,
    swiftshader: bool = False,
    kernel_path: str | None = None,
    vae_tiling: str = "auto",
    offload: bool | None = None,
    memory_budget: float | None = None,
    progress: TextIO | None = None,
) -> dict[str, Any]:
    """Soak the build in ``build``: ``generations`` generations of ``steps`` steps in one runner.

    ``schedulers``: the schedulers to cycle through, in order (default: every one the page
    offers for the build). ``random_weights``, ``kernel_path``, ``vae_tiling``, ``offload``
    and ``memory_budget`` as :func:`~wsd_web.bench.runner.run_bench` takes them.
    ``progress``: where the runner's line per generation goes (``sys.stderr``, say; None:
    nowhere).
    Returns the report, passed or not (:func:`soak_failures` says); raises
    :class:`SoakError` when the soak could not run (:class:`SoakOptionError`: a wrong value).
    """
    root = Path(build)
    _check_options(
        root, generations, steps, tolerance_bytes, seed, random_weights, vae_tiling, schedulers
    )
    try:
        memory = _memory_options(offload, memory_budget)
    except BenchError as e:
        raise SoakOptionError(str(e)) from e
    node = shutil.which("node")
    if node is None:
        raise SoakError("node is not on PATH: install Node 20 (scripts/setup.sh does)")
    options: dict[str, Any] = {
        "generations": generations,
        "steps": steps,
        "toleranceBytes": tolerance_bytes,
        "seed": seed,
        "schedulers": list(schedulers) if schedulers is not None else None,
        "randomWeights": random_weights,
        "kernelPath": kernel_path,
        "vaeTiling": vae_tiling,
        **memory,
    }
    try:
        env = _environment(swiftshader)
    except BenchError as e:
        raise SoakError(str(e)) from e
    status, stdout, stderr = _spawn(
        [node, str(SOAK_SCRIPT), str(root), json.dumps(options)], env, progress
    )
    return _report(status, stdout, stderr)


def soak_failures(report: dict[str, Any]) -> list[str]:
    """Why the soak failed, one line each (empty: it passed)."""
    summary = report["summary"]
    lines = [
        f"generation {e['index']} ({e['scheduler']}) failed: {e['error']}"
        for e in summary["errors"]
    ]
    growth = summary["growth_bytes"]
    if growth is not None and growth > summary["tolerance_bytes"]:
        where = ", ".join(
            f"generation {g['index']} ({g['scheduler']}) +{g['bytes']:,}" for g in summary["grew"]
        )
        cycle = summary.get("growth_after_first_cycle_bytes")
        after_cycle = "" if cycle is None else f"; after the first cycle of schedulers {cycle:+,}"
        lines.append(
            f"GPU memory held after a generation grew by {growth:,} bytes from the first to the "
            f"last (tolerance {summary['tolerance_bytes']:,}): after {where}{after_cycle}"
        )
    elif growth is None and not summary["errors"]:
        lines.append("no generation finished")
    return lines


def _bytes(value: int | None) -> str:
    return "-" if value is None else f"{value:,} bytes ({value / 2**20:,.1f} MiB)"


def format_summary(report: dict[str, Any]) -> str:
    """A few lines a person reads: what ran, the memory held after the first and the last
    generation, the growth, the median time and the errors."""
    s = report["summary"]
    median = s["median_seconds"]
    errors = "; ".join(f"generation {e['index']}: {e['error']}" for e in s["errors"]) or "none"
    return "\n".join(
        [
            f"soak of {report['model']} ({report['kind']} {report['height']}x{report['width']} "
            f"{report['precision']}, kernel path {report['kernelPath']}) on {report['adapter']}",
            f"  generations            {s['generations']} of {report['generations_requested']}, "
            f"{report['steps']} steps, schedulers {', '.join(report['schedulers'])}",
            f"  allocated after first  {_bytes(s['allocated_after_first'])}",
            f"  allocated after last   {_bytes(s['allocated_after_last'])}",
            f"  max allocated after    {_bytes(s['max_allocated_after'])}",
            f"  growth                 {_growth(s['growth_bytes'])} "
            f"(tolerance {s['tolerance_bytes']:,})",
            f"  median                 {'-' if median is None else f'{median:.2f}'} s/generation",
            f"  errors                 {errors}",
            f"  {'FAILED' if soak_failures(report) else 'passed'}",
        ]
    )


def _growth(value: int | None) -> str:
    return "-" if value is None else f"{value:+,} bytes"
