"""``wsd-capture``: write a built-in tiny preset, or capture a pipeline for wsd-compile.

  wsd-capture preset tiny-sd15 models/tiny-sd15
  wsd-capture sd15 --model models/tiny-sd15 --out captures/tiny-sd15
  wsd-capture sdxl --model models/tiny-sdxl --out captures/tiny-sdxl

Exit code 0 on success (a JSON summary on stdout); on failure non-zero with
one line on stderr that says what was wrong and what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .errors import CaptureError
from .kinds import KINDS, PRESET_KINDS
from .quiet import quiet_libraries

PROG = "wsd-capture"


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
    preset = sub.add_parser(
        "preset", help="write a built-in tiny random-weight pipeline as a diffusers directory"
    )
    preset.add_argument("name", help=f"the preset: {', '.join(PRESET_KINDS)}")
    preset.add_argument("dir", help="output directory (new or empty)")
    for kind in KINDS.values():
        cmd = sub.add_parser(kind.name, help=f"capture {kind.noun} ({kind.parts})")
        cmd.add_argument("--model", required=True, help="diffusers pipeline directory")
        cmd.add_argument("--out", required=True, help="output capture directory (new or empty)")
        cmd.add_argument("--vae", help="another VAE (diffusers AutoencoderKL directory) to use")
        cmd.add_argument("--height", type=int, help="image height in pixels (default: native)")
        cmd.add_argument("--width", type=int, help="image width in pixels (default: native)")
    return parser


def _run(args: argparse.Namespace) -> dict[str, object]:
    if args.command == "preset":
        from .presets import write_preset

        return {"preset": args.name, "directory": str(write_preset(args.name, args.dir))}
    from wsd_artifacts import check_new_directory

    from .kinds import capture_model
    from .storage import save_capture

    # A taken output, missing or damaged files, a size the model cannot take:
    # each fails here, before minutes of loading and capturing.
    check_new_directory(Path(args.out), CaptureError)
    start = time.perf_counter()
    captured = capture_model(
        args.command, args.model, height=args.height, width=args.width, vae=args.vae
    )
    meta = captured.metadata
    return {
        "directory": str(save_capture(captured, args.out)),
        "kind": meta.kind,
        "height": meta.height,
        "width": meta.width,
        "components": list(captured.components),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wsd-capture`` command."""
    args = build_parser().parse_args(argv)
    quiet_libraries()
    try:
        print(json.dumps(_run(args), indent=1))
        return 0
    except (CaptureError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
