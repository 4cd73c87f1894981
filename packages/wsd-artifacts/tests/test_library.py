"""The wsd.build stamp of a model library and how it ties library and manifest together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wsd_artifacts import (
    BUILD_SECTION,
    ArtifactError,
    build_stamp_problems,
    compute_build_id,
    library_code_integrity,
    read_build_info,
    sri_sha384_bytes,
    sri_sha384_file,
    stamp_library,
    strip_build_info,
    write_manifest,
)

HEADER = b"\x00asm\x01\x00\x00\x00"


def _custom(name: str, content: bytes) -> bytes:
    body = bytes([len(name)]) + name.encode() + content
    assert len(body) < 128
    return b"\x00" + bytes([len(body)]) + body


def test_stamping_appends_a_section_and_restamping_replaces_it(tmp_path: Path) -> None:
    lib = tmp_path / "model.wasm"
    code = HEADER + _custom("pad", b"abc")
    lib.write_bytes(code)
    stamp_library(lib, {"build_id": "1" * 16, "runtime": {"tvm": "0.27.0"}})
    first = lib.read_bytes()
    assert first.startswith(code)
    assert read_build_info(first) == {"build_id": "1" * 16, "runtime": {"tvm": "0.27.0"}}
    stamp_library(lib, {"build_id": "2" * 16, "runtime": {"tvm": "0.27.0"}})
    again = lib.read_bytes()
    assert again.count(BUILD_SECTION.encode()) == 1
    assert read_build_info(again) == {"build_id": "2" * 16, "runtime": {"tvm": "0.27.0"}}
    assert strip_build_info(again) == code
    assert library_code_integrity(lib) == sri_sha384_bytes(code)


def test_unstamped_and_non_wasm_bytes_have_no_stamp(tmp_path: Path) -> None:
    assert read_build_info(HEADER + _custom("pad", b"x")) is None
    assert read_build_info(b"<html>404</html>") is None
    assert strip_build_info(b"<html>404</html>") == b"<html>404</html>"
    garbled = HEADER + _custom(BUILD_SECTION, b"[1, 2]")
    with pytest.raises(ArtifactError, match="unreadable"):
        read_build_info(garbled)
    with pytest.raises(ArtifactError, match="unreadable"):
        read_build_info(HEADER + b"\x00\xff\xff")
    text = tmp_path / "model.wasm"
    text.write_text("not wasm")
    with pytest.raises(ArtifactError, match="not a WebAssembly module"):
        stamp_library(text, {"build_id": "1" * 16})


def test_the_written_manifest_and_library_agree(model_dir: Path, body: dict[str, Any]) -> None:
    manifest = write_manifest(model_dir, body)
    assert build_stamp_problems(model_dir, manifest) == []
    other = dict(manifest, build_id="f" * 16, runtime={"tvm": "0.28.0"})
    problems = build_stamp_problems(model_dir, other)
    assert any(
        f"belongs to build {manifest['build_id']}, the manifest to build" in p for p in problems
    )
    assert any("linked with runtime {'tvm': '0.27.0'}" in p for p in problems)
    assert any(
        p.startswith("build_id: the library's code and tensor-cache.json give") for p in problems
    )


def test_a_library_built_for_other_quantized_weights_is_a_problem(
    model_dir: Path, body: dict[str, Any]
) -> None:
    manifest = write_manifest(model_dir, body)
    assert read_build_info((model_dir / "model.wasm").read_bytes())["quantize"] == "none"
    edited = dict(manifest, model={**manifest["model"], "quantize": "int8"})
    assert build_stamp_problems(model_dir, edited) == [
        "model.wasm: built for none weights, the manifest says int8"
    ]


def test_a_library_without_a_stamp_or_not_wasm_is_a_problem(
    model_dir: Path, body: dict[str, Any]
) -> None:
    manifest = write_manifest(model_dir, body)
    lib = model_dir / "model.wasm"
    lib.write_bytes(strip_build_info(lib.read_bytes()))
    assert build_stamp_problems(model_dir, manifest) == [
        f"model.wasm: has no {BUILD_SECTION} section; rebuild with wsd-compile"
    ]
    lib.write_bytes(HEADER + _custom(BUILD_SECTION, b"{nope"))
    assert "unreadable" in build_stamp_problems(model_dir, manifest)[0]
    lib.write_text("<html>")
    assert build_stamp_problems(model_dir, manifest) == ["model.wasm: not a WebAssembly module"]
    lib.unlink()
    assert build_stamp_problems(model_dir, manifest) == []  # a missing file is reported as missing
    assert json.loads((model_dir / "manifest.json").read_text()) == manifest


def test_verify_names_a_library_of_another_build(model_dir: Path, body: dict[str, Any]) -> None:
    from wsd_artifacts import verify

    manifest = write_manifest(model_dir, body)
    lib = model_dir / "model.wasm"
    stamp_library(lib, {"build_id": "e" * 16, "runtime": manifest["runtime"]})
    # The manifest now lists the new bytes, so only the stamp tells the builds apart.
    manifest["files"]["model.wasm"] = {
        "bytes": lib.stat().st_size,
        "integrity": sri_sha384_bytes(lib.read_bytes()),
    }
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    report = verify(model_dir)
    assert report.corrupted == [
        ("model.wasm", f"belongs to build {'e' * 16}, the manifest to build {manifest['build_id']}")
    ]


def _two_paths(body: dict[str, Any]) -> dict[str, Any]:
    def path(name: str, library: str, precision: str, widen: bool) -> dict[str, Any]:
        return {
            "name": name,
            "library": library,
            "precision": precision,
            "requires": ["shader-f16"] if precision == "fp16" else [],
            "widen_f16_weights": widen,
            "max_buffer_bytes": 1024,
        }

    return dict(
        body,
        kernel_paths=[
            path("shader-f16", "model.wasm", "fp16", False),
            path("fp32", "model-fp32.wasm", "fp32", True),
        ],
    )


def test_every_kernel_path_library_is_stamped_with_the_one_build(
    model_dir: Path, body: dict[str, Any]
) -> None:
    """A build of two kernel paths: both libraries carry its id, which covers both's code."""
    from wsd_artifacts import stamp_build

    two = _two_paths(body)
    second = model_dir / "model-fp32.wasm"
    second.write_bytes(HEADER + _custom("pad", b"fp32 code"))
    build_id = stamp_build(model_dir, two)
    manifest = write_manifest(model_dir, two)
    assert manifest["build_id"] == build_id
    assert read_build_info(second.read_bytes()) == {
        "build_id": build_id,
        "runtime": manifest["runtime"],
        "quantize": "none",
    }
    assert build_stamp_problems(model_dir, manifest) == []
    # The id covers both libraries' code, not the first's alone.
    weights = sri_sha384_file(model_dir / "tensor-cache.json")
    assert build_id == compute_build_id(
        f"{library_code_integrity(model_dir / 'model.wasm')} {library_code_integrity(second)}",
        weights,
    )
    assert build_id != compute_build_id(library_code_integrity(model_dir / "model.wasm"), weights)
    # The second library of another build, or changed code, is named.
    second.write_bytes(HEADER + _custom("pad", b"fp32 code of another build"))
    stamp_library(second, {"build_id": "e" * 16, "runtime": manifest["runtime"]})
    problems = build_stamp_problems(model_dir, manifest)
    assert (
        problems[0]
        == f"model-fp32.wasm: belongs to build {'e' * 16}, the manifest to build {build_id}"
    )
    assert problems[1].startswith("build_id: the libraries' code and tensor-cache.json give")


