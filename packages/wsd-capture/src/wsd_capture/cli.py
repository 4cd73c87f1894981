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
    preset.add_argument("name", help="the preset: tiny-sd15, tiny-sd15-v or tiny-sdxl")
    preset.add_argument("dir", help="output directory (new or empty)")
    sd15 = sub.add_parser(
        "sd15",
        help="capture a Stable Diffusion 1.5-class pipeline (text encoder, UNet, VAE decoder)",
    )
    sd15.add_argument("--model", required=True, help="diffusers pipeline directory")
    sd15.add_argument("--out", required=True, help="output capture directory (new or empty)")
    sd15.add_argument("--height", type=int, help="image height in pixels (default: native)")
    sd15.add_argument("--width", type=int, help="image width in pixels (default: native)")
    sdxl = sub.add_parser(
        "sdxl",
        help="capture an SDXL pipeline (both text encoders, UNet, VAE decoder)",
    )
    sdxl.add_argument("--model", required=True, help="diffusers pipeline directory")
    sdxl.add_argument("--out", required=True, help="output capture directory (new or empty)")
    sdxl.add_argument("--vae", help="another VAE (diffusers AutoencoderKL directory) to use")
    sdxl.add_argument("--height", type=int, help="image height in pixels (default: native)")
    sdxl.add_argument("--width", type=int, help="image width in pixels (default: native)")
    return parser


def _run(args: argparse.Namespace) -> dict[str, object]:
    if args.command == "preset":
        from .presets import write_preset

        return {"preset": args.name, "directory": str(write_preset(args.name, args.dir))}
    from .atomic import check_new_directory
    from .capture import check_image_size
    from .loading import check_source
    from .storage import save_capture

    # A taken output, missing or damaged files, a size the model cannot take:
    # each fails here, before minutes of loading and capturing.
    check_new_directory(Path(args.out))
    check_source(args.model, args.command)
    vae = args.vae if args.command == "sdxl" else None
    check_image_size(args.model, args.height, args.width, vae_dir=vae)
    start = time.perf_counter()
    if args.command == "sdxl":
        from .loading import load_sdxl
        from .xl import capture_sdxl

        pipe = load_sdxl(args.model, vae=vae)
        captured = capture_sdxl(pipe, height=args.height, width=args.width)
    else:
        from .capture import capture_sd15
        from .loading import load_sd15

        captured = capture_sd15(load_sd15(args.model), height=args.height, width=args.width)
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
