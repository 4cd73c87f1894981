#!/usr/bin/env python
"""Choose the matmul/convolution tiles per shape by measuring them on a GPU.

The recipe behind ``packages/wsd-compile/src/wsd_compile/kernels/tuned_tiles.json``
(not a test, not part of CI). Three steps:

1. ``build`` (here, on the CPU machine): compile the full SD 1.5 architecture
   (random weights, ``wsd_capture.architectures``) once per tile variant in
   :data:`VARIANTS`, every matmul and convolution with the same tiles (no
   table, no adaptive rule), and record each kernel's normalised matmul shape
   (``shapes.json``, from the module dlight schedules). Each variant's build
   is packed for the GPU machine without its weight shards (the benchmark
   generates weights from a seed) and with ``model.wasm`` xz-compressed.
2. On the GPU machine: ``wsd-web bench VARIANT_DIR --random-weights 1`` for
   each variant (``scripts/bench_gpu.sh`` sets up the environment; the exact
   loop is in docs/kernels.md), giving per-kernel GPU times.
3. ``select``: for every shape, the variant with the least GPU time summed
   over the kernels of that shape; the table records every variant's time.

Then, per shape, whether its tiles are read contiguously (``MatmulTiles.contiguous``:
each thread owning neighbouring outputs, read as vectors from k-major tiles), and
with which tiles:

4. ``shapes``: the default build (the committed table) compiled once, recording
   each kernel's shape, packed as ``build`` packs a variant.
5. ``build --contiguous``: variants with every product read contiguously
   (names ending ``-c``); and the default build compiled with
   ``KernelOptions.matmul_contiguous`` (variant ``table``: each shape's tiles
   as now, read contiguously).
6. On the GPU machine: ``wsd-web bench`` of the default build and of each variant.
7. ``contiguous``: the committed table with each shape's tiles replaced by the
   fastest variant's where it beat the tiles the shape has now by more than
   ``--margin`` (summed over its kernels in a UNet step and a VAE decode);
   shapes not in the table that gain get an entry.

usage:
  tune_tiles.py build --model-dir DIR --out DIR [--variants NAME...] [--contiguous]
  tune_tiles.py select --shapes FILE --bench NAME=FILE... --machine M --out FILE
  tune_tiles.py shapes --model-dir DIR --out DIR
  tune_tiles.py contiguous --shapes FILE --current FILE --variant NAME=FILE... --machine M
      --out FILE
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from wsd_compile.kernels import DEFAULT_KERNELS, MatmulShape, MatmulTiles, matmul_shape

#: The tile variants measured: workgroup threads (y x x), register tile per
#: thread (y x x), k step. Workgroup memory stays within TVM's 32 KiB cap.
VARIANTS: dict[str, MatmulTiles] = {
    "t16-r4x4-k16": MatmulTiles(),
    "t16-r8x8-k16": MatmulTiles(micro_x=8, micro_y=8),
    "t8-r8x8-k16": MatmulTiles(block_x=8, block_y=8, micro_x=8, micro_y=8),
    "t16-r4x8-k16": MatmulTiles(micro_y=4, micro_x=8),
    "t16-r8x4-k16": MatmulTiles(micro_y=8, micro_x=4),
    "t16-r4x4-k32": MatmulTiles(micro_k=32),
    "t16-r4x4-k8": MatmulTiles(micro_k=8),
    "t8-r4x4-k16": MatmulTiles(block_x=8, block_y=8),
}

#: What the GPU machine needs of a build (weights are generated there).
_CARRIED = ("manifest.json", "tensor-cache.json", "tokenizer")


def _say(message: str) -> None:
    print(f"[tune] {message}", file=sys.stderr, flush=True)


def _shape_recorder(shapes: dict[str, MatmulShape]) -> Any:
    """A pass instrument: each PrimFunc's matmul shape, into ``shapes``, when
    dlight schedules it."""
    import tvm

    @tvm.instrument.pass_instrument
    class ShapeRecorder:
        def run_before_pass(self, mod: Any, info: Any) -> None:
            if "ApplyDefaultSchedule" not in str(info.name):
                return
            for gvar, func in mod.functions_items():
                shape = matmul_shape(func)
                if shape is not None:
                    shapes[f"{gvar.name_hint}_kernel"] = shape

    return ShapeRecorder()


def build(
    model_dir: Path, out: Path, names: list[str], channel_block: int = 0, contiguous: bool = False
) -> None:
    import tvm

    from wsd_compile import compile_sd15

    if not (model_dir / "model_index.json").exists():
        sys.path.insert(0, str(Path(__file__).parent))
        from measure_compile import write_model

        write_model(model_dir, seed=0)
    out.mkdir(parents=True, exist_ok=True)
    shapes: dict[str, MatmulShape] = {}
    for name in names:
        tiles = replace(VARIANTS[name], contiguous=contiguous)
        kernels = DEFAULT_KERNELS.without(
            tiles=tiles, table=(), adaptive=False, channel_block=channel_block
        )
        if channel_block:
            name = f"{name}-cb{channel_block}"
        if contiguous:
            name = f"{name}-c"
        full = out / f"{name}.full"
        shutil.rmtree(full, ignore_errors=True)
        _say(f"compiling {name}: {tiles}")
        with tvm.transform.PassContext(instruments=[_shape_recorder(shapes)]):
            compile_sd15(model_dir, out_dir=full, precision="fp32", kernels=kernels)
        _pack(full, out / name)
        shutil.rmtree(full)
    (out / "shapes.json").write_text(json.dumps(shapes, indent=1, sort_keys=True))
    _say(f"wrote {out}/shapes.json ({len(shapes)} matmul kernels)")


def shapes(model_dir: Path, out: Path) -> None:
    """The default build of ``model_dir``, packed into ``out/table``, and every
    kernel's matmul shape in ``out/shapes.json``."""
    import tvm

    from wsd_compile import compile_sd15

    recorded: dict[str, MatmulShape] = {}
    full = out / "table.full"
    shutil.rmtree(full, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    with tvm.transform.PassContext(instruments=[_shape_recorder(recorded)]):
        compile_sd15(model_dir, out_dir=full, precision="fp32")
    _pack(full, out / "table")
    shutil.rmtree(full)
    (out / "shapes.json").write_text(json.dumps(recorded, indent=1, sort_keys=True))
    _say(f"wrote {out}/shapes.json ({len(recorded)} matmul kernels) and {out}/table")


def _kernel_times(path: Path) -> dict[str, float]:
    """A ``wsd-web bench --json`` report's GPU time per kernel, UNet step and VAE decode."""
    report = json.loads(path.read_text())
    if isinstance(report, list):  # one report per robustness setting
        report = report[0]
    kernels = [*report["kernels"], *(report.get("vae_kernels") or [])]
    return {k["name"]: float(k["ms"]) for k in kernels}


def _known(name: str) -> bool:
    return name.removesuffix("-c").split("-cb")[0] in VARIANTS


def _variant_tiles(name: str) -> MatmulTiles:
    """A variant's tiles by its name: ``t16-r8x8-k16``, with ``-cbN`` (the k
    order it was built with) and ``-c`` (read contiguously) after it."""
    base = name.removesuffix("-c").split("-cb")[0]
    return replace(VARIANTS[base], contiguous=name.endswith("-c"))


def contiguous(
    shapes_file: Path,
    current: Path,
    variants: dict[str, Path],
    machine: str,
    out: Path,
    margin: float,
) -> None:
    """The committed table with each shape's tiles replaced by those of the
    variant that measured fastest, where it beat the tiles the shape has now
    (``current``: a bench of a build with the committed table) by more than
    ``margin``. A variant is ``table`` (each shape's tiles now, read
    contiguously) or a name of :data:`VARIANTS` with ``-c`` (``build --contiguous``)."""
    from wsd_compile.kernels.matmul import TUNED_TILES_FILE, WebGPUMatmul, load_tile_table

    committed = Path(__file__).parents[1] / "packages/wsd-compile/src/wsd_compile/kernels"
    data = json.loads((committed / TUNED_TILES_FILE).read_text())
    rule = WebGPUMatmul(DEFAULT_KERNELS.tiles or MatmulTiles(), table=load_tile_table())
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for kernel, dims in json.loads(shapes_file.read_text()).items():
        by_shape.setdefault(tuple(dims), []).append(kernel)
    times = {"current": _kernel_times(current)}
    times.update({name: _kernel_times(path) for name, path in variants.items()})
    entries = {tuple(e["shape"]): e for e in data["entries"]}
    changed = 0
    for shape, kernels in sorted(by_shape.items()):
        ms = {n: round(sum(t.get(k, float("inf")) for k in kernels), 4) for n, t in times.items()}
        if ms["current"] == float("inf"):
            continue  # not called in a UNet step or a VAE decode
        best = min(variants, key=lambda n: ms[n])
        entry = entries.get(shape)
        if ms[best] < ms["current"] * (1 - margin):
            now = rule._tiles_for(list(shape))
            tiles = replace(now, contiguous=True) if best == "table" else _variant_tiles(best)
            if entry is None:
                entry = {"shape": list(shape), "kernels": sorted(kernels)}
                data["entries"].append(entry)
            entry["tiles"] = asdict(tiles)
            entry["contiguous_variant"] = best
            changed += 1
        elif entry is None:
            continue
        entry["kernels"] = sorted(kernels)  # the names in the measured build
        entry["contiguous_ms"] = ms
    data["entries"].sort(key=lambda e: e["shape"])
    data.setdefault("contiguous", [])
    data["contiguous"].append(
        f"measured on {machine}: each shape's kernels summed per UNet step and VAE "
        f"decode with its tiles then and with variants {sorted(variants)} "
        f"(contiguous_ms); the fastest taken where faster by more than {margin:.0%}"
    )
    out.write_text(json.dumps(data, indent=1) + "\n")
    _say(f"wrote {out}: {changed} of {len(by_shape)} shapes changed")


def _pack(full: Path, packed: Path) -> None:
    shutil.rmtree(packed, ignore_errors=True)
    packed.mkdir()
    for entry in full.iterdir():
        if entry.name in _CARRIED or entry.name.startswith("tokenizer"):
            if entry.is_dir():
                shutil.copytree(entry, packed / entry.name)
            else:
                shutil.copy2(entry, packed / entry.name)
    wasm = (full / "model.wasm").read_bytes()
    (packed / "model.wasm.xz").write_bytes(lzma.compress(wasm, preset=6))


def select(shapes_file: Path, benches: dict[str, Path], machine: str, out: Path) -> None:
    shapes: dict[str, list[int]] = json.loads(shapes_file.read_text())
    per_variant: dict[str, dict[str, float]] = {}
    for name, path in benches.items():
        report = json.loads(path.read_text())
        if isinstance(report, list):  # wsd-web bench --json: one report per robustness setting
            report = report[0]
        # A report's kernel times are per UNet step (the median step's profile).
        per_variant[name] = {k["name"]: float(k["ms"]) for k in report["kernels"]}
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for kernel, dims in shapes.items():
        by_shape.setdefault(tuple(dims), []).append(kernel)
    entries = []
    for shape, kernels in sorted(by_shape.items()):
        times = {
            name: round(sum(measured.get(k, float("inf")) for k in kernels), 4)
            for name, measured in per_variant.items()
        }
        best = min(times, key=lambda n: times[n])
        if times[best] == float("inf"):
            continue
        entries.append(
            {
                "shape": list(shape),
                "kernels": sorted(kernels),
                "tiles": asdict(VARIANTS[best.split("-cb")[0]]),
                "variant": best,
                "ms_per_step": {n: t for n, t in sorted(times.items()) if t != float("inf")},
            }
        )
    data = {
        "about": (
            "Matmul/convolution tiles per normalised shape [s, i, j, k] (C[s,i,j] += "
            "A[s,i,k] * B[s,j,k]), the variant with the least GPU time per SD 1.5 UNet step; "
            "made by scripts/tune_tiles.py (see docs/kernels.md)."
        ),
        "machine": machine,
        "variants": {name: asdict(VARIANTS[name.split("-cb")[0]]) for name in benches},
        "entries": entries,
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    _say(f"wrote {out}: {len(entries)} shapes")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--model-dir", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    b.add_argument(
        "--channel-block",
        type=int,
        default=0,
        help="implicit-GEMM k order (KernelOptions.channel_block); names get -cbN",
    )
    b.add_argument(
        "--contiguous",
        action="store_true",
        help="every product read contiguously (MatmulTiles.contiguous); names get -c",
    )
    s = sub.add_parser("select")
    s.add_argument("--shapes", type=Path, required=True)
    s.add_argument("--bench", nargs="+", required=True, metavar="NAME=FILE")
    s.add_argument("--machine", required=True)
    s.add_argument("--out", type=Path, required=True)
    h = sub.add_parser("shapes")
    h.add_argument("--model-dir", type=Path, required=True)
    h.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("contiguous")
    c.add_argument("--shapes", type=Path, required=True)
    c.add_argument(
        "--current", type=Path, required=True, help="wsd-web bench JSON of the default build"
    )
    c.add_argument("--variant", nargs="+", required=True, metavar="NAME=FILE")
    c.add_argument("--machine", required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--margin", type=float, default=0.02)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.model_dir, args.out, args.variants, args.channel_block, args.contiguous)
    elif args.command == "shapes":
        shapes(args.model_dir, args.out)
    elif args.command == "contiguous":
        variants = {}
        for item in args.variant:
            name, _, path = item.partition("=")
            if name != "table" and not (name.endswith("-c") and _known(name)):
                parser.error(f"variant {name!r}: 'table' or a contiguous VARIANTS name (-c)")
            variants[name] = Path(path)
        contiguous(args.shapes, args.current, variants, args.machine, args.out, args.margin)
    else:
        benches = {}
        for item in args.bench:
            name, _, path = item.partition("=")
            if name.split("-cb")[0] not in VARIANTS:
                parser.error(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
            benches[name] = Path(path)
        select(args.shapes, benches, args.machine, args.out)


if __name__ == "__main__":
    main()
