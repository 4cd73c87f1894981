"""How far int8 and int4 weights move the image, and how much smaller the weights get.

For each model (the tiny presets, and the published SD 1.5 and SDXL base
architectures with seeded random weights) one generation (same prompt,
negative prompt, seed, scheduler and steps) with the unquantized weights,
then with the UNet's and text encoders' weights quantized and dequantized as
a ``--quantize int8`` / ``int4`` build holds them
(``wsd_capture.quantized.quantize_torch_model``): PSNR of each 8-bit image
against the unquantized one, the largest latent difference, and the
weights' bytes as a build of that precision stores them (every component,
the VAE included). The browser tests tie a quantized build to the same
quantized PyTorch model (>= 40 dB), so this is the quality a build loses.

usage: python scripts/quantize_quality.py [--device cuda] [--dtype fp16]
           [--models tiny-sd15,tiny-sdxl,sd15,sdxl] [--steps 20] [--json FILE]

Runs on the GPU machine (torch with CUDA; diffusers from .carry/wheels via
scripts/gpu_env.sh) or, slowly, on the CPU with --device cpu --dtype fp32.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsd_artifacts.quantization import SCHEMES, QuantScheme, quantizable, scale_shape
from wsd_capture.quantized import quantize_torch_model

MODELS = ("tiny-sd15", "tiny-sdxl", "sd15", "sdxl")
QUANTIZED = ("unet", "text_encoder", "text_encoder_2")
COMPONENTS = (*QUANTIZED, "vae")
RUN = {"prompt": "a lighthouse on a cliff at dawn, oil painting", "negative": "blurry", "seed": 7}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def load(name: str, directory: Path) -> Any:
    """The pipeline of ``name``: a tiny preset as written to disk, or a published
    architecture with random weights (seed 0)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from wsd_capture import PRESET_KINDS, write_preset
    from wsd_capture.architectures import build_random_pipeline

    if name in PRESET_KINDS:
        path = write_preset(name, directory / name)
        if PRESET_KINDS[name] == "sdxl":
            return StableDiffusionXLPipeline.from_pretrained(path, add_watermarker=False)
        return StableDiffusionPipeline.from_pretrained(path)
    return build_random_pipeline(name, seed=0)


def weight_bytes(pipe: Any, q: QuantScheme | None, itemsize: int) -> int:
    """The bytes a build stores for ``pipe``'s weights (``itemsize`` per value;
    packed integers and scales where ``q`` quantizes them)."""
    total = 0
    for name in COMPONENTS:
        model = getattr(pipe, name, None)
        if model is None:
            continue
        quantized: set[int] = set()
        if q is not None and name in QUANTIZED:
            for module in model.modules():
                conv = isinstance(module, torch.nn.Conv2d) and module.groups == 1
                if not (isinstance(module, torch.nn.Linear) or conv):
                    continue
                shape = tuple(module.weight.shape)
                if quantizable(shape, q, 1):
                    quantized.add(id(module.weight))
                    scales = math.prod(scale_shape(shape, q, 1, 0))
                    total += math.prod(shape) * q.bits // 8 + scales * itemsize
        total += sum(p.numel() * itemsize for p in model.parameters() if id(p) not in quantized)
    return total


def generate(pipe: Any, steps: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    kwargs = {
        "prompt": RUN["prompt"],
        "negative_prompt": RUN["negative"],
        "num_inference_steps": steps,
        "generator": torch.Generator(device="cpu").manual_seed(int(RUN["seed"])),
    }
    with torch.no_grad():
        latents = pipe(**kwargs, output_type="latent").images
        kwargs["generator"] = torch.Generator(device="cpu").manual_seed(int(RUN["seed"]))
        image = pipe(**kwargs, output_type="np").images[0]
    return (image * 255).round().astype(np.uint8), latents.float().cpu().numpy()


def measure(name: str, steps: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        pipe = load(name, Path(tmp))
    pipe.set_progress_bar_config(disable=True)
    # diffusers upcasts an SDXL VAE that says force_upcast itself, as it decodes.
    pipe.to(device=device, dtype=dtype)
    itemsize = torch.tensor([], dtype=dtype).element_size()
    saved = {
        c: {k: v.detach().clone() for k, v in getattr(pipe, c).state_dict().items()}
        for c in QUANTIZED
        if getattr(pipe, c, None) is not None
    }
    start = time.perf_counter()
    image, latents = generate(pipe, steps, device)
    record: dict[str, Any] = {
        "model": name,
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "weight_bytes": {"none": weight_bytes(pipe, None, itemsize)},
        "psnr_db": {},
        "latent_max_abs": {},
        "quantized_tensors": {},
        "seconds": {"none": round(time.perf_counter() - start, 2)},
    }
    for scheme_name, q in SCHEMES.items():
        for component, state in saved.items():
            getattr(pipe, component).load_state_dict(state)
        start = time.perf_counter()
        count = sum(quantize_torch_model(getattr(pipe, c), q) for c in saved)
        got, got_latents = generate(pipe, steps, device)
        record["seconds"][scheme_name] = round(time.perf_counter() - start, 2)
        record["quantized_tensors"][scheme_name] = count
        record["weight_bytes"][scheme_name] = weight_bytes(pipe, q, itemsize)
        record["psnr_db"][scheme_name] = round(psnr(got, image), 2)
        record["latent_max_abs"][scheme_name] = float(np.abs(got_latents - latents).max())
    print(json.dumps(record), flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    records = [measure(m, args.steps, device, dtype) for m in args.models.split(",") if m]
    report = {
        "command": "python scripts/quantize_quality.py "
        f"--device {args.device} --dtype {args.dtype} --models {args.models} --steps {args.steps}",
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "dtype": args.dtype,
        "steps": args.steps,
        "run": RUN,
        "records": records,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
