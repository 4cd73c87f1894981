"""wsd-artifacts: check compiled model directories.

commands:
  verify DIR   check every file of DIR against DIR/manifest.json: sizes and
               sha384 of all listed files, files not listed, and each weight
               shard against the integrity in the weights index.

verify output (stdout), one line per problem, then one summary line:
  missing PATH: REASON      listed but not on disk
  extra PATH: REASON        on disk but not listed in the manifest
  corrupted PATH: REASON    another size or sha384 than recorded
  DIR: ok, N files match build BUILD_ID
  DIR: P problems in N files (M missing, E extra, C corrupted)
With --json, one JSON object instead: {"directory", "build_id", "ok",
"checked", "missing", "extra", "corrupted"}, each problem {"path", "reason"}.

exit status:
  0  every file matches the manifest
  1  problems found (listed on stdout)
  2  usage error, or the manifest is missing, unreadable or invalid
     (one line on stderr: what was wrong and what to do)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

from .errors import ManifestError
from .verification import VerifyReport, verify

PROG = "wsd-artifacts"
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: {message}; see `{PROG} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser ``main`` uses; tests/test_docs.py checks the documented commands with it."""
    parser = _Parser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser(
        "verify",
        help="check a model directory against its manifest",
        description="Check every file of DIR against DIR/manifest.json. "
        "Exit 0 when all match, 1 when there are problems, 2 when the manifest "
        "cannot be read.",
    )
    check.add_argument("directory", metavar="DIR", help="a compiled model directory")
    check.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return parser


def _summary(report: VerifyReport) -> str:
    if report.ok:
        return f"{report.directory}: ok, {report.checked} files match build {report.build_id}"
    total = len(report.missing) + len(report.extra) + len(report.corrupted)
    return (
        f"{report.directory}: {total} problem{'s' * (total != 1)} in {report.checked} files "
        f"({len(report.missing)} missing, {len(report.extra)} extra, "
        f"{len(report.corrupted)} corrupted)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wsd-artifacts`` command."""
    args = build_parser().parse_args(argv)
    try:
        report = verify(args.directory)
    except ManifestError as e:
        hint = "; rebuild the model with wsd-compile" if e.problems else ""
        print(f"{PROG}: {e}{hint}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        for category, path, reason in report.problems():
            print(f"{category} {path}: {reason}")
        print(_summary(report))
    return EXIT_OK if report.ok else EXIT_PROBLEMS
