"""`wsd-compile sd15`: its failures (a real fp16 build through the command line is
``tests/test_sd15_cli_build.py``, on the build the browser tests share)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wsd_compile.cli import main


def test_an_existing_output_is_left_alone(tmp_path: Path, stderr_line: Callable[[], str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    code = main(["sd15", "--preset", "tiny-sd15", "--out", str(tmp_path)])
    assert code == 1
    assert "already exists; remove it or choose another output directory" in stderr_line()
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_missing_model_directory_is_one_line(
    tmp_path: Path, stderr_line: Callable[[], str]
) -> None:
    code = main(["sd15", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert code == 1
    assert str(tmp_path / "nowhere") in stderr_line()
    assert not (tmp_path / "o").exists()
    assert list(tmp_path.iterdir()) == []


def test_an_unsupported_size_says_which_are_allowed(
    tmp_path: Path, stderr_line: Callable[[], str]
) -> None:
    code = main(["sd15", "--preset", "tiny-sd15", "--out", str(tmp_path / "o"), "--height", "72"])
    assert code == 1
    assert "72" in stderr_line()
    assert list(tmp_path.iterdir()) == []


def test_model_and_preset_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sd15", "--model", "m", "--preset", "tiny-sd15", "--out", "o"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
