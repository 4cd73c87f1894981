"""A PyTorch model with the weights a quantized build holds (the reference it must match)."""

from __future__ import annotations

from typing import Any

import numpy as np

from wsd_artifacts.quantization import QuantScheme, quantizable, reference_weight


def quantize_torch_model(model: Any, q: QuantScheme, *, build_precision: str | None = None) -> int:
    """Replace, in place, every weight of ``model`` (a ``torch.nn.Module``) that
    a build quantizes, ``nn.Linear`` and ``nn.Conv2d`` without groups whose
    input channels pack, with its quantized-then-dequantized value in the
    weight's dtype: the PyTorch model a quantized build must match. Returns
    how many weights it replaced.

    ``build_precision``: the precision of the build to match (``fp16``,
    ``fp32``; None: the weights' own). An fp16 build quantizes its weights'
    float16 values, so an fp32 model that stands for it must round them to
    float16 first: a level or a scale can land on the other side of a
    rounding boundary otherwise."""
    import torch

    if build_precision not in (None, "fp16", "fp32"):
        raise ValueError(f"build_precision {build_precision!r}: give fp16, fp32 or None")

    count = 0
    for module in model.modules():
        plain_conv = isinstance(module, torch.nn.Conv2d) and module.groups == 1
        if not (isinstance(module, torch.nn.Linear) or plain_conv):
            continue
        weight = module.weight.detach()
        if not quantizable(weight.shape, q, 1):
            continue
        array = weight.cpu().float().numpy()
        if build_precision == "fp16":  # float16 weights already hold float16 values
            array = array.astype(np.float16)
        dtype = "float16" if weight.dtype == torch.float16 else "float32"
        new = reference_weight(array, q, pack_axis=1, out_axis=0, dtype=dtype)
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(new)))
        count += 1
    return count
