#!/usr/bin/env python
"""Variants of the matmul schedule (``wsd_compile.kernels.matmul.WebGPUMatmul``)
compiled to WGSL here, for ``packages/wsd-web/src/wsd_web/node/probe_kernels.mjs``
to time one by one on a GPU: tiles for one product shape in seconds of GPU
time, without the full builds of ``scripts/tune_tiles.py``. Not a test, not
part of CI.

usage:
  probe_matmul.py [--shape S,I,J,K]... [--dtype float32|float16]...
                  [--tiles BX,BY,MX,MY,MK[,contiguous]]... OUT.json
  # on the GPU machine (after `source scripts/gpu_env.sh`):
  node packages/wsd-web/src/wsd_web/node/probe_kernels.mjs OUT.json [REPEATS]

A shape is the normalised product ``C[s, i, j] = sum_k A[s, i, k] B[s, j, k]``
(the ``[s, i, j, k]`` of ``tuned_tiles.json``); ``A`` and ``B`` are stored
``--dtype`` (``float16``: the shader-f16 path, whose products sum in f32) and
``C`` is f32. A convolution's product is probed as a plain matmul of its
shape: without its gather, the same inner loop. Each shape and type is a
group: every variant of it must give the same output. Without ``--tiles``,
the default tiles and the table's for the shape, if it has an entry.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

_DTYPES = {"float32": "f32", "float16": "f16"}
#: The shapes probed without ``--shape``, two of SD 1.5 512's UNet's largest products:
#: a 3 x 3 convolution of the 64 x 64 level (320 channels, in two split-K ranges)
#: and its feed-forward layers' first projection.
DEFAULT_SHAPES = ((2, 320, 8192, 1440), (1, 8192, 2560, 320))


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``S,I,J,K`` as a shape."""
    parts = text.split(",")
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"shape {text!r}: give S,I,J,K (like 1,640,8192,2880)")
    s, i, j, k = (int(p) for p in parts)
    return s, i, j, k


def parse_tiles(text: str) -> Any:
    """``BX,BY,MX,MY,MK[,contiguous]`` as ``MatmulTiles``."""
    from wsd_compile.kernels.matmul import MatmulTiles

    *numbers, last = text.split(",")
    contiguous = last == "contiguous"
    if not contiguous:
        numbers.append(last)
    if len(numbers) != 5 or not all(n.isdigit() and int(n) > 0 for n in numbers):
        raise argparse.ArgumentTypeError(
            f"tiles {text!r}: give BX,BY,MX,MY,MK[,contiguous] (like 16,16,4,4,16)"
        )
    bx, by, mx, my, mk = (int(n) for n in numbers)
    return MatmulTiles(bx, by, mx, my, mk, contiguous=contiguous)


def _grid(func: Any) -> list[int]:
    """The launch grid (``blockIdx.x, y, z`` extents) of a scheduled PrimFunc."""
    grid = [1, 1, 1]
    for extent, axis in re.findall(
        r'T\.thread_binding\((\d+), thread="blockIdx\.([xyz])"\)', func.script()
    ):
        grid["xyz".index(axis)] = int(extent)
    return grid


def kernel_spec(shape: tuple[int, int, int, int], dtype: str, tiles: Any) -> dict[str, Any]:
    """One variant: its WGSL, entry point, grid and buffers, for probe_kernels.mjs."""
    import tvm
    from tvm import te

    from wsd_compile.kernels.matmul import WebGPUMatmul
    from wsd_compile.webgpu import webgpu_target, wgsl_sources

    s, i, j, k = shape
    a = te.placeholder((s, i, k), dtype, name="A")
    b = te.placeholder((s, j, k), dtype, name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute(
        (s, i, j),
        lambda n, y, x: te.sum(a[n, y, r].astype("float32") * b[n, x, r].astype("float32"), r),
        name="C",
    )
    func = te.create_prim_func([a, b, c])
    target = webgpu_target()
    sch = WebGPUMatmul(tiles, adaptive=False).apply(func, target, False)
    if sch is None:
        raise ValueError(f"the matmul schedule does not apply to {shape} with {tiles}")
    scheduled = sch.mod["main"].with_attr("global_symbol", "matmul")
    grid = _grid(scheduled)
    (code,) = wgsl_sources(tvm.tirx.build(tvm.IRModule({"matmul": scheduled}), target=target))
    entry = re.search(r"\bfn (\w+)\(", code)
    assert entry is not None, "no entry point in the WGSL"
    elements = {"A": s * i * k, "B": s * j * k, "C": s * i * j}
    buffers: list[dict[str, Any]] = []
    for binding, kind, name in re.findall(
        r"@binding\((\d+)\) var<(storage|uniform)[^>]*> (\w+)", code
    ):
        buffer: dict[str, Any] = {"binding": int(binding), "name": name, "kind": kind}
        if kind == "uniform":  # the grid's x extent (packGridDimX), as tvmjs passes it
            buffer.update(dtype="u32", elements=4, values=[grid[0], 0, 0, 0])
        else:
            key = name.removesuffix("_ptr")
            buffer.update(dtype="f32" if key == "C" else _DTYPES[dtype], elements=elements[key])
        buffers.append(buffer)
    output = next(buf["binding"] for buf in buffers if buf["name"].startswith("C"))
    t = tiles
    name = f"{s}x{i}x{j}x{k}-{dtype}-t{t.block_x}x{t.block_y}-r{t.micro_x}x{t.micro_y}"
    name += f"-k{t.micro_k}" + ("-contiguous" if t.contiguous else "")
    return {
        "name": name,
        "group": f"{s}x{i}x{j}x{k}-{dtype}",
        "code": code,
        "entry": entry.group(1),
        "grid": grid,
        "buffers": buffers,
        "output": output,
        "flops": 2 * s * i * j * k,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shape", action="append", type=parse_shape)
    parser.add_argument("--dtype", action="append", choices=sorted(_DTYPES))
    parser.add_argument("--tiles", action="append", type=parse_tiles)
    args = parser.parse_args()
    from wsd_compile.kernels.matmul import DEFAULT_TILES, load_tile_table

    table = load_tile_table()
    specs = []
    for shape in args.shape or DEFAULT_SHAPES:
        variants = args.tiles or [DEFAULT_TILES, *([table[shape]] if shape in table else [])]
        for dtype in args.dtype or ["float32", "float16"]:
            for tiles in dict.fromkeys(variants):
                try:
                    specs.append(kernel_spec(shape, dtype, tiles))
                except ValueError as error:
                    print(f"skipped: {error}")
    args.out.write_text(json.dumps(specs))
    print(f"wrote {len(specs)} kernels to {args.out}")


if __name__ == "__main__":
    main()
