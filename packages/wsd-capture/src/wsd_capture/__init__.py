"""wsd-capture: load Stable Diffusion 1.5 and SDXL pipelines, capture components with torch.export.

The first layer of wsd: everything downstream (compile, artifacts, the
browser) starts from a :class:`CapturedPipeline` (an fp32 ``ExportedProgram``
per component at fixed shapes, plus :class:`PipelineMetadata`).

Names are imported on first use, so that ``import wsd_capture`` (and the
command line) does not load torch, diffusers and transformers before it needs
them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .capture import (
        CFG_BATCH,
        VAE_TILE_MAX,
        CapturedComponent,
        CapturedPipeline,
        capture_sd15,
        check_image_size,
        vae_tile_shape,
    )
    from .errors import CaptureError
    from .kinds import KINDS, PRESET_KINDS, ModelKind, capture_model, model_kind
    from .loading import check_source, load_pipeline, load_sd15, load_sdxl, use_webgpu_attention
    from .metadata import (
        ComponentSpec,
        PipelineMetadata,
        SchedulerInfo,
        TensorSpec,
        XLConditioning,
    )
    from .presets import PRESETS, build_preset, build_tiny_sd15, build_tiny_sdxl, write_preset
    from .quiet import quiet_libraries
    from .storage import load_capture, save_capture
    from .tokenizer import TokenizerInfo, build_tiny_clip_tokenizer, portable_tokenizer_json
    from .xl import capture_sdxl

_MODULE_OF = {
    "CFG_BATCH": "capture",
    "CapturedComponent": "capture",
    "CapturedPipeline": "capture",
    "capture_sd15": "capture",
    "check_image_size": "capture",
    "VAE_TILE_MAX": "capture",
    "vae_tile_shape": "capture",
    "capture_sdxl": "xl",
    "CaptureError": "errors",
    "KINDS": "kinds",
    "ModelKind": "kinds",
    "capture_model": "kinds",
    "model_kind": "kinds",
    "check_source": "loading",
    "load_pipeline": "loading",
    "load_sd15": "loading",
    "load_sdxl": "loading",
    "use_webgpu_attention": "loading",
    "ComponentSpec": "metadata",
    "PipelineMetadata": "metadata",
    "SchedulerInfo": "metadata",
    "TensorSpec": "metadata",
    "XLConditioning": "metadata",
    "PRESETS": "presets",
    "PRESET_KINDS": "kinds",
    "build_tiny_sd15": "presets",
    "build_tiny_sdxl": "presets",
    "build_preset": "presets",
    "write_preset": "presets",
    "quiet_libraries": "quiet",
    "load_capture": "storage",
    "save_capture": "storage",
    "TokenizerInfo": "tokenizer",
    "build_tiny_clip_tokenizer": "tokenizer",
    "portable_tokenizer_json": "tokenizer",
}

__all__ = [
    "CFG_BATCH",
    "KINDS",
    "PRESETS",
    "PRESET_KINDS",
    "VAE_TILE_MAX",
    "CaptureError",
    "CapturedComponent",
    "CapturedPipeline",
    "ComponentSpec",
    "ModelKind",
    "PipelineMetadata",
    "SchedulerInfo",
    "TensorSpec",
    "TokenizerInfo",
    "XLConditioning",
    "build_preset",
    "build_tiny_clip_tokenizer",
    "build_tiny_sd15",
    "build_tiny_sdxl",
    "capture_model",
    "capture_sd15",
    "capture_sdxl",
    "check_image_size",
    "check_source",
    "load_capture",
    "load_pipeline",
    "load_sd15",
    "load_sdxl",
    "model_kind",
    "portable_tokenizer_json",
    "quiet_libraries",
    "save_capture",
    "use_webgpu_attention",
    "vae_tile_shape",
    "write_preset",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
