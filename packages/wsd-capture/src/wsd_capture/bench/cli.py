"""The command: ``python -m wsd_capture.bench``, its arguments and its exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import torch

from ..errors import CaptureError
from .generation import PRECISIONS
from .models import FULL_SIZE_KINDS, KINDS, check_model_dir, check_size
from .runner import PROG, format_table, run_benchmark


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message}; see `{PROG} --help`\n")


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


def _device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: use cuda, cuda:N or cpu")
    return device


def build_parser() -> argparse.ArgumentParser:
    """The parser ``main`` uses; tests/test_docs.py checks the documented commands with it."""
    parser = _Parser(
        prog=PROG,
        description="Time diffusers on PyTorch stage by stage, as the WebGPU pipeline runs: "
        "text encoders, one UNet step (CFG batch 2), one scheduler step, VAE decode, and a "
        "whole generation.",
        epilog="Writes a table to stdout; --json also writes the records (one per precision).",
    )
    parser.add_argument(
        "--kind",
        required=True,
        choices=KINDS,
        help="sd15/sdxl: the published architectures with random weights; tiny-*: the presets",
    )
    parser.add_argument("--height", type=_count(1), help="image height (default: native)")
    parser.add_argument("--width", type=_count(1), help="image width (default: native)")
    parser.add_argument("--steps", type=_count(1), default=20, help="denoising steps (20)")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=list(PRECISIONS),
        default=["fp32", "fp16"],
        help="one record each, in this order (fp32 fp16)",
    )
    parser.add_argument(
        "--device",
        type=_device,
        default=torch.device("cuda"),
        help="cuda, cuda:N or cpu (cuda)",
    )
    parser.add_argument("--warmup", type=_count(0), default=3, help="untimed runs per stage (3)")
    parser.add_argument("--repeats", type=_count(1), default=10, help="timed runs per stage (10)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights and the latents (0)"
    )
    parser.add_argument("--json", metavar="OUT", type=Path, help="also write the records here")
    parser.add_argument(
        "--model-dir",
        metavar="DIR",
        type=Path,
        help="load this diffusers directory (of --kind sd15 or sdxl) instead of random weights",
    )
    return parser


def _cuda_problem(device: torch.device) -> str | None:
    """Why ``device`` cannot be used, or None."""
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        why = (
            f"torch {torch.__version__} is built without CUDA"
            if torch.version.cuda is None
            else "torch sees no CUDA device"
        )
        return (
            f"CUDA is not available: {why}; run on a machine with an NVIDIA GPU or use --device cpu"
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        return f"CUDA device {device.index} does not exist: torch sees {torch.cuda.device_count()}"
    return None


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m wsd_capture.bench``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model_dir is not None and args.kind not in FULL_SIZE_KINDS:
        parser.error("--model-dir needs --kind sd15 or --kind sdxl")
    problem = _cuda_problem(args.device)
    if problem is not None:
        return _fail(problem)
    from ..quiet import quiet_libraries

    quiet_libraries()
    if args.model_dir is not None:
        try:
            check_model_dir(args.kind, args.model_dir)
        except CaptureError as e:
            return _fail(str(e))
    try:
        check_size(args.kind, args.model_dir, args.height, args.width)
    except CaptureError as e:
        parser.error(str(e))
    try:
        results = run_benchmark(
            args.kind,
            device=args.device,
            precisions=list(dict.fromkeys(args.precision)),
            height=args.height,
            width=args.width,
            steps=args.steps,
            warmup=args.warmup,
            repeats=args.repeats,
            seed=args.seed,
            model_dir=args.model_dir,
        )
    except CaptureError as e:
        return _fail(str(e))
    print(format_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0
