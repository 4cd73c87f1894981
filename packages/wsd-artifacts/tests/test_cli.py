"""The ``wsd-artifacts`` command: output and exit codes."""

from __future__ import annotations

import json
import shutil
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


def _break(root: Path) -> tuple[str, int]:
    """Delete the wasm, add a file, truncate a shard; return the shard's name and old size."""
    (root / "model.wasm").unlink()
    (root / "stray.txt").write_text("x")
    shard = root / load_tensor_cache_index(root).shards[0].data_path
    data = shard.read_bytes()
    shard.write_bytes(data[:-1])
    return shard.name, len(data)


def test_ok_exits_0_with_a_summary(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(built)]) == 0
    out, err = capsys.readouterr()
    build_id = json.loads((built / MANIFEST_NAME).read_text())["build_id"]
    assert out == f"{built}: ok, 7 files match build {build_id}\n"
    assert err == ""


def test_problems_exit_1_one_line_each(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shard, size = _break(built)
    assert main(["verify", str(built)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "missing model.wasm: listed in the manifest, not on disk",
        "extra stray.txt: not listed in the manifest",
        f"corrupted {shard}: size: expected {size} bytes, found {size - 1}",
        f"{built}: 3 problems in 7 files (1 missing, 1 extra, 1 corrupted)",
    ]
    assert err == ""


def test_one_problem_is_singular(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (built / "stray.txt").write_text("x")
    assert main(["verify", str(built)]) == 1
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .endswith(": 1 problem in 7 files (0 missing, 1 extra, 0 corrupted)")
    )


def test_json_output(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shard, _ = _break(built)
    assert main(["verify", "--json", str(built)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["checked"] == 7
    assert doc["missing"] == [
        {"path": "model.wasm", "reason": "listed in the manifest, not on disk"}
    ]
    assert doc["extra"] == [{"path": "stray.txt", "reason": "not listed in the manifest"}]
    assert [p["path"] for p in doc["corrupted"]] == [shard]


def test_json_output_when_ok(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(built), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_an_unreadable_manifest_exits_2_with_one_line(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(model_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"wsd-artifacts: {model_dir / MANIFEST_NAME} does not exist")


def test_an_invalid_manifest_exits_2_naming_the_field(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((built / MANIFEST_NAME).read_text())
    manifest["kind"] = "sd3"
    (built / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert main(["verify", "--json", str(built)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert 'kind: expected one of "sd15", "sdxl", got "sd3"' in err
    assert err.endswith("; rebuild the model with wsd-compile\n")


@pytest.mark.parametrize("argv", [[], ["verify"], ["verify", "a", "b"], ["check", "a"], ["-x"]])
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("wsd-artifacts: ")
    assert err.endswith("see `wsd-artifacts --help`\n")


def test_help_documents_output_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "verify DIR",
        "--json",
        "exit status:",
        "0  every file",
        "1  problems",
        "2  usage",
    ):
        assert text in out


def test_verify_help_lists_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "--json" in capsys.readouterr().out


def test_python_m_runs_the_command(built: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wsd_artifacts", "verify", str(built)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert ": ok, 7 files match build" in done.stdout


def test_the_console_script_is_installed(built: Path) -> None:
    script = shutil.which("wsd-artifacts", path=str(Path(sys.executable).parent))
    assert script is not None, "run pip install -e packages/wsd-artifacts"
    (built / "stray.txt").write_text("x")
    done = subprocess.run([script, "verify", str(built)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "extra stray.txt: not listed in the manifest" in done.stdout
