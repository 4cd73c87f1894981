"""``wsd-web``: serve a build to a browser, or run it headless.

Exit code 0 on success; on failure non-zero with one line on stderr that
says what was wrong and what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence

from .headless import HeadlessError, run_check
from .server import make_server, server_url

#: fp32 outputs further than this from numpy fail `wsd-web check`.
CHECK_TOLERANCE = 1e-4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsd-web", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the app with a model build over HTTP")
    serve.add_argument("dir", help="a directory written by wsd-compile")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: localhost only)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    check = sub.add_parser("check", help="run a runtime-check build in headless Chromium (WebGPU)")
    check.add_argument("dir", help="a directory written by `wsd-compile check`")
    check.add_argument(
        "--tolerance", type=float, default=CHECK_TOLERANCE, help="max abs error allowed"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wsd-web`` command."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            server = make_server(args.dir, args.host, args.port)
            url = server_url(server)
            print(
                f"Serving {args.dir} at {url} (runtime check: {url}check.html); Ctrl-C stops",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                server.serve_forever()
            return 0
        result = run_check(args.dir)
        summary = [{k: v for k, v in fn.items() if k != "output"} for fn in result["functions"]]
        print(json.dumps({**result, "functions": summary}))
        worst = max(fn["maxAbsError"] for fn in result["functions"])
        if worst > args.tolerance:
            print(f"wsd-web: max abs error {worst:.3g} exceeds {args.tolerance:g}", file=sys.stderr)
            return 1
        return 0
    except (FileNotFoundError, HeadlessError, OSError) as e:
        print(f"wsd-web: {e}", file=sys.stderr)
        return 1
