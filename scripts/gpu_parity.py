"""Parity on a real GPU: the tiny presets' fp16 (and, to tell the GPU's share of the
error from fp16's, fp32) builds rendered through Node + Dawn against diffusers
(fp32, CPU), the same weights, prompt, seed and scheduler; every kernel path
of a build (an fp16 build's ``shader-f16`` and ``fp32`` libraries) separately.

Three steps, two machines (the GPU machine reaches no registry and has no diffusers):

  python scripts/gpu_parity.py prepare OUT     # here: the builds + diffusers' images and latents
  bash scripts/gpu_parity.sh OUT               # on the GPU machine: one Node + Dawn render per case
  python scripts/gpu_parity.py compare OUT --json docs/benchmarks/gpu-parity-fp16.json

``prepare --quantized`` makes the quantized cases instead: fp16 builds with
``--quantize int8`` and ``int4``, each kernel path, against diffusers whose
UNet and text encoder weights were quantized the same way
(``wsd_capture.quantized``); use another OUT for them. ``prepare --editing``
makes the image-to-image and inpainting cases: the fp16 builds of tiny-sd15,
tiny-sdxl and the inpainting checkpoints tiny-sd15-inpaint and
tiny-sdxl-inpaint, on their own and subgroup-matrix paths, against diffusers'
editing pipelines (the settings of tests/editing.py). ``prepare --lora`` makes
the LoRA cases: the fp16 builds of tiny-sd15 and tiny-sdxl on their own and
subgroup-matrix paths, with LoRA files PEFT makes (the settings of
tests/test_lora_dawn.py), against diffusers' ``load_lora_weights`` + ``fuse_lora``.

``compare`` writes one record per case (PSNR of the 8-bit image, the largest
latent error relative to the reference latents' largest magnitude, the adapter
and the features the device had) and exits non-zero when a case misses the bar:
PSNR >= 40 dB and latents within 1e-2 of scale.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# The parity tests' own helpers (conftest, editing, lora_files) are this script's too.
sys.path.insert(0, str(ROOT / "tests"))
from conftest import TINY_CHUNK_BYTES  # noqa: E402

PRESETS = ("tiny-sd15", "tiny-sdxl")
SCHEDULERS = ("dpmpp-2m", "euler", "lcm")
PRECISIONS = ("fp16", "fp32")
#: The kernel paths each precision's build holds (wsd_compile.paths.planned_paths;
#: the fp16 builds are made with subgroup_matrix=True), its own first.
KERNEL_PATHS = {"fp16": ("shader-f16", "fp32", "subgroup-matrix"), "fp32": ("fp32",)}
OPTIONS = {"prompt": "a lighthouse at dawn", "negative_prompt": "", "seed": 7, "steps": 8}
MIN_PSNR_DB = 40.0
MAX_LATENT_ERROR = 1e-2


def _cases() -> list[dict[str, Any]]:
    return [
        {
            "name": f"{preset}-{precision}{_path_suffix(precision, path)}-{scheduler}",
            "preset": preset,
            "precision": precision,
            "kernel_path": path,
            "scheduler": scheduler,
            **OPTIONS,
        }
        for preset in PRESETS
        for precision in PRECISIONS
        for path in KERNEL_PATHS[precision]
        for scheduler in SCHEDULERS
    ]


#: Workgroup tiles (``TilePolicy`` fields) wherever the tiny presets' products allow
#: them: 128 x 128 blocks however few, stages however short k.
TINY_TILES = {"large_from": 1, "min_k": 16}

#: The attention cases' builds: every attention taken out of the unfused
#: chain (fused kernel on shader-f16, query chunks of at most 32 KiB of scores
#: on subgroup-matrix), and on subgroup-matrix every convolution in ranges of
#: output rows whose im2col matrices take at most 256 KiB and every product
#: that can in 64x64 blocks, so that the tiny presets run the paths SD 1.5
#: and SDXL take at 512 and 1024.
ATTENTION_KERNELS = {
    "fused_attention_min_bytes": 0,
    "subgroup_attention_chunk_bytes": TINY_CHUNK_BYTES,
    "subgroup_im2col_max_bytes": 262144,
    "subgroup_large_blocks_from": 1,
    # Workgroup tiles of 128 x 128 wherever the columns are in 128s, however short k.
    "subgroup_tiles": TINY_TILES,
}


def _kernels(case: dict[str, Any]) -> Any:
    """The case's ``KernelOptions``: the defaults with its ``kernels`` changes
    (``subgroup_tiles`` as the fields of a ``TilePolicy``, ``subgroup_flash_attention``
    of ``FlashTiles``)."""
    from wsd_compile.kernels import DEFAULT_KERNELS
    from wsd_compile.kernels.subgroup_tiles import TilePolicy

    changes = dict(case.get("kernels", {}))
    if "subgroup_tiles" in changes:
        changes["subgroup_tiles"] = TilePolicy(**changes["subgroup_tiles"])
    if changes.get("subgroup_flash_attention") is not None:
        from wsd_compile.kernels.flash_attention import FlashTiles

        changes["subgroup_flash_attention"] = FlashTiles(**changes["subgroup_flash_attention"])
    return DEFAULT_KERNELS.without(**changes)


def _attention_cases() -> list[dict[str, Any]]:
    return [
        {
            "name": f"{preset}-fp16-attention-{path}-dpmpp-2m",
            "build": f"{preset}-fp16-attention",
            "kernels": ATTENTION_KERNELS,
            "preset": preset,
            "precision": "fp16",
            "kernel_path": path,
            "scheduler": "dpmpp-2m",
            **OPTIONS,
        }
        for preset in PRESETS
        for path in ("shader-f16", "subgroup-matrix")
    ]


def _quantized_cases() -> list[dict[str, Any]]:
    """fp16 builds with quantized weights, every kernel path, one scheduler."""
    return [
        {
            "name": f"{preset}-fp16-{scheme}{_path_suffix('fp16', path)}-euler",
            "preset": preset,
            "precision": "fp16",
            "quantize": scheme,
            "build": f"{preset}-fp16-{scheme}",
            "kernel_path": path,
            "scheduler": "euler",
            **OPTIONS,
        }
        for preset in PRESETS
        for scheme in ("int8", "int4")
        for path in KERNEL_PATHS["fp16"]
    ]


def _editing_settings() -> dict[str, Any]:
    """What the editing and LoRA cases share: fp16, Euler, the editing tests' prompt and seed."""
    import editing  # tests/editing.py: the parity tests' settings

    return {
        "precision": "fp16",
        "scheduler": "euler",
        "prompt": editing.PROMPT,
        "negative_prompt": editing.NEGATIVE,
        "seed": editing.SEED,
        "steps": editing.STEPS,
    }


