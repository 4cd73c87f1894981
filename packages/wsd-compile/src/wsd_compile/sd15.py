"""``compile_sd15``: an SD 1.5-class diffusers pipeline to a folder of static web files."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsd_artifacts import write_manifest, write_tensor_cache

from .errors import WsdCompileError
from .output import fresh_output_dir
from .runtime import RuntimeObjects, tvmjs_runtime
from .sd15_module import PipelineModule, build_sd15_module
from .webgpu import build_webgpu_wasm

if TYPE_CHECKING:
    from wsd_capture import CapturedPipeline

LIBRARY_FILE = "model.wasm"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class CompiledPipeline:
    """What :func:`compile_sd15` wrote.

    ``manifest`` is the ``manifest.json`` written in ``out_dir`` (every file
    with its size and sha384); ``seconds`` maps each phase to its wall time.
    """

    out_dir: Path
    manifest: dict[str, Any]
    wasm_bytes: int
    weight_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)


def param_names(component: str, count: int) -> list[str]:
    """The tensor-cache names of a component's weights, in its weight-tuple order."""
    return [f"{component}.{i}" for i in range(count)]


def _capture(
    source: str | os.PathLike[str] | CapturedPipeline | None,
    preset: str | None,
    height: int | None,
    width: int | None,
) -> CapturedPipeline:
    # Imported here: diffusers is slow to import and chatty on import, and a
    # command line must be able to quiet it first.
    from wsd_capture import CapturedPipeline, capture_sd15, load_sd15, write_preset

    if (source is None) == (preset is None):
        raise WsdCompileError("give exactly one of a model (directory or hub id) and a preset")
    if isinstance(source, CapturedPipeline):
        meta = source.metadata
        for what, wanted, have in (("height", height, meta.height), ("width", width, meta.width)):
            if wanted is not None and wanted != have:
                raise WsdCompileError(
                    f"the captured pipeline has {what} {have}, not {wanted}; capture it again "
                    f"with --{what} {wanted}"
                )
        return source
    if preset is not None:
        with tempfile.TemporaryDirectory(prefix="wsd-preset-") as tmp:
            model_dir = write_preset(preset, Path(tmp) / preset)
            captured = capture_sd15(load_sd15(model_dir), height=height, width=width)
        return replace(captured, metadata=replace(captured.metadata, source=preset))
    assert source is not None
    return capture_sd15(load_sd15(source), height=height, width=width)


def _weights(module: PipelineModule) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    for component, arrays in module.params.items():
        tensors.update(zip(param_names(component, len(arrays)), arrays, strict=True))
    return tensors


def _manifest_body(
    captured: CapturedPipeline, module: PipelineModule, weights: dict[str, np.ndarray]
) -> dict[str, Any]:
    meta = captured.metadata
    components = {}
    for component, arrays in module.params.items():
        names = param_names(component, len(arrays))
        components[component] = {
            "param_names": names,
            "param_count": len(names),
            "param_bytes": int(sum(weights[n].nbytes for n in names)),
        }
    tok = meta.tokenizer
    return {
        "kind": meta.kind,
        "model": {"source": meta.source, "precision": module.precision},
        "image": {"height": meta.height, "width": meta.width},
        "latent": {
            "shape": list(meta.latent_shape),
            "scaling_factor": meta.vae_scaling_factor,
            "vae_scale_factor": meta.vae_scale_factor,
        },
        "library": LIBRARY_FILE,
        "weights": "tensor-cache.json",
        "functions": {name: info.to_json() for name, info in sorted(module.functions.items())},
        "components": components,
        "scheduler": {"class_name": meta.scheduler.class_name, "config": meta.scheduler.config},
        "tokenizer": {
            "file": TOKENIZER_FILE,
            "max_length": tok.model_max_length,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        },
    }


@contextmanager
def _phase(seconds: dict[str, float], name: str, log: Callable[[str], None]) -> Iterator[None]:
    log(f"{name}...")
    start = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - start, 3)
    log(f"{name}: {seconds[name]:.1f} s")


def compile_sd15(
    source: str | os.PathLike[str] | CapturedPipeline | None = None,
    *,
    out_dir: str | os.PathLike[str],
    preset: str | None = None,
    precision: str = "fp32",
    height: int | None = None,
    width: int | None = None,
    runtime: RuntimeObjects | None = None,
    log: Callable[[str], None] | None = None,
) -> CompiledPipeline:
    """Compile an SD 1.5-class pipeline into ``out_dir``, ready for ``wsd-web serve``.

    ``source`` is a diffusers directory (or a hub id when the network allows
    it), or a pipeline already captured with ``wsd_capture.capture_sd15``;
    alternatively ``preset`` names a built-in model (``"tiny-sd15"``).
    ``precision`` is ``"fp32"`` or ``"fp16"``. ``height`` and ``width``
    default to the model's native size (the UNet's ``sample_size`` times the
    VAE's downsampling factor), as diffusers does.

    The directory gets ``model.wasm`` (every function, WebGPU shaders and
    wasm host code), the weights as a tvmjs tensor cache (raw, sharded,
    content-named), ``tokenizer.json`` and ``manifest.json``, which
    describes them all with sizes and sha384 hashes. It is written beside
    ``out_dir`` and renamed into place at the end, so a failure leaves
    nothing behind; an ``out_dir`` that already holds files is refused.
    ``runtime`` defaults to the cached tvmjs runtime objects (built on first
    use). ``log`` receives one line per phase.
    """
    say = log or (lambda _: None)
    out = Path(out_dir)
    seconds: dict[str, float] = {}
    with fresh_output_dir(out) as tmp:
        with _phase(seconds, "capture", say):
            captured = _capture(source, preset, height, width)
        with _phase(seconds, "relax", say):
            module = build_sd15_module(captured, precision=precision)
        with _phase(seconds, "runtime", say):
            objects = runtime or tvmjs_runtime()
        with _phase(seconds, "webgpu", say):
            build = build_webgpu_wasm(module.mod, tmp / LIBRARY_FILE, runtime=objects)
        with _phase(seconds, "weights", say):
            weights = _weights(module)
            write_tensor_cache(tmp, weights, metadata={"kind": captured.metadata.kind})
            (tmp / TOKENIZER_FILE).write_text(
                captured.metadata.tokenizer.tokenizer_json, encoding="utf-8"
            )
            manifest = write_manifest(tmp, _manifest_body(captured, module, weights))
    seconds["webgpu_compile"] = round(build.compile_seconds, 3)
    seconds["link"] = round(build.wasm.seconds, 3)
    return CompiledPipeline(
        out_dir=out,
        manifest=manifest,
        wasm_bytes=build.wasm.nbytes,
        weight_bytes=int(sum(a.nbytes for a in weights.values())),
        seconds=seconds,
    )
