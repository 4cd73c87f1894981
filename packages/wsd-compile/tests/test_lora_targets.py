"""Which weights a LoRA may change (wsd_compile.lora.lora_targets), read from a
component's lifted weight transform: linear weights transposed (and cast),
convolution weights as they are, each at its place in the weight tuple; the
paths are the model's own module paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wsd_compile.lora import module_path
from wsd_compile.pipeline_module import _component_function


class _Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)
        self.to_q = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.conv(x)).flatten(2).transpose(1, 2)
        out: torch.Tensor = self.to_q(h)
        return out


class _Graph(nn.Module):
    """Like the capture's UNetGraph: the model under ``unet``."""

    def __init__(self) -> None:
        super().__init__()
        self.unet = _Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.unet(x)
        return out


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_linear_and_conv_weights_are_targets_at_their_place(precision: str) -> None:
    torch.manual_seed(0)
    graph = _Graph().eval()
    program = torch.export.export(graph, (torch.randn(1, 2, 4, 4),))
    _, weights, targets = _component_function("unet", [program], precision)
    assert sorted(targets) == ["conv", "to_q"]  # the norm's weight is 1-D: no target
    dtype = "float16" if precision == "fp16" else "float32"
    (q,) = targets["to_q"]
    assert (q.layout, q.shape, q.dtype) == ("cols", (6, 4), dtype)
    w = graph.unet.to_q.weight.detach().numpy()
    assert np.array_equal(weights[q.param], w.T.astype(dtype))
    (conv,) = targets["conv"]
    assert (conv.layout, conv.shape) == ("rows", (4, 2, 3, 3))
    assert np.array_equal(
        weights[conv.param], graph.unet.conv.weight.detach().numpy().astype(dtype)
    )


def test_module_paths_are_the_models_own() -> None:
    assert module_path("unet", "unet.mid_block.attentions.0.proj_in.weight") == (
        "mid_block.attentions.0.proj_in"
    )
    assert module_path("text_encoder", "layers.3.self_attn.q_proj.weight") == (
        "encoder.layers.3.self_attn.q_proj"
    )
    assert module_path("text_encoder_2", "text_projection.weight") == "text_projection"
    assert module_path("unet", "unet.conv_in.bias") is None
