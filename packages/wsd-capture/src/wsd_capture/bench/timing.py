"""How a stage is timed: runs after warm-up, in milliseconds, and their summary."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import TypedDict

import torch


class Timing(TypedDict):
    """Summary of one stage's samples, in milliseconds."""

    median: float
    min: float
    max: float
    samples: list[float]


def summarize(samples_ms: Sequence[float]) -> Timing:
    """The median, min and max of ``samples_ms`` (milliseconds), and the samples themselves."""
    if not samples_ms:
        raise ValueError("no samples to summarize: time at least one run")
    samples = [float(s) for s in samples_ms]
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }


def _timing_event() -> torch.cuda.Event:
    return torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]


def measure_ms(
    work: Callable[[], object],
    *,
    device: torch.device,
    warmup: int,
    repeats: int,
    setup: Callable[[], object] | None = None,
) -> list[float]:
    """Run ``work`` ``warmup`` times untimed, then ``repeats`` times timed; its times in ms.

    ``setup`` (untimed) runs before every run, e.g. to put a stateful scheduler
    back where the timed step starts. On CUDA a run is timed with CUDA events
    after draining the queue; on the CPU with ``time.perf_counter``.
    """
    samples: list[float] = []
    for run in range(warmup + repeats):
        if setup is not None:
            setup()
        if device.type == "cuda":
            start, end = _timing_event(), _timing_event()
            stream = torch.cuda.current_stream(device)
            torch.cuda.synchronize(device)
            start.record(stream)
            work()
            end.record(stream)
            end.synchronize()
            ms = float(start.elapsed_time(end))
        else:
            began = time.perf_counter()
            work()
            ms = (time.perf_counter() - began) * 1e3
        if run >= warmup:
            samples.append(ms)
    return samples
