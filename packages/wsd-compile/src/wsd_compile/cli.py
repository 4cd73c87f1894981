"""``wsd-compile``: compile Stable Diffusion pipelines for WebGPU (and build the tvmjs runtime).

  wsd-compile sd15 (--model DIR | --preset NAME) --out DIR [--precision fp32|fp16]
                   [--no-fp32-fallback] [--subgroup-matrix] [--quantize int8|int4]
                   [--height H --width W] [--vae DIR] [-v]
  wsd-compile sdxl (--model DIR | --preset NAME) --out DIR [--precision fp32|fp16]
                   [--no-fp32-fallback] [--subgroup-matrix] [--quantize int8|int4]
                   [--height H --width W] [--vae DIR] [-v]
  wsd-compile runtime [--rebuild]
  wsd-compile check --out DIR

Exit code 0 on success; on failure non-zero with one line on stderr that
says what was wrong and what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from wsd_artifacts import ArtifactError
from wsd_capture import KINDS, CaptureError, ModelKind, quiet_libraries

from .errors import WsdCompileError
from .kinds import PRECISIONS
from .quantize import QUANTIZE_CHOICES

PROG = "wsd-compile"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit code 2), like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser ``main`` uses; tests/test_docs.py checks the documented commands with it."""
    parser = _Parser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for kind in KINDS.values():
        _add_kind_command(sub, kind)
    runtime = sub.add_parser(
        "runtime",
        help="build (once per machine) and print the tvmjs runtime objects models link with",
    )
    runtime.add_argument("--rebuild", action="store_true", help="discard the cached build first")
    check = sub.add_parser(
        "check", help="compile and link a small model that checks the WebGPU toolchain end to end"
    )
    check.add_argument(
        "--out", required=True, help="output directory (run it with `wsd-web check`)"
    )
    return parser


def _add_kind_command(sub: Any, kind: ModelKind) -> None:
    """``wsd-compile KIND``: compile a pipeline of that kind (one per registered kind)."""
    tokenizers = ", ".join(f"{name}.json" for name in kind.tokenizers)
    cmd = sub.add_parser(
        kind.name,
        help=f"compile {kind.noun} (diffusers) into a folder of static web files",
        description=f"Compile {kind.noun} ({kind.parts}, scheduler and guidance kernels) "
        f"for WebGPU into OUT: model.wasm, weight shards, {tokenizers} and manifest.json. "
        "Serve it with `wsd-web serve OUT`.",
    )
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help=f"a diffusers {kind.pipeline_class} directory")
    source.add_argument("--preset", choices=kind.presets, help="a built-in model (no download)")
    cmd.add_argument("--out", required=True, help="output directory (must not hold files)")
    cmd.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="weights and arithmetic"
    )
    cmd.add_argument(
        "--no-fp32-fallback",
        dest="fp32_fallback",
        action="store_false",
        help="fp16 only: leave out the fp32 kernel path (model-fp32.wasm) that runs the "
        "build on devices without shader-f16",
    )
    cmd.add_argument(
        "--subgroup-matrix",
        action="store_true",
        help="fp16 only: also build the subgroup-matrix kernel path "
        "(model-subgroup-matrix.wasm: matmuls on tensor cores, for devices with "
        "chromium-experimental-subgroup-matrix)",
    )
    cmd.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        default="none",
        help="store the UNet's and text encoders' weights as int8 (a scale per output "
        "channel) or int4 (a scale per 32 weights), dequantized in the kernels",
    )
    cmd.add_argument("--height", type=int, help="image height (default: the model's native)")
    cmd.add_argument("--width", type=int, help="image width (default: the model's native)")
    cmd.add_argument(
        "--vae", help="another VAE (a diffusers AutoencoderKL directory), e.g. an fp16-safe one"
    )
    cmd.add_argument(
        "-v", "--verbose", action="store_true", help="report each phase and its time on stderr"
    )


def _progress(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wsd-compile`` command."""
    quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        if args.command in KINDS:
            from .pipeline import compile_pipeline

            result = compile_pipeline(
                args.command,
                args.model,
                preset=args.preset,
                out_dir=args.out,
                precision=args.precision,
                height=args.height,
                width=args.width,
                vae=args.vae,
                log=_progress if args.verbose else None,
                fp32_fallback=args.fp32_fallback,
                subgroup_matrix=args.subgroup_matrix,
                quantize=args.quantize,
            )
            print(
                json.dumps(
                    {
                        "directory": str(result.out_dir),
                        "kind": result.manifest["kind"],
                        "build_id": result.manifest["build_id"],
                        "image": result.manifest["image"],
                        "wasm_bytes": result.wasm_bytes,
                        "kernel_paths": [p.name for p in result.kernel_paths],
                        "weight_bytes": result.weight_bytes,
                        "seconds": result.seconds,
                    },
                    indent=1,
                )
            )
            return 0
        if args.command == "runtime":
            from .runtime import tvmjs_runtime

            rt = tvmjs_runtime(rebuild=args.rebuild)
            print(
                json.dumps(
                    {
                        "origin": rt.origin,
                        "build_seconds": round(rt.build_seconds, 1),
                        "objects": [str(p) for p in rt.objects],
                    },
                    indent=1,
                )
            )
            return 0
        from .check import write_runtime_check

        check = write_runtime_check(args.out)
        print(
            json.dumps(
                {
                    "directory": str(check.directory),
                    "compile_seconds": round(check.build.compile_seconds, 1),
                    "link_seconds": round(check.build.wasm.seconds, 1),
                    "wasm_bytes": check.build.wasm.nbytes,
                },
                indent=1,
            )
        )
        return 0
    except (WsdCompileError, CaptureError, ArtifactError, OSError) as e:
        # OSError: a file that cannot be written (disk full, permissions), said as is.
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
