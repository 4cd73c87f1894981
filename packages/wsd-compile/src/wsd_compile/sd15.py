"""``compile_sd15``: an SD 1.5-class diffusers pipeline to a folder of static web files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WsdCompileError
from .pipeline import CompiledPipeline, compile_pipeline
from .runtime import RuntimeObjects

if TYPE_CHECKING:
    from wsd_capture import CapturedPipeline


def check_captured_size(
    captured: CapturedPipeline, height: int | None, width: int | None
) -> CapturedPipeline:
    """``captured`` itself, if it was captured at the requested size."""
    meta = captured.metadata
    for what, wanted, have in (("height", height, meta.height), ("width", width, meta.width)):
        if wanted is not None and wanted != have:
            raise WsdCompileError(
                f"the captured pipeline has {what} {have}, not {wanted}; capture it again "
                f"with --{what} {wanted}"
            )
    return captured


def _capture(
    source: str | os.PathLike[str] | CapturedPipeline | None,
    preset: str | None,
    height: int | None,
    width: int | None,
) -> CapturedPipeline:
    # Imported here: diffusers is slow to import and chatty on import, and a
    # command line must be able to quiet it first.
    from wsd_capture import PRESET_KINDS, CapturedPipeline, capture_sd15, load_sd15, write_preset

    if (source is None) == (preset is None):
        raise WsdCompileError("give exactly one of a model (directory or hub id) and a preset")
    if isinstance(source, CapturedPipeline):
        if source.metadata.kind != "sd15":
            raise WsdCompileError(
                f"the captured pipeline is {source.metadata.kind}, not sd15: "
                f"use compile_{source.metadata.kind}"
            )
        return check_captured_size(source, height, width)
    if preset is not None:
        if PRESET_KINDS.get(preset, "sd15") != "sd15":
            raise WsdCompileError(
                f"{preset} is an {PRESET_KINDS[preset]} preset: use compile_{PRESET_KINDS[preset]} "
                f"(wsd-compile {PRESET_KINDS[preset]})"
            )
        with tempfile.TemporaryDirectory(prefix="wsd-preset-") as tmp:
            model_dir = write_preset(preset, Path(tmp) / preset)
            captured = capture_sd15(load_sd15(model_dir), height=height, width=width)
        return replace(captured, metadata=replace(captured.metadata, source=preset))
    assert source is not None
    return capture_sd15(load_sd15(source), height=height, width=width)


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
    from wsd_capture import CapturedPipeline

    return compile_pipeline(
        owned=not isinstance(source, CapturedPipeline),
        capture=lambda: _capture(source, preset, height, width),
        out_dir=out_dir,
        precision=precision,
        runtime=runtime,
        log=log,
    )
