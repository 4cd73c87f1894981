"""The captured graphs are what wsd-compile needs: TVM imports them, builds them for llvm
with torch's results, and builds them for WebGPU with only 32-bit types in the WGSL.

wsd-capture does not depend on TVM; these tests use the TVM that wsd-compile brings.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

from wsd_capture import CapturedPipeline

tvm = pytest.importorskip("tvm")
from tvm import relax  # noqa: E402
from tvm.relax.frontend.torch import from_exported_program  # noqa: E402

COMPONENTS = ["text_encoder", "unet", "vae_decode"]
STORAGE_ARRAY = re.compile(r"var<storage[^>]*>\s*\w+\s*:\s*array<(\w+)")


@pytest.fixture(scope="module")
def relax_modules(captured: CapturedPipeline) -> dict[str, tuple[Any, list[Any]]]:
    """Each component imported into Relax with its weights detached."""
    modules = {}
    for name, component in captured.components.items():
        mod = from_exported_program(component.program, keep_params_as_input=True)
        mod, params = relax.frontend.detach_params(mod)
        modules[name] = (mod, list(params["main"]))
    return modules


def _example(component: str, pipe_tokenizer: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if component == "text_encoder":
        ids = pipe_tokenizer(
            "a photo of a cat", padding="max_length", max_length=77, return_tensors="np"
        ).input_ids
        return [ids.astype(np.int32)]
    if component == "unet":
        return [
            rng.standard_normal((2, 4, 8, 8), dtype=np.float32),
            np.array([741.0], dtype=np.float32),
            rng.standard_normal((2, 77, 32), dtype=np.float32),
        ]
    return [rng.standard_normal((1, 4, 8, 8), dtype=np.float32)]


def _webgpu_source(executable: Any) -> str:
    pending = [executable.mod]
    while pending:
        module = pending.pop()
        if module.kind == "webgpu":
            source: str = module.inspect_source()
            return source
        pending.extend(module.imports)
    raise AssertionError("no webgpu module in the build")


@pytest.mark.parametrize("component", COMPONENTS)
def test_the_llvm_build_matches_torch(
    component: str,
    captured: CapturedPipeline,
    relax_modules: dict[str, tuple[Any, list[Any]]],
    pipe: Any,
) -> None:
    mod, params = relax_modules[component]
    inputs = _example(component, pipe.tokenizer)
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    (got,) = vm["main"](*(tvm.runtime.tensor(x) for x in inputs), *params)
    with torch.no_grad():
        expected = captured.components[component].program.module()(
            *(torch.from_numpy(x) for x in inputs)
        )
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("component", COMPONENTS)
def test_the_webgpu_shaders_use_only_32_bit_types(
    component: str, relax_modules: dict[str, tuple[Any, list[Any]]]
) -> None:
    mod, _ = relax_modules[component]
    target = tvm.target.Target(
        {"kind": "webgpu"}, host={"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm"}
    )
    wgsl = _webgpu_source(tvm.compile(mod, target=target))
    assert set(STORAGE_ARRAY.findall(wgsl)) <= {"f32", "i32", "u32"}
    assert not re.search(r"\b(i64|u64|i8|u8|bool)\b", wgsl)