def _editing_cases() -> list[dict[str, Any]]:
    """fp16 builds, image to image (strengths 0.3, 0.8) and inpainting (two masks), Euler."""
    import editing  # tests/editing.py: the parity tests' settings

    common = _editing_settings()
    cases = []
    for preset in ("tiny-sd15", "tiny-sdxl", "tiny-sd15-inpaint", "tiny-sdxl-inpaint"):
        edits: list[tuple[str, str, dict[str, Any]]] = []
        if preset in editing.IMG2IMG_SCHEDULERS:
            edits += [("image-to-image", f"s{s}", {"strength": s}) for s in editing.STRENGTHS]
        edits += [("inpainting", name, {"mask": name}) for name in editing.masks(64)]
        for task, label, extra in edits:
            for path in ("shader-f16", "subgroup-matrix"):
                suffix = _path_suffix("fp16", path)
                cases.append(
                    {
                        "name": f"{preset}-fp16{suffix}-{task}-{label}",
                        "preset": preset,
                        "kernel_path": path,
                        "task": task,
                        **extra,
                        **common,
                    }
                )
    return cases


#: The LoRA cases' settings: (label, [(file, scale)]); kohya-a is a with kohya's keys.
LORA_SETTINGS = (
    ("a0.5", [("a", 0.5)]),
    ("a1", [("a", 1.0)]),
    ("a1+b0.7", [("a", 1.0), ("b", 0.7)]),
    ("kohya-a1", [("kohya-a", 1.0)]),
)


