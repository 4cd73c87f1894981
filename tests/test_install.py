"""Use from another project: a fresh virtual environment gets wsd-compile (and what it
needs) from the monorepo with pip, as a user would, and a script outside the
repository calls ``compile_sdxl`` on the tiny preset.

pip resolves everything itself (the monorepo's three packages are given as
paths, their other dependencies come from the configured package index);
torch is pinned first, as the README says. The tvmjs runtime objects are the
per-user cache every wsd-compile shares (built on first use).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("wsd-artifacts", "wsd-capture", "wsd-compile")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import wsd_compile
    from wsd_compile import CompiledPipeline, compile_sdxl

    built = compile_sdxl(preset="tiny-sdxl", out_dir=sys.argv[1])
    assert isinstance(built, CompiledPipeline)
    print(json.dumps({
        "module": wsd_compile.__file__,
        "out_dir": str(built.out_dir),
        "kind": built.manifest["kind"],
        "wasm_bytes": built.wasm_bytes,
        "weight_bytes": built.weight_bytes,
        "files": sorted(built.manifest["files"]),
    }))
    """
)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("user-env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, timeout=1200)
    subprocess.run(
        [*pip, *(str(ROOT / "packages" / name) for name in PACKAGES)], check=True, timeout=1200
    )
    return env_dir


def user_env() -> dict[str, str]:
    """The environment without anything that points at this checkout."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_compile_sdxl_from_a_fresh_environment(venv: Path, tmp_path: Path) -> None:
    project = tmp_path / "someone-elses-project"
    project.mkdir()
    (project / "build_model.py").write_text(SCRIPT)
    out = project / "web" / "tiny-sdxl"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "build_model.py", str(out)],
        cwd=project,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # The installed package, not this checkout, did the work.
    assert Path(report["module"]).is_relative_to(venv)
    assert report["kind"] == "sdxl"
    assert {"model.wasm", "tokenizer.json", "tokenizer_2.json", "tensor-cache.json"} <= set(
        report["files"]
    )
    verify = subprocess.run(
        [str(venv / "bin" / "wsd-artifacts"), "verify", str(out)],
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    cli = subprocess.run(
        [str(venv / "bin" / "wsd-compile"), "sdxl", "--help"],
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and "--preset" in cli.stdout
