"""The `wsd-capture` command line: JSON on success, one line on stderr on failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wsd_capture import load_capture
from wsd_capture.cli import main


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("wsd-capture: ")
    return err[0]


def test_preset_writes_a_pipeline_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["preset", "tiny-sd15", str(tmp_path / "m")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"preset": "tiny-sd15", "directory": str(tmp_path / "m")}
    assert (tmp_path / "m" / "model_index.json").is_file()


def test_sd15_captures_and_saves(
    preset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "capture"
    args = ["sd15", "--model", str(preset_dir), "--out", str(out), "--height", "32"]
    assert main([*args, "--width", "48"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["directory"], report["kind"], report["height"], report["width"]) == (
        str(out),
        "sd15",
        32,
        48,
    )
    assert report["components"] == [
        "text_encoder",
        "unet",
        "vae_decode",
        "vae_decode_tile",
        "vae_encode",
        "vae_encode_tile",
    ]
    assert load_capture(out).metadata.latent_shape == (1, 4, 4, 6)


def test_an_existing_output_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    assert main(["preset", "tiny-sd15", str(tmp_path)]) == 1
    assert "already exists and is not empty: choose a new directory" in _one_error_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_a_size_the_model_cannot_take_is_one_line_with_the_sizes_it_can(
    preset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sd15", "--model", str(preset_dir), "--out", str(tmp_path / "c"), "--height", "50"]
    assert main(args) == 1
    assert "height 50 is not supported: use a positive multiple of 16" in _one_error_line(capsys)
    assert not (tmp_path / "c").exists()


def test_help_documents_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "wsd-capture preset tiny-sd15" in out and "wsd-capture sd15 --model" in out


def test_the_installed_command_fails_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "wsd-capture"
    result = subprocess.run(
        [str(script), "sd15", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"wsd-capture: {tmp_path / 'none'} does not exist: give a diffusers pipeline directory\n"
    )
