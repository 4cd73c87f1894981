"""`wsd-compile sdxl` and `compile_sdxl`: a real fp16 build, and the failures a user meets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from wsd_artifacts import load_manifest, verify
from wsd_capture import write_preset
from wsd_compile import RuntimeObjects, WsdCompileError, compile_sdxl
from wsd_compile.cli import main


def test_fp16_build_keeps_the_upcast_vae_in_fp32(
    runtime_objects: RuntimeObjects, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny-xl"
    code = main(["sdxl", "--preset", "tiny-sdxl", "--out", str(out), "--precision", "fp16"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["kind"] == "sdxl"
    assert report["image"] == {"height": 64, "width": 64}
    assert verify(out).ok
    manifest = load_manifest(out)
    assert manifest["model"] == {"source": "tiny-sdxl", "precision": "fp16", "quantize": "none"}
    assert manifest["scheduler"]["class_name"] == "EulerDiscreteScheduler"
    precisions = {name: c["precision"] for name, c in manifest["components"].items()}
    assert precisions == {
        "text_encoder": "fp16",
        "text_encoder_2": "fp16",
        "unet": "fp16",
        "vae_decode": "fp32",
        "vae_encode": "fp32",
    }
    assert manifest["conditioning"]["vae_force_upcast"] is True
    assert manifest["tokenizer_2"]["file"] == "tokenizer_2.json"
    assert (out / "tokenizer_2.json").is_file()
    assert manifest["limits"]["max_buffer_bytes"] > 0


def test_the_default_size_is_the_models_native(tmp_path: Path) -> None:
    with pytest.raises(WsdCompileError, match=r"height 40 is not supported.*16, 32.*native is 64"):
        compile_sdxl(preset="tiny-sdxl", out_dir=tmp_path / "o", height=40)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two tiny presets as diffusers directories (written outside the tests' capture)."""
    root = tmp_path_factory.mktemp("models")
    return {name: write_preset(name, root / name) for name in ("tiny-sd15", "tiny-sdxl")}


def test_an_sd15_model_is_refused_with_the_right_command(
    tmp_path: Path, stderr_line: Callable[[], str], models: dict[str, Path]
) -> None:
    model = models["tiny-sd15"]
    code = main(["sdxl", "--model", str(model), "--out", str(tmp_path / "o")])
    assert code == 1
    line = stderr_line()
    assert "holds a StableDiffusionPipeline, not a StableDiffusionXLPipeline" in line
    assert "wsd-compile sd15" in line
    assert not (tmp_path / "o").exists()


def test_an_sdxl_model_given_to_sd15_points_to_sdxl(
    tmp_path: Path, stderr_line: Callable[[], str], models: dict[str, Path]
) -> None:
    model = models["tiny-sdxl"]
    code = main(["sd15", "--model", str(model), "--out", str(tmp_path / "o")])
    assert code == 1
    assert "use wsd-compile sdxl" in stderr_line()


def test_presets_of_the_other_kind_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WsdCompileError, match="tiny-sd15 is an sd15 preset: use compile_sd15"):
        compile_sdxl(preset="tiny-sd15", out_dir=tmp_path / "o")
    with pytest.raises(SystemExit):
        main(["sdxl", "--preset", "tiny-sd15", "--out", str(tmp_path / "o")])


def test_a_bad_precision_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(WsdCompileError, match="unknown precision 'bf16'"):
        compile_sdxl(preset="tiny-sdxl", out_dir=tmp_path / "o", precision="bf16")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_vae_directory_is_named(tmp_path: Path, models: dict[str, Path]) -> None:
    model = models["tiny-sdxl"]
    with pytest.raises(WsdCompileError, match="nowhere is not a directory: give a diffusers"):
        compile_sdxl(model, out_dir=tmp_path / "o", vae=tmp_path / "nowhere")
    assert not (tmp_path / "o").exists()
