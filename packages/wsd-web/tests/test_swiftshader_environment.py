"""Node + Dawn pointed at SwiftShader: one environment for ``wsd-web bench
--swiftshader`` and the tests that run Dawn without a GPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from wsd_web.bench import runner
from wsd_web.bench.runner import BenchError, swiftshader_environment


def test_vulkan_is_pointed_at_swiftshader_and_the_rest_is_kept() -> None:
    base = {"VK_DRIVER_FILES": "/nvidia.json", "LD_LIBRARY_PATH": "/opt/lib", "HOME": "/h"}
    env = swiftshader_environment(base)
    icd = runner.SWIFTSHADER_DIR / "vk_swiftshader_icd.json"
    assert env["VK_ICD_FILENAMES"] == str(icd)
    assert "VK_DRIVER_FILES" not in env
    assert env["LD_LIBRARY_PATH"] == f"{runner.SWIFTSHADER_DIR}:/opt/lib"
    assert env["HOME"] == "/h"
    assert base["VK_DRIVER_FILES"] == "/nvidia.json", "the caller's mapping is not changed"
    assert swiftshader_environment({})["LD_LIBRARY_PATH"] == str(runner.SWIFTSHADER_DIR)


def test_a_missing_swiftshader_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "SWIFTSHADER_DIR", tmp_path)
    with pytest.raises(BenchError, match="install Debian's chromium"):
        swiftshader_environment({})


def test_the_shell_scripts_set_the_same_environment() -> None:
    """``scripts/swiftshader_env.sh`` (sourced by scripts/test.sh and
    ``SWIFTSHADER=1 scripts/gpu_parity.sh``) agrees with the Python helper."""
    script = Path(__file__).parents[3] / "scripts/swiftshader_env.sh"
    base = {
        "VK_DRIVER_FILES": "/nvidia.json",
        "LD_LIBRARY_PATH": "/opt/lib",
        "PATH": "/usr/bin:/bin",
    }
    shown = subprocess.run(
        ["bash", "-c", f'source "{script}" && env'],
        env=base,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    expected = swiftshader_environment(base)
    for key in ("VK_ICD_FILENAMES", "LD_LIBRARY_PATH"):
        assert env[key] == expected[key]
    assert "VK_DRIVER_FILES" not in env
