"""The runtime check: a small Relax model that proves the WebGPU toolchain end to end.

``write_runtime_check(out_dir)`` compiles two functions that exercise the
kernel families Stable Diffusion is made of (a matmul with bias and SiLU; a
conv2d with bias followed by group norm) for WebGPU, links them with the
tvmjs runtime, and writes beside the ``.wasm`` their weights and inputs as
a tensor cache together with the outputs numpy computes for them. The
browser page (``wsd-web check``) and the Node runner load that directory,
run each function on the GPU and compare with the expected outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm import relax

from wsd_artifacts import write_tensor_cache

from .kernels import DEFAULT_KERNELS, KernelOptions
from .output import fresh_output_dir
from .runtime import RuntimeObjects
from .webgpu import WebGPUBuild, build_webgpu_wasm

CHECK_INDEX = "check.json"
CHECK_WASM = "check.wasm"

_X = (4, 32)
_FC = (32, 16)
# 128 input channels x 9 taps against 64 outputs per channel: the convolution
# takes the paths the UNet's deep, low-resolution ones do (tap-blocked k order,
# split-K into two partial sums; wsd_compile.kernels).
_IMG = (1, 128, 8, 8)
_CONV = (16, 128, 3, 3)
_GROUPS = 4
_EPS = 1e-5
# Attention over 77 keys (the text encoder's length) for 80 query rows: no
# length a multiple of the fused kernel's tiles, and heads too wide to stage
# whole, so its masking of keys, rows and columns and its chunked passes over
# the head are exercised (wsd_compile.kernels.online_softmax). Head dimension 512
# (the VAE's: one row per thread, 32 threads per row), plain batches.
_Q = (2, 80, 512)
_KV = (2, 77, 512)
# The same with SD 1.5's head dimension, 40 (16 threads per row, 4 rows each;
# the head staged whole, once per tile of queries), and the heads side by
# side, as the attention projections compute them ([n, tokens, heads x head
# dim], split and merged by transposes that the kernel folds into its
# indexing): 2 images x 2 heads.
_HEADS = 2
_XQ = (2, 80, _HEADS * 40)
_XKV = (2, 77, _HEADS * 40)


@dataclass(frozen=True)
class CheckFunction:
    """One function of the check model: argument tensor names, in call order."""

    name: str
    args: tuple[str, ...]
    output_shape: tuple[int, ...]


CHECK_FUNCTIONS = (
    CheckFunction("matmul_silu", ("x", "fc.weight", "fc.bias"), (_X[0], _FC[1])),
    CheckFunction(
        "conv_group_norm",
        ("image", "conv.weight", "conv.bias", "norm.weight", "norm.bias"),
        (_IMG[0], _CONV[0], _IMG[2], _IMG[3]),
    ),
    CheckFunction("attention", ("q", "k", "v"), _Q),
    CheckFunction("attention_heads", ("xq", "xk", "xv"), _XQ),
)


def build_check_module() -> tvm.IRModule:
    """The check model as a Relax IRModule of fp32 functions (``CHECK_FUNCTIONS``)."""
    bb = relax.BlockBuilder()
    f32 = "float32"
    x = relax.Var("x", relax.TensorType(_X, f32))
    w = relax.Var("fc_weight", relax.TensorType(_FC, f32))
    b = relax.Var("fc_bias", relax.TensorType((_FC[1],), f32))
    with bb.function("matmul_silu", [x, w, b]):
        with bb.dataflow():
            y = bb.emit(relax.op.add(relax.op.matmul(x, w), b))
            out = bb.emit_output(relax.op.nn.silu(y))
        bb.emit_func_output(out)

    img = relax.Var("image", relax.TensorType(_IMG, f32))
    cw = relax.Var("conv_weight", relax.TensorType(_CONV, f32))
    cb = relax.Var("conv_bias", relax.TensorType((_CONV[0],), f32))
    gamma = relax.Var("norm_weight", relax.TensorType((_CONV[0],), f32))
    beta = relax.Var("norm_bias", relax.TensorType((_CONV[0],), f32))
    with bb.function("conv_group_norm", [img, cw, cb, gamma, beta]):
        with bb.dataflow():
            conv = bb.emit(relax.op.nn.conv2d(img, cw, padding=1))
            biased = bb.emit(relax.op.add(conv, relax.op.reshape(cb, (1, _CONV[0], 1, 1))))
            out = bb.emit_output(
                relax.op.nn.group_norm(biased, gamma, beta, _GROUPS, 1, [2, 3], epsilon=_EPS)
            )
        bb.emit_func_output(out)
    _attention_function(bb)
    return bb.get()


def _attention_function(bb: relax.BlockBuilder) -> None:
    """``softmax(q k^T * scale) v`` as diffusers' classic attention exports it."""
    f32 = "float32"
    q = relax.Var("q", relax.TensorType(_Q, f32))
    k = relax.Var("k", relax.TensorType(_KV, f32))
    v = relax.Var("v", relax.TensorType(_KV, f32))
    with bb.function("attention", [q, k, v]):
        with bb.dataflow():
            scores = bb.emit(relax.op.matmul(q, relax.op.permute_dims(k, [0, 2, 1])))
            scaled = bb.emit(relax.op.multiply(scores, relax.const(_Q[-1] ** -0.5, f32)))
            probs = bb.emit(relax.op.nn.softmax(scaled, axis=-1))
            out = bb.emit_output(relax.op.matmul(probs, v))
        bb.emit_func_output(out)
    _attention_heads_function(bb)


