"""verify: every file against the manifest and every shard against the weights index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wsd_artifacts import (
    INDEX_NAME,
    MANIFEST_NAME,
    ManifestError,
    compute_build_id,
    library_code_integrity,
    load_tensor_cache_index,
    sri_sha384_bytes,
    stamp_library,
    verify,
    write_manifest,
)


@pytest.fixture
def built(model_dir: Path, body: dict[str, Any]) -> Path:
    """``model_dir`` with its manifest written."""
    write_manifest(model_dir, body)
    return model_dir


def _shards(root: Path) -> list[str]:
    return [s.data_path for s in load_tensor_cache_index(root).shards]


def _flip_byte(path: Path, at: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _rewrite_manifest(root: Path, edit: Any) -> None:
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    edit(manifest)
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_an_intact_directory_is_ok(built: Path) -> None:
    report = verify(built)
    assert report.ok
    assert report.problems() == []
    assert report.checked == 3 + len(_shards(built))
    assert report.build_id == json.loads((built / MANIFEST_NAME).read_text())["build_id"]


def test_a_flipped_byte_in_a_shard_is_corrupted(built: Path) -> None:
    shard = _shards(built)[1]
    _flip_byte(built / shard)
    report = verify(built)
    assert not report.ok
    assert [p for p, _ in report.corrupted] == [shard]
    reason = report.corrupted[0][1]
    assert reason.startswith("sha384: expected sha384-")
    assert f"found {sri_sha384_bytes((built / shard).read_bytes())}" in reason
    assert report.missing == report.extra == []


def test_a_truncated_file_is_corrupted(built: Path) -> None:
    wasm = built / "model.wasm"
    size = wasm.stat().st_size
    wasm.write_bytes(wasm.read_bytes()[:-7])
    assert verify(built).corrupted == [
        ("model.wasm", f"size: expected {size} bytes, found {size - 7}")
    ]


def test_a_deleted_file_is_missing(built: Path) -> None:
    (built / "tokenizer.json").unlink()
    assert verify(built).missing == [("tokenizer.json", "listed in the manifest, not on disk")]


def test_an_unlisted_file_is_extra(built: Path) -> None:
    (built / "sub").mkdir()
    (built / "sub" / "stray.bin").write_bytes(b"x")
    assert verify(built).extra == [("sub/stray.bin", "not listed in the manifest")]


def test_every_problem_is_reported_in_one_report(built: Path) -> None:
    first, second, *_ = _shards(built)
    _flip_byte(built / first)
    tokenizer = built / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:-1])
    (built / second).unlink()
    (built / "model.wasm").unlink()
    (built / "notes.txt").write_text("left behind")
    (built / ".DS_Store").write_bytes(b"\0")

    report = verify(built)
    assert not report.ok
    assert sorted(p for p, _ in report.missing) == sorted([second, "model.wasm"])
    assert report.extra == [
        (".DS_Store", "not listed in the manifest"),
        ("notes.txt", "not listed in the manifest"),
    ]
    assert sorted(p for p, _ in report.corrupted) == sorted([first, "tokenizer.json"])
    assert len(report.problems()) == 6


def _restamp(built: Path, m: dict[str, Any]) -> None:
    """Give manifest ``m`` and the library the build id of the (changed) weights index."""
    library = built / "model.wasm"
    m["build_id"] = compute_build_id(
        library_code_integrity(library), m["files"][INDEX_NAME]["integrity"]
    )
    stamp_library(library, {"build_id": m["build_id"], "runtime": m["runtime"]})
    m["files"]["model.wasm"] = {
        "bytes": library.stat().st_size,
        "integrity": sri_sha384_bytes(library.read_bytes()),
    }


def test_a_shard_is_checked_against_the_index_integrity(built: Path) -> None:
    shard = _shards(built)[0]
    index = json.loads((built / INDEX_NAME).read_text())
    index["records"][0]["integrity"] = sri_sha384_bytes(b"another build")
    (built / INDEX_NAME).write_text(json.dumps(index))

    def relist_index(m: dict[str, Any]) -> None:
        record = {
            "bytes": (built / INDEX_NAME).stat().st_size,
            "integrity": sri_sha384_bytes((built / INDEX_NAME).read_bytes()),
        }
        m["files"][INDEX_NAME] = record
        _restamp(built, m)

    _rewrite_manifest(built, relist_index)
    report = verify(built)
    assert [p for p, _ in report.corrupted] == [shard]
    assert report.corrupted[0][1].startswith(
        "does not match tensor-cache.json: sha384: expected sha384-"
    )


def test_a_shard_absent_from_manifest_and_disk_is_missing_per_the_index(built: Path) -> None:
    shard = _shards(built)[2]
    (built / shard).unlink()
    _rewrite_manifest(built, lambda m: m["files"].pop(shard))
    assert verify(built).missing == [(shard, "listed in tensor-cache.json, not on disk")]


def test_an_unlisted_shard_is_extra_and_still_checked_against_the_index(built: Path) -> None:
    shard = _shards(built)[0]
    _flip_byte(built / shard)
    _rewrite_manifest(built, lambda m: m["files"].pop(shard))
    report = verify(built)
    assert report.extra == [(shard, "not listed in the manifest")]
    assert [p for p, _ in report.corrupted] == [shard]
    assert "does not match tensor-cache.json" in report.corrupted[0][1]


def test_a_corrupted_index_is_reported_once(built: Path) -> None:
    _flip_byte(built / INDEX_NAME, at=0)
    report = verify(built)
    assert [p for p, _ in report.corrupted] == [INDEX_NAME]
    assert report.corrupted[0][1].startswith("sha384: expected")


def test_an_unparsable_index_that_matches_the_manifest_is_reported(built: Path) -> None:
    (built / INDEX_NAME).write_text("[]")

    def relist_index(m: dict[str, Any]) -> None:
        m["files"][INDEX_NAME] = {"bytes": 2, "integrity": sri_sha384_bytes(b"[]")}
        _restamp(built, m)

    _rewrite_manifest(built, relist_index)
    report = verify(built)
    assert [p for p, _ in report.corrupted] == [INDEX_NAME]
    assert report.corrupted[0][1].startswith("not a readable tensor-cache index: ")


def test_a_listed_path_that_is_a_directory_is_missing(built: Path) -> None:
    (built / "tokenizer.json").unlink()
    (built / "tokenizer.json").mkdir()
    assert [p for p, _ in verify(built).missing] == ["tokenizer.json"]


def test_an_unreadable_file_is_corrupted(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("wsd_artifacts.verification.sri_sha384_file", refuse)
    report = verify(built)
    assert ("model.wasm", "cannot be read (Permission denied)") in report.corrupted
    assert len(report.corrupted) == report.checked


def test_a_missing_manifest_raises(model_dir: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        verify(model_dir)


def test_the_report_as_json(built: Path) -> None:
    (built / "extra.txt").write_text("x")
    doc = verify(built).to_json()
    assert doc == {
        "directory": str(built),
        "build_id": doc["build_id"],
        "ok": False,
        "checked": doc["checked"],
        "missing": [],
        "extra": [{"path": "extra.txt", "reason": "not listed in the manifest"}],
        "corrupted": [],
    }
    json.dumps(doc)
