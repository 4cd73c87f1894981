"""`wsd-compile sd15 --preset tiny-sd15 --precision fp16`: a real fp16 build through
the command line (the one the browser tests share, made by ``_cached_build``), and
what its report and manifest say."""

from __future__ import annotations

import json
from pathlib import Path

from wsd_artifacts import load_manifest, load_tensor_cache_index, verify

from .conftest import cli_report


def test_fp16_build_of_the_preset(tiny_sd15_fp16_build: Path) -> None:
    out = tiny_sd15_fp16_build
    report = json.loads(cli_report(out).read_text())
    assert report["directory"] == str(out) and report["kind"] == "sd15"
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
