"""`wsd-compile sd15`: a real fp16 build through the command line, and its failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from wsd_artifacts import load_manifest, load_tensor_cache_index, verify
from wsd_compile import RuntimeObjects
from wsd_compile.cli import main


def test_fp16_build_of_the_preset(
    runtime_objects: RuntimeObjects, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny"
    code = main(["sd15", "--preset", "tiny-sd15", "--out", str(out), "--precision", "fp16"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["image"] == {"height": 64, "width": 64}
    assert report["wasm_bytes"] == (out / "model.wasm").stat().st_size
    assert verify(out).ok
    manifest = load_manifest(out)
    assert manifest["model"] == {"source": "tiny-sd15", "precision": "fp16", "quantize": "none"}
    assert manifest["scheduler"]["class_name"] == "PNDMScheduler"
    assert manifest["functions"]["unet"]["inputs"][0]["dtype"] == "float32"
    dtypes = {r.dtype for s in load_tensor_cache_index(out).shards for r in s.records}
    assert "float16" in dtypes
    assert sum(c["param_bytes"] for c in manifest["components"].values()) == report["weight_bytes"]
    # Two kernel paths, one build: fp16 kernels, and fp32 ones for devices without shader-f16.
    assert report["kernel_paths"] == ["shader-f16", "fp32"]
    paths = manifest["kernel_paths"]
    assert [(p["library"], p["requires"], p["widen_f16_weights"]) for p in paths] == [
        ("model.wasm", ["shader-f16"], False),
        ("model-fp32.wasm", [], True),
    ]
    assert "model-fp32.wasm" in manifest["files"]
    assert b"enable f16" not in (out / "model-fp32.wasm").read_bytes()
    # Weights count double in the fp32 path, and the limits are the best path's.
    assert paths[1]["max_buffer_bytes"] >= paths[0]["max_buffer_bytes"]
    assert manifest["limits"]["max_buffer_bytes"] == paths[0]["max_buffer_bytes"]
    # The VAE runs in tiles where a device cannot bind the untiled decoder's or
    # encoder's buffers: their own largest buffers are stated apart.
    assert manifest["vae_tiling"]["encode_function"] == "vae_encode_tile"
    assert all(p["vae_encode_buffer_bytes"] > 0 for p in paths)
    assert all(p["vae_decode_buffer_bytes"] > 0 for p in paths)
    # A task that encodes no image calls no encoder, whole or tiled.
    assert "vae_encode_tile" not in manifest["tasks"]["text-to-image"]
    assert {"vae_encode", "vae_encode_tile"} <= set(manifest["tasks"]["image-to-image"])


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