def _attention_heads_function(bb: relax.BlockBuilder) -> None:
    """Attention over heads split from and merged into ``[n, tokens, heads x dim]``."""
    f32, (n, queries, width), keys = "float32", _XQ, _XKV[1]
    depth = width // _HEADS
    xs = [
        relax.Var(name, relax.TensorType(shape, f32))
        for name, shape in zip(("xq", "xk", "xv"), (_XQ, _XKV, _XKV), strict=True)
    ]
    with bb.function("attention_heads", xs):
        with bb.dataflow():
            q, k, v = (
                bb.emit(
                    relax.op.reshape(
                        relax.op.permute_dims(
                            relax.op.reshape(x, (n, length, _HEADS, depth)), [0, 2, 1, 3]
                        ),
                        (n * _HEADS, length, depth),
                    )
                )
                for x, length in zip(xs, (queries, keys, keys), strict=True)
            )
            scores = bb.emit(relax.op.matmul(q, relax.op.permute_dims(k, [0, 2, 1])))
            scaled = bb.emit(relax.op.multiply(scores, relax.const(depth**-0.5, f32)))
            attended = bb.emit(relax.op.matmul(relax.op.nn.softmax(scaled, axis=-1), v))
            merged = relax.op.permute_dims(
                relax.op.reshape(attended, (n, _HEADS, queries, depth)), [0, 2, 1, 3]
            )
            out = bb.emit_output(relax.op.reshape(merged, _XQ))
        bb.emit_func_output(out)


