"""Bad model directories: `wsd-capture sd15|sdxl` and the checks before loading.

Each failure is one line on stderr naming the file or value, exit code 1,
and no capture directory, temporary directory or created parent left behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import save_file
from torch import zeros

from wsd_capture import CaptureError, check_image_size, check_source, write_preset
from wsd_capture.cli import main
from wsd_capture.loading import safetensors_problem

UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_preset("tiny-sdxl", tmp_path_factory.mktemp("preset") / "tiny-sdxl")


@pytest.fixture
def model(preset_dir: Path, tmp_path: Path) -> Path:
    """A copy of tiny-sd15 to damage."""
    return Path(shutil.copytree(preset_dir, tmp_path / "model"))


def _capture(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path, *left: str
) -> str:
    """Run `wsd-capture` into tmp_path/new/capture; return its one line on stderr."""
    out = tmp_path / "new" / "capture"
    assert main([*argv, "--out", str(out)]) == 1
    std, err = capsys.readouterr()
    assert std == ""
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("wsd-capture: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(left)
    return lines[0].removeprefix("wsd-capture: ")


def test_a_missing_unet_weights_file(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model / UNET_WEIGHTS).unlink()
    line = _capture(["sd15", "--model", str(model)], capsys, tmp_path, "model")
    assert line == (
        f"model directory {model} is incomplete: {UNET_WEIGHTS} is missing; "
        "download the full model (all components)"
    )


def test_only_a_variant_of_the_weights_is_named(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model / UNET_WEIGHTS).rename(model / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    line = _capture(["sd15", "--model", str(model)], capsys, tmp_path, "model")
    assert (
        f"{UNET_WEIGHTS} (only the variant diffusion_pytorch_model.fp16.safetensors is there) "
        "is missing" in line
    )


def test_a_truncated_text_encoder(
    sdxl_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Path(shutil.copytree(sdxl_dir, tmp_path / "model"))
    weights = model / "text_encoder_2" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:-1000])
    line = _capture(["sdxl", "--model", str(model)], capsys, tmp_path, "model")
    assert line == (
        f"model directory {model} has a corrupted file: text_encoder_2/model.safetensors is "
        f"truncated ({len(data) - 1000} of {len(data)} bytes); re-download it"
    )


def test_an_sd15_model_given_to_sdxl(
    preset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _capture(["sdxl", "--model", str(preset_dir)], capsys, tmp_path)
    assert line.endswith("use wsd-compile sd15 (compile_sd15) for SD 1.5-class pipelines")


def test_a_size_is_refused_before_loading(
    preset_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded before the size was checked")

    monkeypatch.setattr("wsd_capture.loading.load_pipeline", no_loading)
    argv = ["sd15", "--model", str(preset_dir), "--width", "1024"]
    line = _capture(argv, capsys, tmp_path)
    assert line == (
        "width 1024 is not supported: use a positive multiple of 16 (16, 32, ...; native is 64) "
        "up to 128"
    )


def test_a_taken_output_is_refused_before_loading(
    preset_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded before the output was checked")

    monkeypatch.setattr("wsd_capture.loading.load_pipeline", no_loading)
    (tmp_path / "new" / "capture").mkdir(parents=True)
    (tmp_path / "new" / "capture" / "mine.txt").write_text("keep")
    line = _capture(["sd15", "--model", str(preset_dir)], capsys, tmp_path, "new")
    assert line.endswith("capture already exists and is not empty: choose a new directory")
    assert [p.name for p in (tmp_path / "new" / "capture").iterdir()] == ["mine.txt"]


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["sd15", "--model", "m", "--out", "o", "--height", "big"])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "wsd-capture: argument --height: invalid int value: 'big'; see `wsd-capture sd15 --help`\n"
    )


def test_a_tokenizer_in_the_vocab_and_merges_layout_is_accepted(model: Path) -> None:
    tokenizer = model / "tokenizer"
    (tokenizer / "tokenizer.json").unlink()
    (tokenizer / "vocab.json").write_text("{}")
    (tokenizer / "merges.txt").write_text("#version: 0.2\n")
    check_source(model, "sd15")


def test_sharded_weights_are_checked_shard_by_shard(model: Path) -> None:
    unet = model / "unet"
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    shards = ["diffusion_pytorch_model-00001-of-00002.safetensors", "x-00002-of-00002.safetensors"]
    save_file({"a": zeros(4)}, unet / shards[0])
    index = {"metadata": {}, "weight_map": {"a": shards[0], "b": shards[1]}}
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CaptureError, match=rf"incomplete: unet/{shards[1]} is missing;"):
        check_source(model, "sd15")
    save_file({"b": zeros(8)}, unet / shards[1])
    check_source(model, "sd15")
    data = (unet / shards[1]).read_bytes()
    (unet / shards[1]).write_bytes(data[:-4])
    with pytest.raises(CaptureError, match=rf"corrupted file: unet/{shards[1]} is truncated"):
        check_source(model, "sd15")


def test_a_complete_safetensors_file_has_no_problem(model: Path) -> None:
    assert safetensors_problem(model / UNET_WEIGHTS) is None


def test_the_size_check_reads_only_the_configs(preset_dir: Path, tmp_path: Path) -> None:
    check_image_size(preset_dir, 32, 128)
    with pytest.raises(CaptureError, match="height 72 is not supported"):
        check_image_size(preset_dir, 72, None)
    check_image_size(tmp_path / "nowhere", 72, None)  # loading will say what is wrong
