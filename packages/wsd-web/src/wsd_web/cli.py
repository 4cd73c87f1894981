"""``wsd-web``: serve a build to a browser, or run it headless.

  wsd-web serve DIR [--host H] [--port P] [--cors-origin ORIGIN]... [--connect-src ORIGIN]...
  wsd-web export OUT --model DIR [--cors-origin ORIGIN]... [--connect-src ORIGIN]...
  wsd-web render DIR --prompt P [--negative-prompt N] [--seed S] [--steps K]
                 [--guidance G] [--scheduler NAME] [--kernel-path NAME]
                 [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB]
                 [--image FILE [--mask FILE] [--strength S]] [--lora FILE[:SCALE]]... --out FILE.png
  wsd-web check DIR [--tolerance T]
  wsd-web bench DIR [--steps K] [--warmup N] [--repeats N] [--robustness on|off|both]
                [--random-weights SEED] [--no-profile] [--swiftshader] [--kernel-path NAME]
                [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB] [--tvmjs-dispatch]
                [--json FILE]
  wsd-web soak DIR [--generations N] [--steps K] [--seed S] [--schedulers NAME,...]
               [--tolerance-bytes B] [--random-weights SEED] [--swiftshader] [--kernel-path NAME]
               [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB] [--out FILE]
  wsd-web report (--webgpu F... --pytorch F... --command C --machine M --name N | --render-only)
                 --out-dir DOCS

Exit code 0 on success; on failure non-zero with one line on stderr that
says what was wrong and what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .bench.report import render_docs, write_report
from .bench.results import BenchReportError
from .bench.runner import BenchError, format_table, run_bench
from .bench.soak import SoakError, SoakOptionError, format_summary, run_soak, soak_failures
from .headless import HeadlessError, run_check
from .render import (
    SCHEDULERS,
    VAE_TILES,
    RenderError,
    check_output,
    lora_option,
    render,
    write_rendering,
)
from .server import is_loopback, make_server, server_url
from .site import SiteError, export_site, parse_origin

#: fp32 outputs further than this from numpy fail `wsd-web check`.
CHECK_TOLERANCE = 1e-4

if TYPE_CHECKING:
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    """The parser ``main`` uses; tests/test_docs.py checks the documented commands with it."""
    parser = argparse.ArgumentParser(
        prog="wsd-web", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_export(sub)
    _add_render(sub)
    _add_check(sub)
    _add_bench(sub)
    _add_soak(sub)
    _add_report(sub)
    return parser


def _add_serve(sub: _Subparsers) -> None:
    serve = sub.add_parser("serve", help="serve the app with a model build over HTTP")
    serve.add_argument("dir", help="a directory written by wsd-compile")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: localhost only)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    _origin_options(serve)


def _add_export(sub: _Subparsers) -> None:
    export = sub.add_parser(
        "export",
        help="write the app, a model build and a _headers file as a static site",
        description="Writes OUT (new or empty): the app with integrity pinned, the model "
        "under model/ (hard-linked where possible) and a _headers file (Netlify, "
        "Cloudflare Pages) with the headers wsd-web serve sends. See docs/hosting.md.",
    )
    export.add_argument("out", metavar="OUT", help="the directory to write (new or empty)")
    export.add_argument("--model", required=True, help="a directory written by wsd-compile")
    _origin_options(export)


def _add_render(sub: _Subparsers) -> None:
    render_ = sub.add_parser(
        "render",
        help="generate one image with the app in headless Chromium (WebGPU) and save it",
        description="Runs the same page a user opens, headless, on this machine's WebGPU "
        "(SwiftShader on the CPU when there is no GPU); writes FILE.png and FILE.json "
        "(timings) and prints the timings as one JSON line.",
    )
    render_.add_argument("dir", help="a directory written by wsd-compile")
    render_.add_argument("--prompt", required=True)
    render_.add_argument(
        "--negative-prompt", default="", help='default: "" (unconditional; SDXL: none)'
    )
    render_.add_argument("--seed", type=int, default=0, help="torch.manual_seed noise (default 0)")
    render_.add_argument("--steps", type=int, default=20, help="1 to 150 (default 20)")
    render_.add_argument("--guidance", type=float, default=7.5, help="CFG scale (default 7.5)")
    render_.add_argument(
        "--scheduler",
        help=f"one of {', '.join(SCHEDULERS)} (default: the model's own)",
    )
    for flag, names, text in (
        ("--original-size", ("H", "W"), "SDXL micro-conditioning (default: the image size)"),
        ("--crop", ("TOP", "LEFT"), "SDXL crop top-left (default: 0 0)"),
        ("--target-size", ("H", "W"), "SDXL target size (default: the image size)"),
    ):
        render_.add_argument(flag, type=int, nargs=2, metavar=names, help=text)
    _kernel_path_option(render_)
    _vae_tiles_option(render_)
    _offload_option(render_)
    _memory_budget_option(render_)
    render_.add_argument(
        "--image",
        metavar="FILE",
        help="image to image: start from this picture (PNG, JPEG, WebP, GIF, BMP), "
        "fitted to the model's size (scaled to cover, centred, cropped)",
    )
    render_.add_argument(
        "--mask",
        metavar="FILE",
        help="inpainting (with --image): white where the picture is repainted, fitted as the image",
    )
    render_.add_argument(
        "--strength",
        type=float,
        help="how much of the picture is repainted, 0 < S <= 1 (default: image to image 0.8, "
        "inpainting 1 for SD 1.5 and 0.9999 for SDXL)",
    )
    render_.add_argument(
        "--lora",
        action="append",
        metavar="FILE[:SCALE]",
        help="merge this LoRA (.safetensors, diffusers/PEFT or kohya keys) into the weights "
        "at SCALE (default 1); repeat for several",
    )
    render_.add_argument("--out", required=True, help="the PNG to write")


def _add_check(sub: _Subparsers) -> None:
    check = sub.add_parser("check", help="run a runtime-check build in headless Chromium (WebGPU)")
    check.add_argument("dir", help="a directory written by `wsd-compile check`")
    check.add_argument(
        "--tolerance", type=float, default=CHECK_TOLERANCE, help="max abs error allowed"
    )


def _add_bench(sub: _Subparsers) -> None:
    bench = sub.add_parser(
        "bench",
        help="benchmark a build on this machine's WebGPU (Node + Dawn)",
        description="Times the text encoder, one UNet step, one scheduler step, the VAE "
        "decode and a whole generation with the page's runtime and pipeline in Node + Dawn, "
        "with Dawn's robustness on and off; per-kernel GPU times from timestamp queries. "
        "Prints a table; --json writes every figure. See docs/benchmarks.md.",
    )
    bench.add_argument("dir", help="a directory written by wsd-compile")
    bench.add_argument("--steps", type=int, default=20, help="steps of the generation (20)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed runs per stage (3)")
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per stage (10)")
    bench.add_argument(
        "--robustness",
        choices=("on", "off", "both"),
        default="both",
        help="Dawn's shader robustness: on (as browsers), off (disable_robustness), both",
    )
    bench.add_argument(
        "--random-weights",
        type=int,
        metavar="SEED",
        help="generate the weights from SEED instead of reading the shards",
    )
    bench.add_argument(
        "--no-profile", action="store_true", help="skip the per-kernel timestamp profile"
    )
    bench.add_argument(
        "--swiftshader", action="store_true", help="run on SwiftShader (the CPU), for smoke tests"
    )
    _kernel_path_option(bench)
    _vae_tiles_option(bench)
    _offload_option(bench, "; the stage timings keep every weight on the GPU")
    _memory_budget_option(bench)
    bench.add_argument(
        "--tvmjs-dispatch",
        action="store_true",
        help="dispatch with tvmjs' own dispatch (a bind group made at every dispatch) "
        "instead of kept bindings, to measure what they save",
    )
    bench.add_argument("--json", metavar="FILE", help="also write the reports as a JSON list")


def _add_soak(sub: _Subparsers) -> None:
    soak = sub.add_parser(
        "soak",
        help="run many generations in one loaded runtime and check the GPU memory they leave",
        description="Loads the build once in Node + Dawn with the page's runtime and pipeline, "
        "then runs N generations in that one process, cycling through varied prompts and every "
        "scheduler the page offers for the build, a new seed each. Records after each the GPU "
        "bytes tvmjs holds; fails (exit 1) on an error or when what is held after the last "
        "generation exceeds what was held after the first by more than --tolerance-bytes. "
        "Prints a summary; --out writes the report. See docs/memory.md.",
    )
    soak.add_argument("dir", help="a directory written by wsd-compile")
    soak.add_argument("--generations", type=int, default=100, help="generations to run (100)")
    soak.add_argument("--steps", type=int, default=20, help="steps of each generation (20)")
    soak.add_argument(
        "--seed", type=int, default=0, help="the first generation's seed; then +1 each (0)"
    )
    soak.add_argument(
        "--schedulers",
        type=_names,
        metavar="NAME,...",
        help=f"the schedulers to cycle through, in order, of {', '.join(SCHEDULERS)} "
        "(default: every one the page offers for the build)",
    )
    soak.add_argument(
        "--tolerance-bytes",
        type=int,
        default=0,
        metavar="B",
        help="the growth of the GPU bytes held, first generation to last, that passes (0)",
    )
    soak.add_argument(
        "--random-weights",
        type=int,
        metavar="SEED",
        help="generate the weights from SEED instead of reading the shards",
    )
    soak.add_argument(
        "--swiftshader", action="store_true", help="run on SwiftShader (the CPU), for smoke tests"
    )
    _kernel_path_option(soak)
    _vae_tiles_option(soak)
    _offload_option(soak)
    _memory_budget_option(soak)
    soak.add_argument("--out", metavar="FILE", help="also write the report (JSON)")


def _names(text: str) -> list[str]:
    """``--schedulers``' value: names separated by commas."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _kernel_path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kernel-path",
        metavar="NAME",
        help="run the build's kernel path NAME (shader-f16, fp32, ...; the manifest lists them) "
        "or fail (default: the first this GPU can run)",
    )


