"""Node + Dawn pointed at SwiftShader: one environment for ``wsd-web bench
--swiftshader`` and the tests that run Dawn without a GPU."""

from __future__ import annotations

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
