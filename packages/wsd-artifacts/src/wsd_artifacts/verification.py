"""Checking a compiled model directory against its manifest, file by file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ArtifactError
from .integrity import sri_sha384_file
from .library import build_stamp_problems
from .manifest import list_files, load_manifest
from .tensor_cache import load_tensor_cache_index

Problem = tuple[str, str]
"""A problem with one file: ``(path relative to the model directory, reason)``."""


@dataclass
class VerifyReport:
    """What :func:`verify` found; every problem, not only the first.

    ``missing``: listed (in the manifest or the weights index) but not on
    disk. ``extra``: on disk but not listed in the manifest. ``corrupted``:
    present but with another size or sha384 than recorded.
    """

    directory: Path
    build_id: str
    checked: int = 0
    """How many files the manifest lists."""
    missing: list[Problem] = field(default_factory=list)
    extra: list[Problem] = field(default_factory=list)
    corrupted: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file is missing, extra or corrupted."""
        return not (self.missing or self.extra or self.corrupted)

    def problems(self) -> list[tuple[str, str, str]]:
        """Every problem as ``(category, path, reason)``: missing, then extra, then corrupted."""
        return [
            (category, path, reason)
            for category, found in (
                ("missing", self.missing),
                ("extra", self.extra),
                ("corrupted", self.corrupted),
            )
            for path, reason in found
        ]

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data (what ``wsd-artifacts verify --json`` prints)."""
        return {
            "directory": str(self.directory),
            "build_id": self.build_id,
            "ok": self.ok,
            "checked": self.checked,
            **{
                category: [{"path": p, "reason": r} for p, r in found]
                for category, found in (
                    ("missing", self.missing),
                    ("extra", self.extra),
                    ("corrupted", self.corrupted),
                )
            },
        }


class _Files:
    """Sizes and hashes of files under a root, each file hashed at most once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[int, str] | str] = {}

    def measure(self, rel: str) -> tuple[int, str] | str:
        """``(bytes, integrity)`` of ``rel``, or the reason it cannot be read."""
        if rel not in self._cache:
            path = self.root / rel
            try:
                self._cache[rel] = (path.stat().st_size, sri_sha384_file(path))
            except OSError as e:
                self._cache[rel] = f"cannot be read ({e.strerror or e})"
        return self._cache[rel]


def _mismatch(found: tuple[int, str], nbytes: int, integrity: str | None) -> str | None:
    size, sri = found
    if size != nbytes:
        return f"size: expected {nbytes} bytes, found {size}"
    if integrity is not None and sri != integrity:
        return f"sha384: expected {integrity}, found {sri}"
    return None


def verify(model_dir: str | Path) -> VerifyReport:
    """Check every file of ``model_dir`` against its manifest and its weights index.

    Recomputes each listed file's size and sha384, reports files on disk that
    the manifest does not list, and checks each weight shard against the
    ``integrity`` that ``tensor-cache.json`` records for it. Raises
    :class:`ManifestError` if the manifest itself cannot be read or is invalid.
    """
    root = Path(model_dir)
    manifest = load_manifest(root)
    report = VerifyReport(root, manifest["build_id"])
    listed: dict[str, Any] = manifest["files"]
    on_disk = set(list_files(root))
    files = _Files(root)
    reported: set[str] = set()

    for rel, record in listed.items():
        if rel not in on_disk:
            report.missing.append((rel, "listed in the manifest, not on disk"))
            reported.add(rel)
            continue
        found = files.measure(rel)
        if isinstance(found, str):
            reason: str | None = found
        else:
            reason = _mismatch(found, record["bytes"], record["integrity"])
        if reason is not None:
            report.corrupted.append((rel, reason))
            reported.add(rel)
    report.checked = len(listed)
    report.extra = [(rel, "not listed in the manifest") for rel in sorted(on_disk - set(listed))]
    if manifest["library"] not in reported:
        # The library's build stamp must name this manifest's build (a mixed deployment otherwise).
        for problem in build_stamp_problems(root, manifest):
            path, _, reason = problem.partition(": ")
            if path == "build_id" and manifest["weights"] in reported:
                continue  # follows from the corrupted weights index, reported above
            report.corrupted.append((path, reason))

    weights = PurePosixPath(manifest["weights"])
    if str(weights) in reported:
        return report  # its shards are checked against the manifest above
    try:
        cache = load_tensor_cache_index(root / weights.parent)
    except ArtifactError as e:
        report.corrupted.append((str(weights), f"not a readable tensor-cache index: {e}"))
        return report
    for shard in cache.shards:
        rel = (weights.parent / shard.data_path).as_posix()
        if rel in reported:
            continue
        if rel not in on_disk:
            report.missing.append((rel, f"listed in {weights}, not on disk"))
            continue
        found = files.measure(rel)
        if isinstance(found, str):
            report.corrupted.append((rel, found))
            continue
        reason = _mismatch(found, shard.nbytes, shard.integrity or None)
        if reason is not None:
            report.corrupted.append((rel, f"does not match {weights}: {reason}"))
    return report
