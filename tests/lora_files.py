"""LoRA files for the tests, made by PEFT at test time, and diffusers' fused
pipelines as references: ``load_lora_weights`` + ``fuse_lora``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

try:
    from .editing import NEGATIVE, PROMPT, SEED, STEPS, Result
except ImportError:  # imported as a top-level module, by scripts/gpu_parity.py
    from editing import NEGATIVE, PROMPT, SEED, STEPS, Result  # type: ignore[no-redef]

#: The LoRA tests' steps (fewer than the editing tests': a LoRA changes the
#: weights, not the schedule).
LORA_STEPS = 4

#: The modules the LoRAs change: the UNet's attention and the text encoders'.
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _pipeline_class(xl: bool) -> Any:
    import diffusers

    return diffusers.StableDiffusionXLPipeline if xl else diffusers.StableDiffusionPipeline


def make_lora(
    model_dir: Path, out: Path, *, xl: bool, seed: int, rank: int = 4, alpha: float = 8
) -> Path:
    """A LoRA of ``rank`` (random A and B, so that it changes the image) for the
    UNet and the text encoders of ``model_dir``, saved as diffusers does."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    cls = _pipeline_class(xl)
    pipe = cls.from_pretrained(model_dir)
    torch.manual_seed(seed)
    unet = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=UNET_TARGETS, init_lora_weights=False
    )
    text = LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=TEXT_TARGETS, init_lora_weights=False
    )
    pipe.unet.add_adapter(unet)
    layers: dict[str, Any] = {
        "unet_lora_layers": get_peft_model_state_dict(pipe.unet),
        "unet_lora_adapter_metadata": unet.to_dict(),
    }
    encoders = ["text_encoder", "text_encoder_2"] if xl else ["text_encoder"]
    for name in encoders:
        getattr(pipe, name).add_adapter(text)
        layers[f"{name}_lora_layers"] = get_peft_model_state_dict(getattr(pipe, name))
        layers[f"{name}_lora_adapter_metadata"] = text.to_dict()
    cls.save_lora_weights(out, weight_name="lora.safetensors", **layers)
    return out / "lora.safetensors"


def kohya_copy(lora: Path, out: Path, *, xl: bool) -> Path:
    """The same LoRA with kohya's (sd-scripts') keys: ``lora_unet_<path with _>``,
    ``lora_te_`` (SDXL: ``lora_te1_``, ``lora_te2_``), lora_down/lora_up and an alpha
    per module (the metadata's lora_alpha)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    prefixes = {"unet": "lora_unet", "text_encoder": "lora_te1" if xl else "lora_te"}
    prefixes["text_encoder_2"] = "lora_te2"
    tensors = {}
    with safe_open(lora, "pt") as f:
        meta = json.loads(f.metadata()["lora_adapter_metadata"])
        for key in f.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
            component, rest = key.split(".", 1)
            module, part = rest.rsplit(".lora_", 1)
            name = f"{prefixes[component]}_{module.replace('.', '_')}"
            kind = "lora_down" if part.startswith("A") else "lora_up"
            tensors[f"{name}.{kind}.weight"] = f.get_tensor(key)
            tensors[f"{name}.alpha"] = torch.tensor(float(meta[f"{component}.lora_alpha"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out)
    return out


def fused_reference(
    model_dir: Path, classes: dict[str, Any], *, xl: bool, steps: int = STEPS
) -> Any:
    """``run(scheduler, loras)``: diffusers with ``loras`` ([(file, scale)]) loaded as
    adapters with their scales and fused (``fuse_lora``), then text to image."""
    import diffusers
    import torch

    fused: dict[tuple[tuple[str, float], ...], Any] = {}

    def pipeline(loras: list[tuple[Path, float]]) -> Any:
        """The pipeline with ``loras`` fused (made once per set of LoRAs)."""
        key = tuple((str(f), s) for f, s in loras)
        if key not in fused:
            kwargs = {"add_watermarker": False} if xl else {"safety_checker": None}
            pipe = _pipeline_class(xl).from_pretrained(model_dir, **kwargs)
            pipe.set_progress_bar_config(disable=True)
            names = [f"lora{i}" for i in range(len(loras))]
            for name, (file, _) in zip(names, loras, strict=True):
                pipe.load_lora_weights(str(file), adapter_name=name)
            if loras:
                pipe.set_adapters(names, [scale for _, scale in loras])
                pipe.fuse_lora(lora_scale=1.0)
            fused[key] = pipe, pipe.scheduler.config
        return fused[key]

    def run(scheduler: str, loras: list[tuple[Path, float]]) -> Result:
        pipe, own = pipeline(loras)
        class_name, overrides = classes[scheduler]
        pipe.scheduler = getattr(diffusers, class_name).from_config(own, **overrides)
        args = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "num_inference_steps": steps}
        args["guidance_scale"] = 7.5
        out = pipe(**args, generator=torch.Generator().manual_seed(SEED), output_type="latent")
        image = pipe(**args, generator=torch.Generator().manual_seed(SEED), output_type="np")
        return (image.images[0] * 255).round().astype(np.uint8), out.images.numpy()

    return run
