"""`wsd-artifacts verify`: every problem in one run, and one line for an unreadable manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wsd_artifacts import MANIFEST_NAME, load_tensor_cache_index, write_manifest
from wsd_artifacts.cli import main


@pytest.fixture
def built(model_dir: Path, body: dict[str, Any]) -> Path:
    write_manifest(model_dir, body)
    return model_dir


def _damage_four_ways(root: Path) -> dict[str, str]:
    """Delete a shard, add a file, flip a byte in a shard, truncate the tokenizer.

    Returns what `verify` should print for each, by path.
    """
    first, second, *_ = [s.data_path for s in load_tensor_cache_index(root).shards]
    (root / first).unlink()
    (root / "notes.txt").write_text("left behind")
    shard = root / second
    data = bytearray(shard.read_bytes())
    data[3] ^= 0x01
    shard.write_bytes(bytes(data))
    tokenizer = root / "tokenizer.json"
    size = tokenizer.stat().st_size
    tokenizer.write_bytes(tokenizer.read_bytes()[:-5])
    return {
        first: f"missing {first}: listed in the manifest, not on disk",
        "notes.txt": "extra notes.txt: not listed in the manifest",
        second: f"corrupted {second}: sha384: expected sha384-",
        "tokenizer.json": (
            f"corrupted tokenizer.json: size: expected {size} bytes, found {size - 5}"
        ),
    }


def test_all_four_problems_are_listed_in_one_run(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _damage_four_ways(built)
    assert main(["verify", str(built)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    *problems, summary = out.splitlines()
    assert len(problems) == 4
    first, notes, second, tokenizer = expected.values()
    assert problems[0] == first
    assert problems[1] == notes
    # Corrupted files come in the manifest's order; the flipped byte keeps the size.
    assert tokenizer in problems[2:]
    (flipped,) = [line for line in problems[2:] if line != tokenizer]
    assert flipped.startswith(second) and ", found sha384-" in flipped
    assert summary == f"{built}: 4 problems in 7 files (1 missing, 1 extra, 2 corrupted)"


def test_all_four_problems_are_in_the_json_report(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _damage_four_ways(built)
    assert main(["verify", "--json", str(built)]) == 1
    doc = json.loads(capsys.readouterr().out)
    paths = [
        problem["path"]
        for category in ("missing", "extra", "corrupted")
        for problem in doc[category]
    ]
    assert sorted(paths) == sorted(expected)
    assert doc["ok"] is False


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("wsd-artifacts: ")
    return lines[0]


def test_a_missing_manifest_is_one_line(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (built / MANIFEST_NAME).unlink()
    assert main(["verify", str(built)]) == 2
    assert _one_line(capsys) == (
        f"wsd-artifacts: {built / MANIFEST_NAME} does not exist: is {built} a compiled model "
        "directory? Build it with wsd-compile"
    )


def test_a_missing_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert _one_line(capsys) == (
        f"wsd-artifacts: {tmp_path / 'nowhere'} does not exist or is not a directory; "
        "check the path"
    )


@pytest.mark.parametrize(
    ("garbage", "says"),
    [
        (b'{"kind": "sd15", "files": ', "is not valid JSON ("),
        (b"", "is not valid JSON ("),
        (bytes(range(256)), "cannot be read ("),
        (b"[1, 2]", "invalid manifest: (top level): expected an object, got an array"),
    ],
)
def test_a_garbled_manifest_is_one_line(
    garbage: bytes, says: str, built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (built / MANIFEST_NAME).write_bytes(garbage)
    assert main(["verify", str(built)]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"wsd-artifacts: {built / MANIFEST_NAME}")
    assert says in line


def test_a_manifest_missing_its_fields_names_them_on_one_line(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (built / MANIFEST_NAME).write_text(json.dumps({"manifest_version": 1}))
    assert main(["verify", "--json", str(built)]) == 2
    line = _one_line(capsys)
    assert "invalid manifest: " in line
    assert "files" in line and "build_id" in line
    assert line.endswith("; rebuild the model with wsd-compile")


def test_the_command_has_no_traceback_for_a_garbled_manifest(built: Path) -> None:
    (built / MANIFEST_NAME).write_text("{oops")
    done = subprocess.run(
        [sys.executable, "-m", "wsd_artifacts", "verify", str(built)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert "manifest.json is not valid JSON" in done.stderr