def _lora_cases() -> list[dict[str, Any]]:
    """fp16 builds of tiny-sd15 and tiny-sdxl, each LoRA setting on both fp16 paths, Euler."""
    cases = []
    for preset in PRESETS:
        for label, loras in LORA_SETTINGS:
            for path in ("shader-f16", "subgroup-matrix"):
                name = f"{preset}-fp16{_path_suffix('fp16', path)}-lora-{label}"
                cases.append(
                    {"name": name, "preset": preset, "kernel_path": path, "loras": loras}
                    | _editing_settings()
                )
    return cases


def _prepare_lora(out: Path, cases: list[dict[str, Any]]) -> None:
    """Each preset's LoRA files (PEFT, and a kohya copy) and diffusers' fused outputs."""
    from conftest import SCHEDULER_CLASSES
    from lora_files import fused_reference, kohya_copy, make_lora

    from wsd_capture import PRESET_KINDS, write_preset

    made: dict[str, tuple[dict[str, Path], Any]] = {}
    for case in cases:
        preset = case["preset"]
        if preset not in made:
            xl = PRESET_KINDS[preset] == "sdxl"
            directory = out / "loras" / preset
            shutil.rmtree(directory, ignore_errors=True)
            model = write_preset(preset, directory / "model")
            a = make_lora(model, directory / "a", xl=xl, seed=1)
            files = {
                "a": a,
                "b": make_lora(model, directory / "b", xl=xl, seed=2, rank=2, alpha=2),
                "kohya-a": kohya_copy(a, directory / "kohya-a.safetensors", xl=xl),
            }
            made[preset] = files, fused_reference(model, SCHEDULER_CLASSES, xl=xl)
        files, reference = made[preset]
        chosen = [(files[f.removeprefix("kohya-")], scale) for f, scale in case["loras"]]
        pixels, latents = reference(case["scheduler"], chosen)
        np.savez(out / "reference" / f"{case['name']}.npz", pixels=pixels, latents=latents)
        loras = [{"path": str(files[f]), "scale": scale} for f, scale in case["loras"]]
        case["render_options"] = {"loras": loras}


def _prepare_editing(out: Path, cases: list[dict[str, Any]]) -> None:
    """diffusers' editing pipelines on each case, and the render options of its pictures."""
    import editing
    from conftest import SCHEDULER_CLASSES

    image = editing.start_image(64)
    masks = editing.masks(64)
    references: dict[tuple[str, str], Any] = {}
    for case in cases:
        kind = "img2img" if case["task"] == "image-to-image" else "inpaint"
        key = (case["preset"], kind)
        if key not in references:
            directory = out / "presets" / f"{case['preset']}-{kind}"
            shutil.rmtree(directory, ignore_errors=True)
            references[key] = editing.diffusers_reference(
                case["preset"], directory, SCHEDULER_CLASSES, kind
            )
        render = {"task": case["task"], "image": editing.rgba_option(image)}
        if kind == "img2img":
            args: dict[str, Any] = {"image": image, "strength": case["strength"]}
            render["strength"] = case["strength"]
        else:
            args = {"image": image, "mask_image": masks[case["mask"]]}
            render["mask"] = editing.rgba_option(masks[case["mask"]])
        pixels, latents = references[key](case["scheduler"], **args)
        np.savez(out / "reference" / f"{case['name']}.npz", pixels=pixels, latents=latents)
        case["render_options"] = render


def _build_name(case: dict[str, Any]) -> str:
    return str(case.get("build") or f"{case['preset']}-{case['precision']}")


def _path_suffix(precision: str, path: str) -> str:
    """``-fp32path`` for a build's fallback path; nothing for its own."""
    return "" if path == KERNEL_PATHS[precision][0] else f"-{path}path"


def _group(case: dict[str, Any]) -> tuple[str, str, str]:
    """The diffusers model a case's reference comes from: preset, quantization, precision."""
    quantize = case.get("quantize", "none")
    return case["preset"], quantize, case["precision"] if quantize != "none" else "fp32"