def check_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic weights and inputs for the check model."""
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype("float32")

    return {
        "x": normal(_X),
        "fc.weight": normal(_FC, 0.2),
        "fc.bias": normal((_FC[1],), 0.1),
        "image": normal(_IMG),
        "conv.weight": normal(_CONV, 0.1),
        "conv.bias": normal((_CONV[0],), 0.1),
        "norm.weight": normal((_CONV[0],), 0.5) + 1.0,
        "norm.bias": normal((_CONV[0],), 0.1),
        "q": normal(_Q, 2.0),
        "k": normal(_KV, 2.0),
        "v": normal(_KV),
        "xq": normal(_XQ, 2.0),
        "xk": normal(_XKV, 2.0),
        "xv": normal(_XKV),
    }


def _attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray[Any, Any]:
    scores = np.einsum("bqd,bkd->bqk", q, k) * q.shape[-1] ** -0.5
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    out: np.ndarray[Any, Any] = weights @ v
    return out


def _reference(fn: CheckFunction, t: dict[str, np.ndarray]) -> np.ndarray[Any, Any]:
    """The numpy result of ``fn``, in float64 then rounded to float32."""
    a = {k: v.astype("float64") for k, v in t.items()}
    if fn.name == "matmul_silu":
        y = a["x"] @ a["fc.weight"] + a["fc.bias"]
        silu: np.ndarray[Any, Any] = (y / (1.0 + np.exp(-y))).astype("float32")
        return silu
    if fn.name == "attention":
        return _attention_reference(a["q"], a["k"], a["v"]).astype("float32")
    if fn.name == "attention_heads":
        n, queries, width = _XQ
        heads = [
            a[name].reshape(n, -1, _HEADS, width // _HEADS).transpose(0, 2, 1, 3)
            for name in ("xq", "xk", "xv")
        ]
        flat = [h.reshape(n * _HEADS, -1, width // _HEADS) for h in heads]
        per_head = _attention_reference(*flat).reshape(n, _HEADS, queries, -1)
        merged: np.ndarray[Any, Any] = per_head.transpose(0, 2, 1, 3).reshape(_XQ).astype("float32")
        return merged
    padded = np.pad(a["image"], ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    conv = np.einsum("nchwij,ocij->nohw", windows, a["conv.weight"])
    conv += a["conv.bias"][None, :, None, None]
    n, c, h, w = conv.shape
    grouped = conv.reshape(n, _GROUPS, c // _GROUPS, h, w)
    mean = grouped.mean(axis=(2, 3, 4), keepdims=True)
    var = grouped.var(axis=(2, 3, 4), keepdims=True)
    normed = ((grouped - mean) / np.sqrt(var + _EPS)).reshape(n, c, h, w)
    scaled = normed * a["norm.weight"][None, :, None, None] + a["norm.bias"][None, :, None, None]
    out: np.ndarray[Any, Any] = scaled.astype("float32")
    return out


@dataclass(frozen=True)
class RuntimeCheck:
    """A written runtime-check directory."""

    directory: Path
    build: WebGPUBuild


def write_runtime_check(
    out_dir: str | Path,
    *,
    runtime: RuntimeObjects | None = None,
    seed: int = 0,
    kernels: KernelOptions = DEFAULT_KERNELS,
) -> RuntimeCheck:
    """Compile and link the check model into ``out_dir`` with its tensors and expected outputs.

    ``out_dir`` must not exist yet (or be empty); it appears only when complete.
    ``kernels``: the kernels to check (wsd's defaults unless told), every
    attention fused however small, so that the fused kernel is what runs.
    """
    out = Path(out_dir)
    with fresh_output_dir(out) as tmp:
        build = build_webgpu_wasm(
            build_check_module(),
            tmp / CHECK_WASM,
            runtime=runtime,
            kernels=kernels.without(fused_attention_min_bytes=0),
        )
        tensors = check_inputs(seed)
        expected = {f"expected.{fn.name}": _reference(fn, tensors) for fn in CHECK_FUNCTIONS}
        write_tensor_cache(tmp, {**tensors, **expected})
        (tmp / CHECK_INDEX).write_text(json.dumps(_check_index(), indent=1) + "\n")
    return RuntimeCheck(out, replace(build, wasm=replace(build.wasm, path=out / CHECK_WASM)))


def _check_index() -> dict[str, Any]:
    """``check.json``: what the page calls, with which tensors, and what to expect."""
    return {
        "wasm": CHECK_WASM,
        "functions": [
            {
                "name": fn.name,
                "args": list(fn.args),
                "output": {"shape": list(fn.output_shape), "dtype": "float32"},
                "expected": f"expected.{fn.name}",
            }
            for fn in CHECK_FUNCTIONS
        ],
    }