def _vae_tiles_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vae-tiles",
        choices=VAE_TILES,
        default="auto",
        help="run the VAE in overlapping tiles (on: the build needs vae_tiling; a start "
        "image is encoded in tiles too where the build can), whole (off), or in tiles only "
        "where the GPU cannot bind the whole decoder's (or encoder's) buffers (auto, the default)",
    )


def _offload_option(parser: argparse.ArgumentParser, more: str = "") -> None:
    parser.add_argument(
        "--offload",
        action="store_true",
        help="sequential offload: the text encoders' and the VAE decoder's weights are on the "
        "GPU only while they run (less GPU memory; they are uploaded again every generation)"
        + more,
    )


def _gib(text: str) -> float:
    """``--memory-budget``'s value: a positive number of GiB."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of GiB")
    return value


def _memory_budget_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory-budget",
        type=_gib,
        metavar="GIB",
        help="the GPU memory the model may use, in GiB: a build that cannot fit is refused "
        "before its library and weights are read, and sequential offload (unless --offload) "
        "and tiled VAE decode (with --vae-tiles auto) are chosen to fit",
    )


def _add_report(sub: _Subparsers) -> None:
    report = sub.add_parser(
        "report",
        help="combine benchmark JSON into docs/benchmarks.md with tables and SVG charts",
        description="Combines wsd-web bench results of one or more builds of one model at one "
        "size (robustness on, and off if measured; an fp32 and an fp16 build, say: give "
        "--webgpu once per build) with python -m wsd_capture.bench results (fp32, fp16) into "
        "OUT/benchmarks/NAME.json and its SVG charts, then rewrites OUT/benchmarks.md from "
        "every OUT/benchmarks/*.json. --render-only rewrites only the page and the charts.",
    )
    report.add_argument(
        "--webgpu",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="wsd-web bench results (repeatable: once per build; builds are told apart by "
        "precision and kernel path)",
    )
    report.add_argument(
        "--pytorch", nargs="+", metavar="FILE", help="python -m wsd_capture.bench results"
    )
    report.add_argument(
        "--command",
        dest="bench_command",
        metavar="TEXT",
        help="the exact commands that produced the results",
    )
    report.add_argument("--machine", help="the machine they ran on, in words")
    report.add_argument("--name", help="the result's name under OUT/benchmarks (like sd15-512)")
    report.add_argument("--out-dir", required=True, metavar="OUT", help="the docs directory")
    report.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite the page and the charts from OUT/benchmarks/*.json",
    )


def _origin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages on ORIGIN (scheme://host[:port]) fetch the model (repeatable)",
    )
    parser.add_argument(
        "--connect-src",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let the page fetch a model from ORIGIN with ?model=ORIGIN/... (repeatable)",
    )


def _serve(args: argparse.Namespace) -> int:
    server = make_server(
        args.dir,
        args.host,
        args.port,
        cors_origins=args.cors_origin,
        connect_src=args.connect_src,
    )
    url = server_url(server)
    if not is_loopback(args.host):
        print(
            "wsd-web: warning: browsers give WebGPU, Web Crypto and the Cache API only to "
            "secure contexts (HTTPS or localhost): put HTTPS in front for other machines",
            file=sys.stderr,
            flush=True,
        )
    print(f"Serving {args.dir}: open {url} (Ctrl-C stops)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
    return 0


def _report(args: argparse.Namespace) -> int:
    """``wsd-web report``: write one benchmark result and the page, or only render the page."""
    inputs = {
        "--webgpu": args.webgpu,
        "--pytorch": args.pytorch,
        "--command": args.bench_command,
        "--machine": args.machine,
        "--name": args.name,
    }
    given = [flag for flag, value in inputs.items() if value is not None]
    missing = [flag for flag, value in inputs.items() if value is None]
    if args.render_only and given:
        print(f"wsd-web: report --render-only takes no {', '.join(given)}", file=sys.stderr)
        return 2
    if not args.render_only and missing:
        print(f"wsd-web: report needs {', '.join(missing)} (or --render-only)", file=sys.stderr)
        return 2
    try:
        if args.render_only:
            written = render_docs(args.out_dir)
        else:
            written = write_report(
                args.webgpu,
                args.pytorch,
                command=args.bench_command,
                machine=args.machine,
                name=args.name,
                out_dir=args.out_dir,
            )
    except (BenchReportError, OSError) as e:
        print(f"wsd-web: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def _bench(args: argparse.Namespace) -> int:
    """``wsd-web bench``: run the benchmark, print the table, write the JSON."""
    settings = {"on": (True,), "off": (False,), "both": (True, False)}[args.robustness]
    try:
        reports = run_bench(
            args.dir,
            steps=args.steps,
            warmup=args.warmup,
            repeats=args.repeats,
            robustness=settings,
            random_weights=args.random_weights,
            profile=not args.no_profile,
            swiftshader=args.swiftshader,
            kernel_path=args.kernel_path,
            vae_tiling=args.vae_tiles,
            offload=True if args.offload else None,
            memory_budget=args.memory_budget,
            kept_bindings=not args.tvmjs_dispatch,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(reports, indent=1) + "\n", encoding="utf-8")
    except (BenchError, OSError) as e:
        print(f"wsd-web: {e}", file=sys.stderr)
        return 1
    print(format_table(reports))
    return 0


def _soak(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``wsd-web soak``: run the soak, print its summary, write the report; 1 if it failed."""
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        print(f"wsd-web: --out {out}: {out.parent} is not a directory", file=sys.stderr)
        return 2
    try:
        report = run_soak(
            args.dir,
            generations=args.generations,
            steps=args.steps,
            tolerance_bytes=args.tolerance_bytes,
            seed=args.seed,
            schedulers=args.schedulers,
            random_weights=args.random_weights,
            swiftshader=args.swiftshader,
            kernel_path=args.kernel_path,
            vae_tiling=args.vae_tiles,
            offload=True if args.offload else None,
            memory_budget=args.memory_budget,
            progress=sys.stderr,
        )
        report["command"] = shlex.join(["wsd-web", *argv])
        if out is not None:
            out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except SoakOptionError as e:
        print(f"wsd-web: {e}", file=sys.stderr)
        return 2
    except (SoakError, OSError) as e:
        print(f"wsd-web: {e}", file=sys.stderr)
        return 1
    print(format_summary(report))
    failures = soak_failures(report)
    for line in failures:
        print(f"wsd-web: soak failed: {line}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wsd-web`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "report":
        return _report(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "soak":
        return _soak(args, argv)
    try:
        if args.command in ("serve", "export"):
            for origin in args.cors_origin + args.connect_src:
                try:
                    parse_origin(origin)
                except ValueError as e:
                    print(f"wsd-web: {e}", file=sys.stderr)
                    return 2
        if args.command == "serve":
            return _serve(args)
        if args.command == "export":
            out = export_site(
                args.model,
                args.out,
                cors_origins=args.cors_origin,
                connect_src=args.connect_src,
            )
            print(f"Exported {args.model} with the app to {out}: upload it to a static host")
            return 0
        if args.command == "render":
            check_output(args.out)
            rendering = render(
                args.dir,
                prompt=args.prompt,
                negative_prompt=args.negative_prompt,
                seed=args.seed,
                steps=args.steps,
                guidance=args.guidance,
                scheduler=args.scheduler,
                original_size=args.original_size,
                crops_coords_top_left=args.crop,
                target_size=args.target_size,
                kernel_path=args.kernel_path,
                vae_tiling=args.vae_tiles,
                offload=True if args.offload else None,
                memory_budget=args.memory_budget,
                image=args.image,
                strength=args.strength,
                mask=args.mask,
                loras=[lora_option(spec) for spec in args.lora or []],
            )
            print(json.dumps(write_rendering(rendering, args.out)))
            return 0
        result = run_check(args.dir)
        summary = [{k: v for k, v in fn.items() if k != "output"} for fn in result["functions"]]
        print(json.dumps({**result, "functions": summary}))
        worst = max(fn["maxAbsError"] for fn in result["functions"])
        if worst > args.tolerance:
            print(f"wsd-web: max abs error {worst:.3g} exceeds {args.tolerance:g}", file=sys.stderr)
            return 1
        return 0
    except (FileNotFoundError, HeadlessError, RenderError, SiteError, OSError) as e:
        print(f"wsd-web: {e}", file=sys.stderr)
        return 1
