"""Streamed weight transforms: the same weights, to the bit, read a chunk at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import tvm
from safetensors.torch import load_file, save_file
from tvm import relax
from tvm.relax.frontend.torch import from_exported_program

from wsd_capture import CapturedPipeline, capture_sd15, load_sd15, write_preset
from wsd_compile.pipeline_module import _single_output
from wsd_compile.weight_stream import import_graph, transform_weights


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> CapturedPipeline:
    model_dir = write_preset("tiny-sd15", tmp_path_factory.mktemp("preset") / "tiny-sd15")
    return capture_sd15(load_sd15(model_dir))


def _lifted(func: relax.Function, precision: str) -> tvm.IRModule:
    mod = tvm.IRModule({"unet": _single_output(func).with_attr("global_symbol", "unet")})
    if precision == "fp16":
        mod = relax.transform.ToMixedPrecision(out_dtype="float16")(mod)
    return relax.transform.LiftTransformParams()(mod)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_streamed_transform_matches_one_call(captured: CapturedPipeline, precision: str) -> None:
    program = captured.components["unet"].program
    # The stock way: the importer copies every weight, one VM call transforms them all.
    stock = from_exported_program(program, keep_params_as_input=True)
    stock, detached = relax.frontend.detach_params(stock)
    stock_mod = _lifted(stock["main"], precision)
    name = "unet_transform_params"
    vm = relax.VirtualMachine(tvm.compile(tvm.IRModule({name: stock_mod[name]}), "llvm"), tvm.cpu())
    expected = [t.numpy() for t in vm[name](detached["main"])]

    func, weights, _ = import_graph(program)
    mod = _lifted(func, precision)
    tvm.ir.assert_structural_equal(mod["unet"], stock_mod["unet"])
    reads: list[list[int]] = []
    chunk_bytes = 1 << 16
    got = transform_weights(
        mod[name], weights, chunk_bytes=chunk_bytes, on_chunk=lambda k, read: reads.append(read)
    )

    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), i
        assert np.array_equal(a, b), f"result {i} differs"
    # Chunked, and every weight read exactly once, by one chunk.
    assert len(reads) > 10
    assert sorted(i for read in reads for i in read) == list(range(len(weights)))
    largest = max(w.numel() * w.element_size() for w in weights)
    read_bytes = [sum(weights[i].numel() * weights[i].element_size() for i in r) for r in reads]
    assert max(read_bytes) <= 2 * chunk_bytes + largest


def _file_rss_kib(path: Path) -> int:
    """Resident KiB of ``path``'s mappings in this process (/proc/self/smaps)."""
    total, inside = 0, False
    with Path("/proc/self/smaps").open() as smaps:
        for line in smaps:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                inside = len(head) >= 6 and head[5] == str(path)
            elif inside and head[0] == "Rss:":
                total += int(head[1])
    return total


def _cast_transform(shape: tuple[int, ...]) -> relax.Function:
    """A lifted-transform-shaped function: one float32 weight in, its float16 cast out."""
    params = relax.Var("params", relax.TupleType([relax.TensorType(shape, "float32")]))
    bb = relax.BlockBuilder()
    with bb.function("cast_transform_params", [params]):
        with bb.dataflow():
            weight = bb.emit(relax.TupleGetItem(params, 0))
            out = bb.emit_output(relax.Tuple([bb.emit(relax.op.astype(weight, "float16"))]))
        bb.emit_func_output(out)
    func: Any = bb.get()["cast_transform_params"]
    return func


def test_weights_read_from_a_mapped_file_leave_no_resident_pages(tmp_path: Path) -> None:
    # What diffusers does: load_file maps the safetensors file; its pages are
    # resident once read. After the transform, the read pages are given back.
    shape = (4096, 4096)  # 64 MiB of float32
    path = tmp_path / "weights.safetensors"
    source = (torch.arange(shape[0] * shape[1], dtype=torch.float32) % 1000).reshape(shape) / 7
    save_file({"w": source}, str(path))
    weight = load_file(str(path))["w"]
    before = _file_rss_kib(path)
    assert before < 16 << 10, f"{before} KiB of the file resident before reading it"

    got = transform_weights(_cast_transform(shape), [weight])

    assert np.array_equal(got[0], source.numpy().astype(np.float16))
    after = _file_rss_kib(path)
    assert after < 16 << 10, f"{after} KiB of a 64 MiB weight file stayed resident"
    # The mapping is intact: the weight reads back (from the page cache) unchanged.
    assert torch.equal(weight, source)