def test_kernel_paths_hold_the_library_name_distinct_paths_and_exist(
    model_dir: Path, body: dict[str, Any]
) -> None:
    from wsd_artifacts import ManifestError, stamp_build

    two = _two_paths(body)
    with pytest.raises(
        ManifestError, match=r"kernel_paths\.library: 'model-fp32\.wasm' names no file"
    ):
        write_manifest(model_dir, two)
    (model_dir / "model-fp32.wasm").write_bytes(HEADER)
    stamp_build(model_dir, two)
    # The top-level library is one of the paths' (any order: best first).
    assert write_manifest(model_dir, dict(two, kernel_paths=two["kernel_paths"][::-1]))
    (model_dir / "manifest.json").unlink()
    other = dict(two, kernel_paths=[two["kernel_paths"][1]])
    with pytest.raises(ManifestError, match="kernel_paths: expected one path of the top-level"):
        write_manifest(model_dir, other)
    twice = dict(
        two, kernel_paths=[two["kernel_paths"][0], dict(two["kernel_paths"][1], name="shader-f16")]
    )
    with pytest.raises(ManifestError, match="names must be unique; repeated: shader-f16"):
        write_manifest(model_dir, twice)
    assert not (model_dir / "manifest.json").exists()


def test_vae_tiling_names_a_function_of_its_tile_size_and_a_smaller_overlap(
    model_dir: Path, body: dict[str, Any]
) -> None:
    from wsd_artifacts import ManifestError

    latents = {"name": "latents", "shape": [1, 4, 4, 4], "dtype": "float32"}
    image = {"name": "image", "shape": [1, 3, 32, 32], "dtype": "float32"}
    tile_fn = {"inputs": [latents], "outputs": [image], "params": "unet"}
    tiled = dict(
        body,
        functions={**body["functions"], "vae_decode_tile": tile_fn},
        vae_tiling={"function": "vae_decode_tile", "tile": [4, 4], "overlap": [1, 1]},
    )
    assert write_manifest(model_dir, tiled)["vae_tiling"]["tile"] == [4, 4]
    (model_dir / "manifest.json").unlink()
    bad = {
        "a function the library lacks": (
            dict(tiled, vae_tiling=dict(tiled["vae_tiling"], function="decode_tiles")),
            r"vae_tiling\.function: expected a function of the library, got 'decode_tiles'",
        ),
        "another tile size": (
            dict(tiled, vae_tiling=dict(tiled["vae_tiling"], tile=[8, 8])),
            r"vae_tiling\.tile: expected the latent size \[4, 4\] that vae_decode_tile",
        ),
        "an overlap of a whole tile": (
            dict(tiled, vae_tiling=dict(tiled["vae_tiling"], overlap=[1, 4])),
            r"vae_tiling\.overlap: expected less than the tile \[4, 4\], got \[1, 4\]",
        ),
        "three sizes": (
            dict(tiled, vae_tiling=dict(tiled["vae_tiling"], tile=[4, 4, 4])),
            r"vae_tiling\.tile: expected \[height, width\], two latent sizes",
        ),
    }
    for what, (manifest, message) in bad.items():
        with pytest.raises(ManifestError, match=message):
            write_manifest(model_dir, manifest)
        assert not (model_dir / "manifest.json").exists(), what


