#!/usr/bin/env python
"""Variants of the fused attention kernel (``wsd_compile.kernels.online_softmax``),
compiled to WGSL here and timed one by one on a GPU by
``packages/wsd-web/src/wsd_web/node/probe_kernels.mjs``: how tiles are chosen
(``attention_tiles``), without a full build per variant. Not a test, not part
of CI.

usage:
  probe_attention.py [--label L] [--shape NAME]... [--dtype float32|float16]...
                     [--default-only | --tiling ROWS,PER_THREAD,THREADS_X,KEYS,vec4|scalar...]
                     OUT.json
  # on the GPU machine (after `source scripts/gpu_env.sh`):
  node packages/wsd-web/src/wsd_web/node/probe_kernels.mjs OUT.json [REPEATS]

Each variant's group is its shape and type: every variant of a group must give
the same output (probe_kernels.mjs reports the largest difference from the
group's first). ``--label`` prefixes the names (e.g. to merge the lists written
by two checkouts, before and after a change to the kernel). ``--tiling`` (repeatable)
replaces ``TILINGS``: ``--tiling 64,4,8,32,scalar`` is 64 rows a workgroup, 4 per
thread, 8 threads per row, 32 keys a block, scalar reads.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

#: The attention shapes fused in builds: (batch x heads, queries, keys, head dim, heads).
SHAPES: dict[str, tuple[int, int, int, int, int]] = {
    "sd15-512": (16, 4096, 4096, 40, 8),  # the UNet's 64x64 level, CFG batch 2
    "sdxl-1024": (20, 4096, 4096, 64, 10),  # the UNet's 64x64 level, CFG batch 2
    "vae-512": (1, 4096, 4096, 512, 1),  # SD 1.5's VAE mid-block at 64x64 latents
    "small": (4, 200, 77, 40, 2),  # a check of the tool itself (SwiftShader runs it in seconds)
}

#: Tilings to try besides each head dimension's default:
#: (rows, rows_per_thread, threads_x, keys, vectors).
TILINGS: tuple[tuple[int, int, int, int, bool], ...] = (
    (64, 4, 16, 32, True),
    (64, 4, 16, 32, False),
    (64, 4, 8, 32, True),
    (64, 4, 8, 32, False),
    (64, 2, 8, 32, True),
    (64, 2, 8, 32, False),
)

_DTYPES = {"float32": "f32", "float16": "f16"}
_READS = {"vec4": True, "scalar": False}


def parse_tiling(text: str) -> tuple[int, int, int, int, bool]:
    """``ROWS,PER_THREAD,THREADS_X,KEYS,vec4|scalar`` as a ``TILINGS`` entry."""
    *numbers, reads = text.split(",")
    if len(numbers) != 4 or not all(n.isdigit() for n in numbers) or reads not in _READS:
        raise argparse.ArgumentTypeError(
            f"tiling {text!r}: give ROWS,PER_THREAD,THREADS_X,KEYS,vec4|scalar "
            "(like 64,4,8,32,scalar)"
        )
    rows, per_thread, threads_x, keys = map(int, numbers)
    return rows, per_thread, threads_x, keys, _READS[reads]


def kernel_spec(shape_name: str, dtype: str, tiles: Any, label: str) -> dict[str, Any]:
    """One variant: its WGSL, entry point, grid and buffers, for probe_kernels.mjs."""
    import tvm

    from wsd_compile.kernels import attention_kernel, attention_tiles
    from wsd_compile.webgpu import webgpu_target, wgsl_sources

    batch, queries, keys, depth, heads = SHAPES[shape_name]
    tiles = tiles or attention_tiles(depth)
    func = attention_kernel(batch, queries, keys, depth, dtype, depth**-0.5, tiles, heads=heads)
    mod = tvm.IRModule({"attention": func.with_attr("global_symbol", "attention")})
    (code,) = wgsl_sources(tvm.tirx.build(mod, target=webgpu_target()))
    entry = re.search(r"\bfn (\w+)\(", code)
    assert entry is not None, "no entry point in the WGSL"
    grid_x = -(-queries // tiles.rows)
    elements = {"q": queries, "k": keys, "v": keys, "out": queries}
    buffers: list[dict[str, Any]] = []
    for binding, kind, name in re.findall(
        r"@binding\((\d+)\) var<(storage|uniform)[^>]*> (\w+)", code
    ):
        buffer = {"binding": int(binding), "name": name, "kind": kind}
        if kind == "uniform":  # the grid's x extent (packGridDimX), as tvmjs passes it
            buffer.update(dtype="u32", elements=4, values=[grid_x, 0, 0, 0])
        else:
            rows = elements[name.removesuffix("_ptr")]
            buffer.update(dtype=_DTYPES[dtype], elements=batch * rows * depth)
        buffers.append(buffer)
    output = next(b["binding"] for b in buffers if b["name"] == "out_ptr")
    tiling = "r{rows}x{rows_per_thread}-t{threads_x}-k{keys}".format(**asdict(tiles))
    if getattr(tiles, "vectors", False):
        tiling += "-vec4"
    else:  # before vectors, AttentionTiles had only the compact layout
        tiling += "-compact" if getattr(tiles, "compact", True) else "-scalar"
    return {
        "name": f"{label}{shape_name}-{dtype}-{tiling}",
        "group": f"{shape_name}-{dtype}",
        "code": code,
        "entry": entry.group(1),
        "grid": [grid_x, batch, 1],
        "buffers": buffers,
        "output": output,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--label", default="")
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES))
    parser.add_argument("--dtype", action="append", choices=sorted(_DTYPES))
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--default-only", action="store_true", help="each shape's default tiles only"
    )
    choice.add_argument(
        "--tiling",
        action="append",
        type=parse_tiling,
        help="ROWS,PER_THREAD,THREADS_X,KEYS,vec4|scalar: try this besides the default "
        "(repeatable; replaces the built-in TILINGS)",
    )
    args = parser.parse_args()
    from wsd_compile.kernels import AttentionTiles, attention_tiles

    specs = []
    for shape_name in args.shape or ["sd15-512"]:
        depth = SHAPES[shape_name][3]
        tilings = [attention_tiles(depth)]
        if not args.default_only:
            for rows, per_thread, threads_x, keys, vectors in args.tiling or TILINGS:
                try:
                    tiles = AttentionTiles(rows, per_thread, threads_x, keys, vectors=vectors)
                except ValueError as error:
                    parser.error(str(error))
                if tiles != tilings[0]:
                    tilings.append(tiles)
        for dtype in args.dtype or ["float32", "float16"]:
            for tiles in tilings:
                try:
                    specs.append(kernel_spec(shape_name, dtype, tiles, args.label))
                except ValueError as error:  # tiles that leave no room for the head
                    print(f"skipped {shape_name} {dtype} {tiles}: {error}")
    args.out.write_text(json.dumps(specs))
    print(f"wrote {len(specs)} kernels to {args.out}")


if __name__ == "__main__":
    main()
