"""What the probe tests share: running ``node/probe_kernels.mjs`` on SwiftShader,
and its seeded inputs and checksum, to compare with numpy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from wsd_web.bench.runner import swiftshader_environment

WEB = Path(__file__).parents[1] / "packages/wsd-web"


def probe_inputs(n: int, seed: int) -> np.ndarray[Any, Any]:
    """probe_kernels.mjs's ``inputs``: seeded multiples of 1/8 in [-1, 1] (a storage
    buffer's seed is 1 + its binding)."""
    state, out = seed, np.empty(n, np.float32)
    for i in range(n):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = ((state >> 16) % 17) / 8 - 1
    return out


def checksum(values: np.ndarray[Any, Any]) -> tuple[float, float]:
    """probe_kernels.mjs's checksum of ``values`` (``sum(x[i] * (1 + i % 7))``), and
    the sum of its weights (a tolerance's scale)."""
    weights = 1 + np.arange(values.size) % 7
    return float(values.reshape(-1) @ weights), float(weights.sum())


def run_probe_kernels(specs: list[dict[str, Any]], directory: Path) -> list[dict[str, Any]]:
    """Each spec timed by probe_kernels.mjs on SwiftShader (2 passes): its report rows."""
    kernels = directory / "kernels.json"
    kernels.write_text(json.dumps(specs))
    done = subprocess.run(
        ["node", "src/wsd_web/node/probe_kernels.mjs", str(kernels), "2"],
        cwd=WEB,
        env={**swiftshader_environment(), "WARM_MS": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])["kernels"]
    assert [r["name"] for r in rows] == [s["name"] for s in specs]
    return rows