def test_vae_tiling_names_an_encoder_of_its_tile_size(
    model_dir: Path, body: dict[str, Any]
) -> None:
    from wsd_artifacts import ManifestError

    def tensor(name: str, *shape: int) -> dict[str, Any]:
        return {"name": name, "shape": [*shape], "dtype": "float32"}

    decode_fn = {
        "inputs": [tensor("latents", 1, 4, 4, 4)],
        "outputs": [tensor("image", 1, 3, 32, 32)],
    }
    encode_fn = {
        "inputs": [tensor("image", 1, 3, 32, 32), tensor("noise", 1, 4, 4, 4)],
        "outputs": [tensor("latents", 1, 4, 4, 4)],
    }
    tiling = {"function": "vae_decode_tile", "encode_function": "vae_encode_tile"}
    tiled = dict(
        body,
        functions={
            **body["functions"],
            "vae_decode_tile": {**decode_fn, "params": "unet"},
            "vae_encode_tile": {**encode_fn, "params": "unet"},
        },
        vae_tiling={**tiling, "tile": [4, 4], "overlap": [1, 1]},
    )
    assert write_manifest(model_dir, tiled)["vae_tiling"]["encode_function"] == "vae_encode_tile"
    (model_dir / "manifest.json").unlink()
    smaller = {**encode_fn, "outputs": [tensor("latents", 1, 4, 2, 2)], "params": "unet"}
    bad = {
        "an encoder the library lacks": (
            dict(tiled, vae_tiling=dict(tiled["vae_tiling"], encode_function="encode_tiles")),
            r"vae_tiling\.encode_function: expected a function of the library, got 'encode_tiles'",
        ),
        "an encoder of another tile size": (
            dict(tiled, functions={**tiled["functions"], "vae_encode_tile": smaller}),
            r"vae_tiling\.tile: expected the latent size \[2, 2\] that vae_encode_tile encodes to",
        ),
    }
    for what, (manifest, message) in bad.items():
        with pytest.raises(ManifestError, match=message):
            write_manifest(model_dir, manifest)
        assert not (model_dir / "manifest.json").exists(), what


def test_lora_targets_name_weights_of_their_component_and_need_the_merge_functions(
    model_dir: Path, body: dict[str, Any]
) -> None:
    from wsd_artifacts import ManifestError

    unet = body["components"]["unet"]
    target = {
        "param": unet["param_names"][0],
        "layout": "cols",
        "shape": [4, 8],
        "dtype": "float32",
    }
    with_lora = dict(
        body,
        components={**body["components"], "unet": dict(unet, lora_targets={"mid.to_q": [target]})},
        lora={"function": "lora_merge"},
    )
    written = write_manifest(model_dir, with_lora)
    assert written["components"]["unet"]["lora_targets"]["mid.to_q"] == [target]
    (model_dir / "manifest.json").unlink()

    def targeting(**change: Any) -> dict[str, Any]:
        targets = {"mid.to_q": [dict(target, **change)]}
        return dict(
            with_lora, components={**body["components"], "unet": dict(unet, lora_targets=targets)}
        )

    bad = {
        "a weight of no component": (
            targeting(param="unet.999"),
            r"lora_targets\['mid\.to_q'\]: 'unet\.999' is not one of its param_names",
        ),
        "a transposed convolution": (
            targeting(shape=[4, 8, 3, 3]),
            r"a transposed \(cols\) weight must be 2-D",
        ),
        "no merge functions": (
            {k: v for k, v in with_lora.items() if k != "lora"},
            r"lora: required where components have lora_targets",
        ),
        "an unknown layout": (targeting(layout="diagonal"), r"layout"),
    }
    for what, (manifest, message) in bad.items():
        with pytest.raises(ManifestError, match=message):
            write_manifest(model_dir, manifest)
        assert not (model_dir / "manifest.json").exists(), what
