#!/usr/bin/env python
"""Arithmetic throughput of WGSL's float types on a GPU, through Dawn: how many
fused multiply-adds a second ``f32``, ``vec4<f32>``, ``f16``, ``vec2<f16>`` and
``vec4<f16>`` give (written here as WGSL, timed one by one by
``packages/wsd-web/src/wsd_web/node/probe_kernels.mjs``). The question it
answers: whether half precision arithmetic (packed two to a register, as
NVIDIA's ``HFMA2``) runs faster than ``f32`` from WebGPU, which decides whether
the shader-f16 kernel path should compute in ``f16``. Not a test, not part of
CI; a measurement of the GPU and Dawn, not a kernel of any build.

usage:
  probe_fma.py [--iterations N] [--workgroups N] [--type T]... OUT.json
  # on the GPU machine (after `source scripts/gpu_env.sh`):
  node packages/wsd-web/src/wsd_web/node/probe_kernels.mjs OUT.json [REPEATS]

Each thread runs ``CHAINS`` independent chains ``a = fma(a, b, c)`` (enough to
hide the FMA latency), ``--iterations`` steps each, then writes the sum of its
chains' lanes. ``|b| <= 1/2`` keeps every chain bounded, so ``f16`` neither
overflows nor flushes. The FMAs of a kernel are
``workgroups * 256 * iterations * CHAINS * lanes``: divide by its ``ms``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: Independent FMA chains per thread.
CHAINS = 8
#: Threads per workgroup.
THREADS = 256
#: The input values each thread picks its b, c and starting points from.
INPUTS = 64

#: WGSL type -> (scalar type, lanes).
TYPES: dict[str, tuple[str, int]] = {
    "f32": ("f32", 1),
    "vec4<f32>": ("f32", 4),
    "f16": ("f16", 1),
    "vec2<f16>": ("f16", 2),
    "vec4<f16>": ("f16", 4),
}


def fma_kernel(wgsl_type: str, iterations: int) -> str:
    """The WGSL of one type's kernel (entry point ``main``)."""
    scalar, lanes = TYPES[wgsl_type]

    def value(offset: int, scale: str) -> str:
        # Lane l of a vector takes input (i + offset + l) % INPUTS: no two lanes equal.
        parts = [f"x[(i + {offset + lane}u) % {INPUTS}u] * {scale}" for lane in range(lanes)]
        return parts[0] if lanes == 1 else f"{wgsl_type}({', '.join(parts)})"

    one = "1.0h" if scalar == "f16" else "1.0f"
    half, quarter = f"({one} / 2)", f"({one} / 4)"
    lines = ["enable f16;"] if scalar == "f16" else []
    lines += [
        f"@group(0) @binding(0) var<storage, read> x : array<{scalar}>;",
        f"@group(0) @binding(1) var<storage, read_write> out : array<{scalar}>;",
        f"@compute @workgroup_size({THREADS}, 1, 1)",
        "fn main(@builtin(global_invocation_id) gid : vec3<u32>) {",
        "  let i = gid.x;",
        f"  let b = {value(1, half)};",
        f"  let c = {value(2, quarter)};",
    ]
    lines += [f"  var a{n} = {value(3 + n, one)};" for n in range(CHAINS)]
    lines.append(f"  for (var step = 0u; step < {iterations}u; step++) {{")
    lines += [f"    a{n} = fma(a{n}, b, c);" for n in range(CHAINS)]
    lines.append("  }")
    total = " + ".join(f"a{n}" for n in range(CHAINS))
    lines.append(f"  let s = {total};")
    lanes_sum = "s" if lanes == 1 else " + ".join(f"s[{lane}]" for lane in range(lanes))
    lines += [f"  out[i] = {lanes_sum};", "}", ""]
    return "\n".join(lines)


def kernel_spec(wgsl_type: str, iterations: int, workgroups: int) -> dict[str, Any]:
    """One type's kernel, grid and buffers, for probe_kernels.mjs."""
    scalar, lanes = TYPES[wgsl_type]
    threads = workgroups * THREADS
    name = f"fma-{wgsl_type.replace('<', '-').replace('>', '')}"
    fmas = threads * iterations * CHAINS * lanes
    return {
        "name": name,
        "group": name,  # each type computes its own values: nothing to compare across
        "code": fma_kernel(wgsl_type, iterations),
        "entry": "main",
        "grid": [workgroups, 1, 1],
        "buffers": [
            {"binding": 0, "name": "x", "kind": "storage", "dtype": scalar, "elements": INPUTS},
            {"binding": 1, "name": "out", "kind": "storage", "dtype": scalar, "elements": threads},
        ],
        "output": 1,
        "fmas": fmas,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--iterations", type=int, default=1024, help="FMA steps per chain")
    parser.add_argument(
        "--workgroups", type=int, default=4096, help="workgroups of 256 threads (default: 1M)"
    )
    parser.add_argument(
        "--type", action="append", choices=sorted(TYPES), help="(repeatable; default: all)"
    )
    args = parser.parse_args()
    specs = [kernel_spec(t, args.iterations, args.workgroups) for t in args.type or TYPES]
    args.out.write_text(json.dumps(specs))
    print(f"wrote {len(specs)} kernels to {args.out}")


if __name__ == "__main__":
    main()
