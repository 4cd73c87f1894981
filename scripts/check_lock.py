"""The Python lockfile, requirements/dev.lock: check it, or write it again.

``python scripts/check_lock.py`` fails (exit 1, one line per problem) when

- a distribution installed in the running environment is not in the lock at
  the locked version, or a locked one is not installed (``--installed`` checks
  only this; scripts/setup.sh uses it to decide whether to install);
- the lock is stale: a requirement that the pyprojects declare (the root's
  ``dev`` group; each package's dependencies, extras and build backend), the
  pins in `PINS`, or a locked distribution's own requirement is not in the lock
  at a version that satisfies it; or the lock holds a distribution that none
  of them needs;
- an entry is not ``name==version`` with at least one ``--hash=sha256:``.

``python scripts/check_lock.py --update`` resolves those requirements again
with ``pip lock`` (for this interpreter and platform) and rewrites the lock.
The four wsd packages are installed editable from the work tree, so they are
not in the lock and not checked.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import platform
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import tomllib
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = Path("requirements/dev.lock")
PACKAGES = ("wsd-artifacts", "wsd-capture", "wsd-compile", "wsd-web")
#: Requirements of the environment beyond the pyprojects: torch pinned (an
#: unpinned torch pulls GBs of CUDA wheels), pip itself (setup installs it first) and
#: what hatchling asks for to build an editable install (get_requires_for_build_editable).
PINS = ("torch==2.13.0", "pip", "editables")
#: The interpreter and platform the lock is resolved for.
TARGET = ((3, 11), "Linux", "x86_64")
REGENERATE = "python scripts/check_lock.py --update"
REINSTALL = "bash scripts/setup.sh"

HEADER = f"""\
# Every Python distribution scripts/setup.sh installs into .venv, pinned with sha256
# hashes (pip install --require-hashes --no-deps), resolved for CPython 3.11 on Linux
# x86_64 from: the root pyproject's dev group; the dependencies, extras and build
# backends of packages/*/pyproject.toml (the packages themselves are installed
# editable, with --no-deps); {", ".join(PINS)}.
# Written by `{REGENERATE}` (pip lock): run it after changing any of
# those, and commit this file. Do not edit it by hand.
"""


class LockError(Exception):
    """The lock file cannot be read."""


@dataclass(frozen=True)
class Locked:
    name: NormalizedName
    version: Version
    hashes: tuple[str, ...]


def read_lock(path: Path) -> dict[NormalizedName, Locked]:
    """The entries of a ``name==version --hash=sha256:...`` requirements file."""
    entries: dict[NormalizedName, Locked] = {}
    for number, line in _logical_lines(path.read_text()):
        fields = line.split()
        try:
            req = Requirement(fields[0])
        except InvalidRequirement as e:
            raise LockError(f"{path}:{number}: {fields[0]!r} is not a requirement ({e})") from e
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or req.marker or req.extras:
            raise LockError(f"{path}:{number}: {fields[0]} is not pinned as name==version")
        hashes = tuple(f.removeprefix("--hash=") for f in fields[1:] if f.startswith("--hash="))
        if len(hashes) != len(fields) - 1 or not hashes:
            raise LockError(f"{path}:{number}: {req.name} needs --hash=sha256:... and nothing else")
        if not all(h.startswith("sha256:") and len(h) == 7 + 64 for h in hashes):
            raise LockError(f"{path}:{number}: {req.name} has a hash that is not sha256")
        name = canonicalize_name(req.name)
        if name in entries:
            raise LockError(f"{path}:{number}: {req.name} is locked twice")
        entries[name] = Locked(name, Version(specs[0].version), hashes)
    return entries


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Non-empty lines without comments, backslash continuations joined, with line numbers."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        joined = " ".join([*pending, line]).strip()
        pending = []
        if joined:
            yield start, joined
    if pending:
        yield start, " ".join(pending).strip()


def declared(root: Path) -> list[tuple[str, Requirement]]:
    """(where, requirement) for everything the lock must cover, our own packages left out."""
    out: list[tuple[str, Requirement]] = []
    project = tomllib.loads((root / "pyproject.toml").read_text())
    for spec in project.get("dependency-groups", {}).get("dev", []):
        out.append(("pyproject.toml [dependency-groups] dev", Requirement(spec)))
    for package in PACKAGES:
        where = f"packages/{package}/pyproject.toml"
        meta = tomllib.loads((root / where).read_text())
        for spec in meta.get("build-system", {}).get("requires", []):
            out.append((f"{where} [build-system]", Requirement(spec)))
        for spec in meta.get("project", {}).get("dependencies", []):
            out.append((where, Requirement(spec)))
        for extra, specs in meta.get("project", {}).get("optional-dependencies", {}).items():
            for spec in specs:
                req = Requirement(spec)
                if req.marker is None or req.marker.evaluate({"extra": extra}):
                    req.marker = None
                    out.append((f"{where} [{extra}]", req))
    out += [("scripts/check_lock.py PINS", Requirement(spec)) for spec in PINS]
    ours = {canonicalize_name(p) for p in PACKAGES}
    return [
        (where, req)
        for where, req in out
        if canonicalize_name(req.name) not in ours
        and (req.marker is None or req.marker.evaluate({"extra": ""}))
    ]


def installed() -> dict[NormalizedName, Version]:
    """Every distribution of the running environment, but our own packages."""
    ours = {canonicalize_name(p) for p in PACKAGES}
    out: dict[NormalizedName, Version] = {}
    for dist in md.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name not in ours:
            out[name] = Version(dist.version)
    return out


def installed_problems(
    lock: Mapping[NormalizedName, Locked], have: Mapping[NormalizedName, Version]
) -> list[str]:
    problems = []
    for name, version in sorted(have.items()):
        entry = lock.get(name)
        if entry is None:
            problems.append(f"{name} {version} is installed but not in the lock")
        elif entry.version != version:
            problems.append(f"{name} is {version} here, the lock says {entry.version}")
    for name, entry in sorted(lock.items()):
        if name not in have:
            problems.append(f"{name}=={entry.version} is locked but not installed")
    return problems


def _requires(name: str, extras: Iterable[str]) -> Iterator[Requirement]:
    """The requirements of installed distribution ``name`` that apply with ``extras``."""
    try:
        specs = md.requires(name) or []
    except md.PackageNotFoundError:
        return
    for spec in specs:
        req = Requirement(spec)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ["", *extras]):
            yield req


def stale_problems(
    lock: Mapping[NormalizedName, Locked], wanted: list[tuple[str, Requirement]]
) -> list[str]:
    """What the lock misses of ``wanted`` and their requirements (read from the installed
    distributions), and what it holds that nothing needs."""
    problems = []
    needed: set[NormalizedName] = set()
    seen: set[tuple[NormalizedName, str]] = set()
    queue = list(wanted)
    while queue:
        where, req = queue.pop(0)
        name = canonicalize_name(req.name)
        entry = lock.get(name)
        if entry is None:
            problems.append(f"{req} ({where}) is not in the lock")
            continue
        if not req.specifier.contains(entry.version, prereleases=True):
            problems.append(f"{req} ({where}) is locked at {entry.version}, which does not fit")
        needed.add(name)
        extras = sorted(req.extras)
        for extra in ["", *extras]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            queue += [(f"required by {name}", r) for r in _requires(name, extras)]
    for name in sorted(set(lock) - needed):
        problems.append(f"{name}=={lock[name].version} is locked but nothing requires it")
    return problems


def target_problems() -> list[str]:
    here = (sys.version_info[:2], platform.system(), platform.machine())
    if here == TARGET:
        return []
    return [f"the lock is for CPython {TARGET[0]} on {TARGET[1]} {TARGET[2]}, this is {here}"]


def check(root: Path, lock_path: Path, *, installed_only: bool = False) -> list[str]:
    """Every problem, each a line; empty when the environment and the lock are right."""
    try:
        lock = read_lock(lock_path)
    except (OSError, LockError) as e:
        return [f"{e}: write the lock with `{REGENERATE}`"]
    problems = target_problems()
    bad = installed_problems(lock, installed())
    problems += [f"{p}: run `{REINSTALL}`" for p in bad]
    if not installed_only and not bad:
        problems += [
            f"{p}: the lock is stale, run `{REGENERATE}`"
            for p in stale_problems(lock, declared(root))
        ]
    return problems


def resolve(root: Path) -> list[Locked]:
    """Run ``pip lock`` on everything `declared` (our packages as editable) for this platform."""
    # The dev group goes by name (--group); the rest as requirement strings.
    wanted = [str(req) for where, req in declared(root) if "dependency-groups" not in where]
    cmd = [sys.executable, "-m", "pip", "lock", "-q", "--group", "dev", "-o", "-", *wanted]
    for package in PACKAGES:
        cmd += ["-e", f"packages/{package}"]
    # An argv list (no shell): this interpreter's pip, our own requirement strings.
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)  # nosec B603
    if done.returncode != 0:
        raise LockError(f"pip lock failed:\n{done.stderr.strip()}")
    entries = []
    for package in tomllib.loads(done.stdout)["packages"]:
        if "directory" in package:
            continue  # one of ours, editable
        wheels = package.get("wheels", [])
        if not wheels or "sdist" in package or "archive" in package:
            raise LockError(f"{package['name']} resolved to no wheel: the lock takes wheels only")
        hashes = tuple(f"sha256:{w['hashes']['sha256']}" for w in wheels)
        entries.append(
            Locked(canonicalize_name(package["name"]), Version(package["version"]), hashes)
        )
    return sorted(entries, key=lambda e: e.name)


def render(entries: Iterable[Locked]) -> str:
    blocks = []
    for e in entries:
        hashes = " \\\n".join(f"    --hash={h}" for h in e.hashes)
        blocks.append(f"{e.name}=={e.version} \\\n{hashes}\n")
    return HEADER + "".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / LOCK, help="the lock file")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root")
    parser.add_argument("--installed", action="store_true", help="only: environment vs lock")
    parser.add_argument("--update", action="store_true", help="resolve and rewrite the lock")
    args = parser.parse_args(argv)
    if args.update:
        try:
            text = render(resolve(args.root))
        except LockError as e:
            print(f"check_lock: {e}", file=sys.stderr)
            return 1
        args.lock.parent.mkdir(parents=True, exist_ok=True)
        args.lock.write_text(text)
        print(f"wrote {args.lock}")
        return 0
    problems = check(args.root, args.lock, installed_only=args.installed)
    for problem in problems:
        print(f"check_lock: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.lock.name}: the environment and the lock match")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
