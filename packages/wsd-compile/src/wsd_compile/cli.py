"""``wsd-compile``: build the tvmjs runtime and compile models for WebGPU.

Exit code 0 on success; on failure non-zero with one line on stderr that
says what was wrong and what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .errors import WsdCompileError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsd-compile", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wsd-compile`` command."""
    args = _parser().parse_args(argv)
    try:
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

        result = write_runtime_check(args.out)
        print(
            json.dumps(
                {
                    "directory": str(result.directory),
                    "compile_seconds": round(result.build.compile_seconds, 1),
                    "link_seconds": round(result.build.wasm.seconds, 1),
                    "wasm_bytes": result.build.wasm.nbytes,
                },
                indent=1,
            )
        )
        return 0
    except WsdCompileError as e:
        print(f"wsd-compile: {e}", file=sys.stderr)
        return 1
