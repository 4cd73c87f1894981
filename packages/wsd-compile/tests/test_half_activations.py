"""Activations an fp16 build kept in fp32 between kernels are stored in fp16
(kernels/half_activations.py): the kernels that write them write fp16, the
group norm's statistics read the fp16 tensor, every reader casts it back
itself, and the arithmetic gives the fp32 result within fp16's rounding."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import tvm
from tvm import relax

from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.kernels.group_norm import decompose_group_norm
from wsd_compile.kernels.half_activations import (
    HALF_ACTIVATIONS,
    half_activations_pass,
    split_upcasts_pass,
)
from wsd_compile.webgpu import webgpu_target

T = relax.TensorType
SHAPE = (1, 64, 16, 16)
NAME = "vae_decode"


def _resnets(shape: tuple[int, ...], dtype: str = "float16") -> tvm.IRModule:
    """What ``ToMixedPrecision`` makes of two VAE resnets: each convolution in
    ``dtype``, its result cast to fp32 for the bias, group norms and the
    residual sum in fp32. ``h`` is read by a group norm only, the residual sum
    ``y`` by a group norm and by the last sum, which is returned."""
    op = relax.op
    bb = relax.BlockBuilder()
    c = shape[1]
    x = relax.Var("x", T(shape, "float32"))
    ws = [relax.Var(f"w{i}", T((c, c, 3, 3), dtype)) for i in range(3)]
    bs = [relax.Var(f"b{i}", T((1, c, 1, 1), "float32")) for i in range(3)]
    g, beta = relax.Var("g", T((c,), "float32")), relax.Var("beta", T((c,), "float32"))

    def conv(v: relax.Expr, i: int) -> relax.Var:
        n = bb.emit(op.nn.group_norm(v, g, beta, 32, 1, [2, 3], 1e-6))
        s = bb.emit(op.astype(op.multiply(n, op.sigmoid(n)), dtype))
        out = bb.emit(op.nn.conv2d(s, ws[i], padding=1, out_dtype=dtype))
        return bb.emit(op.add(op.astype(out, "float32"), bs[i]))

    with bb.function(NAME, [x, *ws, *bs, g, beta]):
        with bb.dataflow():
            h = conv(x, 0)
            y = bb.emit(op.add(x, conv(h, 1)))
            out = bb.emit_output(op.add(y, conv(y, 2)))
        bb.emit_func_output(out)
    return bb.get()


def _stored(script: str) -> list[str]:
    """The fp32 values the script casts to fp16 and back."""
    pattern = r'(\w+): R\.Tensor\([^)]*\), dtype="float16"\) = R\.astype\((\w+), dtype="float16"\)'
    halves = re.findall(pattern, script)
    return [src for half, src in halves if f'R.astype({half}, dtype="float32")' in script]


def test_the_values_read_by_several_kernels_or_a_norm_are_stored_in_fp16() -> None:
    script = half_activations_pass([NAME])(_resnets(SHAPE))[NAME].script()
    # h (read by a norm), y (a norm and a sum); not the returned sum, not the
    # SiLU (cast to fp16 anyway), not x (a parameter).
    assert len(_stored(script)) == 2, script
    assert script.count("R.nn.group_norm") == 3, script


def test_other_functions_and_fp32_functions_are_left_alone() -> None:
    mod = _resnets(SHAPE)
    assert half_activations_pass(["unet"])(mod)[NAME].script() == mod[NAME].script()
    wide = _resnets(SHAPE, "float32")
    assert half_activations_pass([NAME])(wide)[NAME].script() == wide[NAME].script()


def _kernels(mod: tvm.IRModule, functions: tuple[str, ...]) -> dict[str, str]:
    target = webgpu_target()
    kernels = DEFAULT_KERNELS.without(subgroup_matrix=True, half_activations=functions)
    with target:
        built = webgpu_pipeline(target, kernels)(mod)
    return {
        gv.name_hint: f.script()
        for gv, f in built.functions_items()
        if isinstance(f, tvm.tirx.PrimFunc)
    }


def _buffers(script: str) -> list[tuple[str, tuple[int, ...], str]]:
    """A kernel's buffers: (name, shape, dtype)."""
    found = re.findall(r'(\w+): T\.Buffer\(\(([^"]*)\), "(\w+)"\)', script)
    return [
        (name, tuple(int(d) for d in re.findall(r"\d+", dims.replace("int64", ""))), dtype)
        for name, dims, dtype in found
    ]


def _written_fp32(kernels: dict[str, str]) -> list[str]:
    """The kernels that write a whole activation in fp32 (TVM names what a
    kernel writes ``T_...`` or ``compute...``; not a product's fp32 result,
    which the subgroup-matrix kernels store as it is summed)."""
    return [
        name
        for name, script in kernels.items()
        if not name.startswith("subgroup_matrix")
        and any(
            n.startswith(("T_", "compute")) and shape == SHAPE and dtype == "float32"
            for n, shape, dtype in _buffers(script)
        )
    ]


def test_in_a_build_only_the_returned_value_is_written_in_fp32() -> None:
    before = _written_fp32(_kernels(_resnets(SHAPE), ()))
    after = _kernels(_resnets(SHAPE), (NAME,))
    # Before: h's kernel, and the one kernel of y's and the result's sums (the
    # same arithmetic) write fp32; after, the result's alone.
    assert len(before) == 2, before
    assert len(_written_fp32(after)) == 1, after.keys()
    # The statistics of h and y read them in fp16 (x's in fp32: a parameter).
    stats = [s for n, s in after.items() if n.startswith("group_norm_chunk_stats")]
    read = sorted(dtype for s in stats for n, _, dtype in _buffers(s) if n == "X")
    assert read == ["float16", "float32"], stats


def _run(mod: tvm.IRModule, args: list[np.ndarray]) -> np.ndarray:
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    result: np.ndarray = vm[NAME](*[tvm.runtime.tensor(a) for a in args]).numpy()
    return result


def _lowered(functions: tuple[str, ...]) -> tvm.IRModule:
    passes = [
        half_activations_pass(functions),
        decompose_group_norm,
        split_upcasts_pass(functions),
        relax.transform.DeadCodeElimination(),
    ]
    lowered: tvm.IRModule = tvm.transform.Sequential(passes)(_resnets(SHAPE))
    return lowered


@pytest.fixture(scope="module")
def args() -> list[Any]:
    rng = np.random.default_rng(0)
    c = SHAPE[1]
    return [
        rng.standard_normal(SHAPE).astype("float32") * 4,
        *(rng.standard_normal((c, c, 3, 3)).astype("float16") * 0.05 for _ in range(3)),
        *(rng.standard_normal((1, c, 1, 1)).astype("float32") for _ in range(3)),
        rng.standard_normal((c,)).astype("float32"),
        rng.standard_normal((c,)).astype("float32"),
    ]


def test_the_result_is_the_fp32_one_within_fp16_rounding(args: list[Any]) -> None:
    wide, narrow = _run(_lowered(()), args), _run(_lowered((NAME,)), args)
    scale = float(np.abs(wide).max())
    error = float(np.abs(narrow - wide).max()) / scale
    # Rounded, not dropped: the values stored in fp16 differ from fp32 by
    # about fp16's epsilon (2^-11), never by more than a few of them.
    assert 0 < error < 4e-3, error


def test_the_vae_decoders_are_what_builds_narrow() -> None:
    assert DEFAULT_KERNELS.half_activations == HALF_ACTIVATIONS
    assert set(HALF_ACTIVATIONS) == {"vae_decode", "vae_decode_tile"}
