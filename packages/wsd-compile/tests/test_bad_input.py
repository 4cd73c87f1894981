"""Bad input to `wsd-compile sd15|sdxl` and `compile_sd15`/`compile_sdxl`: one specific error.

Every case exits non-zero with exactly one line on stderr that names the
problem (the file, the class, the value) and says what to do, and leaves
nothing behind: no output directory, no `.OUT-*` temporary directory beside
it, not even the output's parent directories that the command created. All
of them fail in loading or capture, before any TVM compile.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from wsd_capture import write_preset
from wsd_compile import OutputExistsError, WsdCompileError, compile_sd15, compile_sdxl
from wsd_compile.cli import main

UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
VAE_WEIGHTS = "vae/diffusion_pytorch_model.safetensors"
TEXT_ENCODER_WEIGHTS = "text_encoder/model.safetensors"
DOWNLOAD = "; download the full model (all components)"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny presets as diffusers directories, written once for the module."""
    root = tmp_path_factory.mktemp("models")
    return {kind: write_preset(f"tiny-{kind}", root / kind) for kind in ("sd15", "sdxl")}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty directory for one test's model copy and output."""
    return tmp_path


def _copy(models: dict[str, Path], kind: str, work: Path) -> Path:
    return Path(shutil.copytree(models[kind], work / "model"))


def _out(work: Path) -> Path:
    """An output two levels below directories that do not exist yet."""
    return work / "build" / "web" / "out"