def _kernel_changes(text: str) -> dict[str, Any]:
    """``--kernels``: a JSON object of ``KernelOptions`` fields, each checked."""
    from dataclasses import fields

    from wsd_compile.kernels import KernelOptions

    changes = json.loads(text)
    if not isinstance(changes, dict):
        raise argparse.ArgumentTypeError(f"--kernels takes a JSON object, not {text!r}")
    known = {f.name for f in fields(KernelOptions)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"{', '.join(unknown)} is no KernelOptions field; they are: {', '.join(sorted(known))}"
        )
    return changes


def prepare(
    out: Path,
    quantized: bool = False,
    editing: bool = False,
    lora: bool = False,
    kernel_paths: list[str] | None = None,
    tiles: bool = False,
    flash: bool = False,
    gather: bool = False,
    chunked: bool = False,
    kernels: dict[str, Any] | None = None,
) -> None:
    """The cases' builds in ``out/builds`` and diffusers' outputs in
    ``out/reference``; only the cases of ``kernel_paths`` when given; with
    ``tiles``, every build with workgroup tiles wherever a product allows them;
    with ``flash``, attention fused on tensor cores wherever it fits; with
    ``gather``, workgroup tiles as ``tiles`` gives them, their convolutions
    gathering from their input (implicit GEMM) rather than reading im2col;
    with ``chunked``, every attention on the shader-f16 and fp32 paths as
    products in chunks of queries (``attention_chunk_bytes``), however small;
    ``kernels``: any other ``KernelOptions`` changes, for every build."""
    from conftest import _reference  # the parity tests' own diffusers run

    from wsd_capture import PRESET_KINDS
    from wsd_compile import compile_pipeline

    cases = (
        _lora_cases()
        if lora
        else _editing_cases()
        if editing
        else _quantized_cases()
        if quantized
        else _cases() + _attention_cases()
    )
    if kernel_paths:
        cases = [c for c in cases if c["kernel_path"] in kernel_paths]
        if not cases:
            raise SystemExit(f"gpu_parity.py: no case runs on the kernel paths {kernel_paths}")
    changes: dict[str, Any] = {}
    if tiles or gather:
        changes["subgroup_tiles"] = {**TINY_TILES, "gather": True} if gather else TINY_TILES
    if flash:
        changes["subgroup_flash_attention"] = {}
    if chunked:
        changes |= {"fused_attention_min_bytes": 0, "attention_chunk_bytes": TINY_CHUNK_BYTES}
    changes |= kernels or {}
    if changes:
        for case in cases:
            case["kernels"] = {**case.get("kernels", {}), **changes}
    for case in cases:
        build = out / "builds" / _build_name(case)
        if not build.exists():
            compile_pipeline(
                PRESET_KINDS[case["preset"]],
                preset=case["preset"],
                out_dir=build,
                precision=case["precision"],
                subgroup_matrix=case["precision"] == "fp16",
                quantize=case.get("quantize", "none"),
                kernels=_kernels(case),
            )
    (out / "reference").mkdir(parents=True, exist_ok=True)
    if editing or lora:
        (_prepare_lora if lora else _prepare_editing)(out, cases)
        (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n", encoding="utf-8")
        return
    # A quantized build's reference rounds the weights to the build's precision before
    # quantizing them, as the build does; an unquantized one keeps diffusers' float32.
    groups = sorted({_group(c) for c in cases})
    for preset, quantize, precision in groups:
        presets = out / "presets" / f"{preset}-{quantize}-{precision}"
        shutil.rmtree(presets, ignore_errors=True)
        run = _reference(preset, presets, quantize=quantize, precision=precision)
        for case in cases:
            if _group(case) == (preset, quantize, precision):
                pixels, latents = run(case)
                np.savez(out / "reference" / f"{case['name']}.npz", pixels=pixels, latents=latents)
    (out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n", encoding="utf-8")


def _case_record(out: Path, case: dict[str, Any]) -> dict[str, Any]:
    ref = np.load(out / "reference" / f"{case['name']}.npz")
    # The report is the last line: Dawn prints shader compiler warnings on stdout too.
    printed = (out / "webgpu" / f"{case['name']}.json").read_text(encoding="utf-8")
    report = json.loads(printed.strip().splitlines()[-1])
    run = report["runs"][0]
    height, width = report["height"], report["width"]
    rgba = np.frombuffer(base64.b64decode(run["rgba"]), dtype=np.uint8).reshape(height, width, 4)
    want = ref["pixels"].astype(np.float64)
    mse = float(np.mean((rgba[:, :, :3].astype(np.float64) - want) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    latents = np.asarray(run["latents"], dtype=np.float64)
    reference = ref["latents"].astype(np.float64).ravel()
    error = float(np.max(np.abs(latents - reference)) / np.max(np.abs(reference)))
    return {
        "case": case["name"],
        "preset": case["preset"],
        "precision": case["precision"],
        "quantize": case.get("quantize", "none"),
        "task": case.get("task", "text-to-image"),
        **({"loras": case["loras"]} if "loras" in case else {}),
        "kernel_path": report.get("kernelPath", case.get("kernel_path")),
        "scheduler": run["scheduler"],
        "steps": case["steps"],
        "psnr_db": round(psnr, 2),
        "latent_error_of_scale": float(f"{error:.3g}"),
        "ok": bool(psnr >= MIN_PSNR_DB and error <= MAX_LATENT_ERROR),
        "adapter": report["adapter"],
        "features": report["features"],
        "dawn_toggles": report.get("dawnToggles", []),
    }


def compare(out: Path, json_path: Path | None) -> int:
    """Each case's image and latents against diffusers'; non-zero if any misses the bar."""
    cases = json.loads((out / "cases.json").read_text(encoding="utf-8"))
    records = [_case_record(out, case) for case in cases]
    for r in records:
        mark = "ok" if r["ok"] else "FAIL"
        error = r["latent_error_of_scale"]
        print(f"{r['case']:44s} {r['psnr_db']:7.2f} dB  latents {error:.2e}  {mark}")
    if json_path is not None:
        doc = {
            "what": "tiny presets' builds on a GPU (Node + Dawn) vs diffusers (fp32, CPU)",
            "command": "python scripts/gpu_parity.py prepare OUT; bash scripts/gpu_parity.sh OUT "
            "(GPU machine); python scripts/gpu_parity.py compare OUT --json FILE",
            "bar": {"min_psnr_db": MIN_PSNR_DB, "max_latent_error_of_scale": MAX_LATENT_ERROR},
            "cases": records,
        }
        json_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0 if all(r["ok"] for r in records) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("out", type=Path)
    prep.add_argument(
        "--quantized", action="store_true", help="the quantized builds' cases (int8, int4)"
    )
    prep.add_argument(
        "--editing", action="store_true", help="image-to-image and inpainting cases (fp16)"
    )
    prep.add_argument("--lora", action="store_true", help="LoRA cases (fp16)")
    prep.add_argument(
        "--kernel-path",
        action="append",
        choices=("subgroup-matrix", "shader-f16", "fp32"),
        help="only the cases on this kernel path (repeatable): what a kernel change touches",
    )
    prep.add_argument(
        "--tiles",
        action="store_true",
        help="every build with workgroup tiles wherever a product allows them (subgroup-matrix)",
    )
    prep.add_argument(
        "--flash",
        action="store_true",
        help="every build with attention fused on tensor cores wherever it fits (subgroup-matrix)",
    )
    prep.add_argument(
        "--gather",
        action="store_true",
        help="as --tiles, the tiles' convolutions gathering from their input (subgroup-matrix)",
    )
    prep.add_argument(
        "--chunked",
        action="store_true",
        help="every attention as products in chunks of queries (shader-f16 and fp32 paths)",
    )
    prep.add_argument(
        "--kernels",
        type=_kernel_changes,
        help="KernelOptions changes for every build, as JSON: '{\"matmul_contiguous\": true}'",
    )
    cmp = sub.add_parser("compare")
    cmp.add_argument("out", type=Path)
    cmp.add_argument("--json", type=Path, help="write the records here")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(
            args.out,
            args.quantized,
            args.editing,
            args.lora,
            args.kernel_path,
            args.tiles,
            args.flash,
            args.gather,
            args.chunked,
            args.kernels,
        )
        return 0
    return compare(args.out, args.json)


if __name__ == "__main__":
    sys.exit(main())