def _untouched(work: Path, *expected: str) -> None:
    """Nothing was written in ``work`` but ``expected`` (no output, temp dir or parent)."""
    assert sorted(p.name for p in work.iterdir()) == sorted(expected)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the command; return its exit code and its one line on stderr."""
    try:
        code = main(argv)
    except SystemExit as e:  # usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert err == lines[0] + "\n"
    assert lines[0].startswith("wsd-compile: ")
    assert "Traceback" not in err
    return code, lines[0].removeprefix("wsd-compile: ")


def _truncate(path: Path, keep: int | None = None) -> int:
    data = path.read_bytes()
    kept = len(data) // 2 if keep is None else keep
    path.write_bytes(data[:kept])
    return len(data)


def _set_index(model: Path, **entries: object) -> None:
    path = model / "model_index.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **entries}))


# --- 1. a model directory that does not exist ---


def test_a_missing_model_directory(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = work / "nowhere"
    code, line = _cli(["sd15", "--model", str(model), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line == f"{model} does not exist: give a diffusers pipeline directory"
    _untouched(work)


def test_a_missing_relative_model_path_is_not_taken_for_a_hub_id(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (work / "models").mkdir()
    monkeypatch.chdir(work)
    code, line = _cli(["sdxl", "--model", "models/sdxl", "--out", "out"], capsys)
    assert code == 1
    assert line == "models/sdxl does not exist: give a diffusers pipeline directory"
    _untouched(work, "models")


def test_a_missing_model_directory_through_the_api(work: Path) -> None:
    with pytest.raises(WsdCompileError, match="nowhere does not exist: give a diffusers"):
        compile_sdxl(work / "nowhere", out_dir=_out(work))
    _untouched(work)


# --- 2. an incomplete model directory ---


def _remove(*relative: str) -> Callable[[Path], None]:
    def remove(model: Path) -> None:
        for path in (model / r for r in relative):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    return remove


def _remove_tokenizer_files(model: Path) -> None:
    for path in (model / "tokenizer").iterdir():
        path.unlink()


INCOMPLETE = [
    ("sd15", _remove("unet"), "unet/ is missing"),
    ("sd15", _remove("vae"), "vae/ is missing"),
    ("sd15", _remove("text_encoder"), "text_encoder/ is missing"),
    ("sd15", _remove("tokenizer"), "tokenizer/ is missing"),
    ("sd15", _remove("scheduler"), "scheduler/ is missing"),
    ("sdxl", _remove("text_encoder_2"), "text_encoder_2/ is missing"),
    ("sd15", _remove("unet/config.json"), "unet/config.json is missing"),
    ("sdxl", _remove("vae/config.json"), "vae/config.json is missing"),
    ("sd15", _remove("text_encoder/config.json"), "text_encoder/config.json is missing"),
    (
        "sd15",
        _remove("scheduler/scheduler_config.json"),
        "scheduler/scheduler_config.json is missing",
    ),
    (
        "sd15",
        _remove_tokenizer_files,
        "tokenizer/tokenizer_config.json and tokenizer/tokenizer.json "
        "(or vocab.json and merges.txt) are missing",
    ),
    ("sd15", _remove(UNET_WEIGHTS), f"{UNET_WEIGHTS} is missing"),
    ("sdxl", _remove(VAE_WEIGHTS), f"{VAE_WEIGHTS} is missing"),
    ("sd15", _remove(TEXT_ENCODER_WEIGHTS), f"{TEXT_ENCODER_WEIGHTS} is missing"),
    ("sdxl", _remove("text_encoder_2/model.safetensors"), "text_encoder_2/model.safetensors is"),
    ("sd15", _remove("unet", VAE_WEIGHTS), f"{VAE_WEIGHTS} and unet/ are missing"),
    ("sd15", lambda m: _set_index(m, vae=[None, None]), "the vae entry of model_index.json is"),
]


@pytest.mark.parametrize(("kind", "damage", "missing"), INCOMPLETE)
def test_an_incomplete_model_names_what_is_missing(
    kind: str,
    damage: Callable[[Path], None],
    missing: str,
    models: dict[str, Path],
    work: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _copy(models, kind, work)
    damage(model)
    code, line = _cli([kind, "--model", str(model), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line.startswith(f"model directory {model} is incomplete: {missing}")
    assert line.endswith(DOWNLOAD)
    _untouched(work, "model")


def test_a_directory_without_model_index(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _copy(models, "sd15", work)
    (model / "model_index.json").unlink()
    code, line = _cli(["sd15", "--model", str(model), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line == (
        f"{model} has no model_index.json: point to a diffusers pipeline directory "
        "(as written by save_pretrained or `wsd-capture preset`)"
    )
    _untouched(work, "model")


def test_an_incomplete_model_through_the_api(models: dict[str, Path], work: Path) -> None:
    model = _copy(models, "sdxl", work)
    (model / UNET_WEIGHTS).unlink()
    with pytest.raises(WsdCompileError, match=f"is incomplete: {UNET_WEIGHTS} is missing;"):
        compile_sdxl(model, out_dir=_out(work))
    _untouched(work, "model")


# --- 3. the wrong architecture ---


def test_an_sdxl_model_given_to_sd15(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = _cli(["sd15", "--model", str(models["sdxl"]), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line == (
        f"{models['sdxl']} holds a StableDiffusionXLPipeline, not a StableDiffusionPipeline: "
        "use wsd-compile sdxl (compile_sdxl) for SDXL pipelines"
    )
    _untouched(work)


def test_an_sd15_model_given_to_sdxl_through_the_api(models: dict[str, Path], work: Path) -> None:
    with pytest.raises(WsdCompileError, match=r"use wsd-compile sd15 \(compile_sd15\)"):
        compile_sdxl(models["sd15"], out_dir=_out(work))
    _untouched(work)


@pytest.mark.parametrize(
    ("kind", "class_name"), [("sd15", "StableDiffusion3Pipeline"), ("sdxl", "FluxPipeline")]
)
def test_another_pipeline_class(
    kind: str,
    class_name: str,
    models: dict[str, Path],
    work: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _copy(models, kind, work)
    _set_index(model, _class_name=class_name)
    code, line = _cli([kind, "--model", str(model), "--out", str(_out(work))], capsys)
    assert code == 1
    expected = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}[kind]
    assert line == (
        f"{model} holds a {class_name}, not a {expected}: wsd compiles only Stable Diffusion "
        "1.5-class (StableDiffusionPipeline) and SDXL (StableDiffusionXLPipeline) models; "
        "point to one of those"
    )
    _untouched(work, "model")


def test_a_model_index_without_a_pipeline_class(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _copy(models, "sd15", work)
    (model / "model_index.json").write_text("[]")
    code, line = _cli(["sd15", "--model", str(model), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line.startswith(f"{model / 'model_index.json'} names no pipeline class (_class_name)")
    _untouched(work, "model")


def test_a_single_file_checkpoint_directory(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = work / "checkpoint"
    model.mkdir()
    (model / "v1-5-pruned.safetensors").write_bytes(b"\0" * 64)
    code, line = _cli(["sd15", "--model", str(model), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line.startswith(
        f"{model} has no model_index.json but holds v1-5-pruned.safetensors, a single-file "
        "checkpoint: convert it with StableDiffusionPipeline.from_single_file(FILE)"
    )
    _untouched(work, "checkpoint")


def test_one_component_instead_of_the_pipeline(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unet = models["sd15"] / "unet"
    code, line = _cli(["sd15", "--model", str(unet), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line.startswith(f"{unet} has no model_index.json: it holds one model (config.json)")
    _untouched(work)


def test_a_weights_file_instead_of_a_directory(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = models["sd15"] / UNET_WEIGHTS
    code, line = _cli(["sd15", "--model", str(weights), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line.startswith(f"{weights} is a file, not a diffusers pipeline directory")
    _untouched(work)


# --- 4. an unsupported resolution ---


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--height", "50"),
        ("--width", "8"),
        ("--height", "0"),
        ("--width", "-64"),
        ("--width", "1000000"),
        ("--height", "144"),
    ],
)
def test_a_size_the_model_cannot_take_lists_the_allowed_ones(
    option: str, value: str, models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sd15", "--model", str(models["sd15"]), "--out", str(_out(work)), option, value]
    code, line = _cli(argv, capsys)
    assert code == 1
    assert line == (
        f"{option.removeprefix('--')} {value} is not supported: use a positive multiple of 16 "
        "(16, 32, ...; native is 64) up to 128"
    )
    _untouched(work)


def test_a_size_is_checked_from_the_configs_before_loading(
    models: dict[str, Path], work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the size must be refused before the pipeline loads")

    monkeypatch.setattr("wsd_capture.loading.load_pipeline", no_loading)
    with pytest.raises(WsdCompileError, match=r"^width 40 is not supported: .* up to 128$"):
        compile_sdxl(models["sdxl"], out_dir=_out(work), width=40)
    _untouched(work)


def test_a_non_integer_size_is_a_one_line_usage_error(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sdxl", "--model", str(models["sdxl"]), "--out", str(_out(work)), "--height", "1e3"]
    code, line = _cli(argv, capsys)
    assert code == 2
    assert line == "argument --height: invalid int value: '1e3'; see `wsd-compile sdxl --help`"
    _untouched(work)


# --- 5. a corrupted safetensors file ---


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(4096))


def _garble_header(path: Path) -> None:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    path.write_bytes(data[:8] + b"#" * length + data[8 + length :])


@pytest.mark.parametrize(
    ("kind", "file", "damage", "problem"),
    [
        ("sd15", UNET_WEIGHTS, _truncate, "is truncated ({half} of {size} bytes)"),
        ("sd15", TEXT_ENCODER_WEIGHTS, _truncate, "is truncated ({half} of {size} bytes)"),
        (
            "sdxl",
            "text_encoder_2/model.safetensors",
            _truncate,
            "is truncated ({half} of {size} bytes)",
        ),
        ("sd15", VAE_WEIGHTS, lambda p: _truncate(p, 0), "is empty"),
        (
            "sd15",
            UNET_WEIGHTS,
            lambda p: _truncate(p, 100),
            "is truncated (its header alone needs {header} bytes, found 100)",
        ),
        (
            "sd15",
            TEXT_ENCODER_WEIGHTS,
            _random_bytes,
            "is not a safetensors file (its first bytes are not a header length)",
        ),
        ("sdxl", VAE_WEIGHTS, _garble_header, "has a garbled header (not valid JSON)"),
        (
            "sd15",
            UNET_WEIGHTS,
            lambda p: p.write_bytes(p.read_bytes() + b"\0"),
            "has 1 byte more than its header describes",
        ),
    ],
)
def test_a_corrupted_weights_file_is_named(
    kind: str,
    file: str,
    damage: Callable[[Path], object],
    problem: str,
    models: dict[str, Path],
    work: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _copy(models, kind, work)
    path = model / file
    size = path.stat().st_size
    header = int.from_bytes(path.read_bytes()[:8], "little") + 8
    damage(path)
    code, line = _cli([kind, "--model", str(model), "--out", str(_out(work))], capsys)
    assert code == 1
    why = problem.format(half=size // 2, size=size, header=header)
    assert line == f"model directory {model} has a corrupted file: {file} {why}; re-download it"
    _untouched(work, "model")


def test_a_corrupted_config_is_named(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _copy(models, "sd15", work)
    (model / "scheduler" / "scheduler_config.json").write_text('{"beta_start": ')
    code, line = _cli(["sd15", "--model", str(model), "--out", str(_out(work))], capsys)
    assert code == 1
    assert line.startswith(
        f"model directory {model} has a corrupted file: scheduler/scheduler_config.json is not "
        "valid JSON ("
    )
    assert line.endswith("; re-download it")
    _untouched(work, "model")


def test_a_corrupted_weights_file_through_the_api(models: dict[str, Path], work: Path) -> None:
    model = _copy(models, "sd15", work)
    _truncate(model / UNET_WEIGHTS)
    with pytest.raises(
        WsdCompileError, match=f"has a corrupted file: {UNET_WEIGHTS} is truncated"
    ) as e:
        compile_sd15(model, out_dir=_out(work))
    assert "\n" not in str(e.value)
    _untouched(work, "model")


def test_a_corrupted_vae_override_is_named(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vae = Path(shutil.copytree(models["sdxl"] / "vae", work / "vae"))
    _truncate(vae / "diffusion_pytorch_model.safetensors")
    argv = ["sdxl", "--model", str(models["sdxl"]), "--out", str(_out(work)), "--vae", str(vae)]
    code, line = _cli(argv, capsys)
    assert code == 1
    assert line.startswith(
        f"VAE directory {vae} has a corrupted file: diffusion_pytorch_model.safetensors is "
        "truncated"
    )
    _untouched(work, "vae")


# --- 6. an output directory that already exists ---


def test_an_existing_output_directory_is_left_alone(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = work / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, line = _cli(["sdxl", "--model", str(models["sdxl"]), "--out", str(out)], capsys)
    assert code == 1
    assert line == f"{out} already exists; remove it or choose another output directory"
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    _untouched(work, "out")


def test_an_existing_output_file_is_left_alone(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = work / "out"
    out.write_text("mine")
    code, line = _cli(["sd15", "--model", str(models["sd15"]), "--out", str(out)], capsys)
    assert code == 1
    assert line == f"{out} already exists; remove it or choose another output directory"
    assert out.read_text() == "mine"
    _untouched(work, "out")


def test_an_output_below_a_file_is_refused(
    models: dict[str, Path], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (work / "file").write_text("mine")
    out = work / "file" / "out"
    code, line = _cli(["sd15", "--model", str(models["sd15"]), "--out", str(out)], capsys)
    assert code == 1
    assert line == (
        f"{work / 'file'} is a file, so {out} cannot be created; choose another output directory"
    )
    _untouched(work, "file")


@pytest.mark.parametrize("compile_kind", [compile_sd15, compile_sdxl])
def test_an_existing_output_directory_through_the_api(
    compile_kind: Callable[..., object], models: dict[str, Path], work: Path
) -> None:
    out = work / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    kind = "sd15" if compile_kind is compile_sd15 else "sdxl"
    with pytest.raises(OutputExistsError, match="already exists; remove it or choose another"):
        compile_kind(models[kind], out_dir=out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    _untouched(work, "out")


def test_the_installed_command_prints_one_line_and_no_traceback(
    models: dict[str, Path], work: Path
) -> None:
    model = _copy(models, "sdxl", work)
    _garble_header(model / TEXT_ENCODER_WEIGHTS)
    script = Path(sys.executable).parent / "wsd-compile"
    done = subprocess.run(
        [str(script), "sdxl", "--model", str(model), "--out", str(_out(work))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"wsd-compile: model directory {model} has a corrupted file: {TEXT_ENCODER_WEIGHTS} "
        "has a garbled header (not valid JSON); re-download it\n"
    )
    _untouched(work, "model")
