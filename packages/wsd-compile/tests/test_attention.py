"""Fused attention: the rewrite finds diffusers' attention chain (fp32, and fp16 with
its casts) and nothing else, no score matrix is left for the device to bind, and the
kernel builds for WebGPU within the workgroup memory it plans for; on the subgroup-matrix
path, attention in chunks of queries instead (the end of this file). Its numbers are
checked on WebGPU (SwiftShader) by the runtime check (``tests/test_runtime_check.py``:
80 queries over 77 keys, head dimensions 512 and 40) and by every browser render of the
tiny presets against diffusers."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
import tvm
from tvm import relax

from wsd_compile.buffers import function_buffers
from wsd_compile.kernels import (
    DEFAULT_ATTENTION_TILES,
    DEFAULT_KERNELS,
    FUSE_ABOVE_BYTES,
    NARROW_ATTENTION_TILES,
    AttentionTiles,
    KernelOptions,
    attention_kernel,
    attention_tiles,
    fuse_attention_pass,
    webgpu_pipeline,
)
from wsd_compile.kernels.accumulate import accumulate_fp32
from wsd_compile.kernels.chunked_attention import query_chunks
from wsd_compile.kernels.flash_attention import FlashTiles, flash_attention_kernel, flash_fits
from wsd_compile.kernels.subgroup_matrix import subgroup_matrix_pass
from wsd_compile.webgpu import check_wgsl, webgpu_target, wgsl_sources

Kernels = Callable[[tvm.IRModule], list[str]]
Lowered = Callable[[tvm.IRModule, KernelOptions], tvm.IRModule]

T = relax.TensorType
#: Every attention fused, however small (the default fuses only large ones).
fuse_attention = fuse_attention_pass(min_bytes=0)
ALL_FUSED = DEFAULT_KERNELS.without(fused_attention_min_bytes=0)


def _attention_module(
    shape: tuple[int, int, int, int],
    dtype: str = "float32",
    *,
    axis: int = -1,
    k_axes: tuple[int, int, int] = (0, 2, 1),
) -> tvm.IRModule:
    """``softmax(q k^T * scale) v`` as the capture exports diffusers' classic attention
    (fp16: the scores cast to fp32 around the softmax, as ``ToMixedPrecision`` leaves them)."""
    batch, queries, keys, depth = shape
    bb = relax.BlockBuilder()
    q = relax.Var("q", T((batch, queries, depth), dtype))
    k = relax.Var("k", T((batch, keys, depth), dtype))
    v = relax.Var("v", T((batch, keys, depth), dtype))
    with bb.function("main", [q, k, v]):
        with bb.dataflow():
            kt = bb.emit(relax.op.permute_dims(k, list(k_axes)))
            scores = bb.emit(relax.op.matmul(q, kt, out_dtype=dtype))
            scale = relax.const(depth**-0.5, "float32")
            if dtype != "float32":
                scale = bb.emit(relax.op.astype(scale, dtype))
            scaled = bb.emit(relax.op.multiply(scores, scale))
            if dtype != "float32":
                scaled = bb.emit(relax.op.astype(scaled, "float32"))
            probs = bb.emit(relax.op.nn.softmax(scaled, axis=axis))
            if dtype != "float32":
                probs = bb.emit(relax.op.astype(probs, dtype))
            out = bb.emit_output(relax.op.matmul(probs, v, out_dtype=dtype))
        bb.emit_func_output(out)
    return bb.get()


def _ops(mod: tvm.IRModule) -> list[str]:
    return re.findall(r"R\.(nn\.softmax|matmul|call_tir)\b", mod["main"].script())


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_attention_chain_becomes_one_kernel_call(dtype: str) -> None:
    fused = fuse_attention(_attention_module((8, 64, 77, 40), dtype))
    assert _ops(fused) == ["call_tir"]
    prims = fused.functions_items()
    kernels = [gv.name_hint for gv, f in prims if isinstance(f, tvm.tirx.PrimFunc)]
    assert kernels == ["fused_attention"]
    out = fused["main"].ret_ty
    assert [int(d) for d in out.shape.values] == [8, 64, 40] and str(out.dtype) == dtype


def test_no_score_matrix_is_left_to_bind() -> None:
    mod = _attention_module((16, 4096, 4096, 40))
    scores = 16 * 4096 * 4096 * 4
    assert function_buffers(mod)[0].nbytes == scores  # 1 GiB: SD 1.5's at 512x512
    default = fuse_attention_pass()  # fuses what is over FUSE_ABOVE_BYTES, as builds do
    assert function_buffers(default(mod))[0].nbytes == 16 * 4096 * 40 * 4


@pytest.mark.parametrize(
    ("shape", "fused"),
    [((16, 4096, 4096, 40), True), ((40, 1024, 1024, 64), False), ((16, 1024, 1024, 80), False)],
    ids=["sd15-64x64", "sdxl-32x32", "sd15-32x32"],
)
def test_by_default_only_large_score_matrices_are_fused(
    shape: tuple[int, int, int, int], fused: bool
) -> None:
    batch, queries, keys, _ = shape
    assert (4 * batch * queries * keys > FUSE_ABOVE_BYTES) == fused
    ops = _ops(fuse_attention_pass()(_attention_module(shape)))
    assert ops == (["call_tir"] if fused else ["matmul", "nn.softmax", "matmul"])


@pytest.mark.parametrize(
    ("axis", "k_axes"),
    [(1, (0, 2, 1)), (-1, (0, 1, 2))],
    ids=["softmax-over-queries", "k-not-transposed-per-batch"],
)
def test_other_chains_are_left_alone(axis: int, k_axes: tuple[int, int, int]) -> None:
    mod = _attention_module((4, 32, 32, 32), axis=axis, k_axes=k_axes)
    assert _ops(fuse_attention(mod)) == ["matmul", "nn.softmax", "matmul"]


def test_same_shapes_share_one_kernel() -> None:
    bb = relax.BlockBuilder()
    shape = (2, 16, 16)
    q, k, v = (relax.Var(n, T(shape, "float32")) for n in "qkv")
    with bb.function("main", [q, k, v]):
        with bb.dataflow():
            x = q
            for _ in range(2):
                s = relax.op.matmul(x, relax.op.permute_dims(k, [0, 2, 1]))
                p = relax.op.nn.softmax(relax.op.multiply(s, relax.const(0.25, "float32")))
                x = bb.emit(relax.op.matmul(bb.emit(p), v))
            out = bb.emit_output(x)
        bb.emit_func_output(out)
    fused = fuse_attention(bb.get())
    assert _ops(fused) == ["call_tir", "call_tir"]
    assert sum(isinstance(f, tvm.tirx.PrimFunc) for _, f in fused.functions_items()) == 1


def test_tiles_follow_the_head_dimension() -> None:
    """SD 1.5's heads: 8 threads per row; SDXL's: the default (the compact layout);
    wide ones: 32 threads per row reading vectors, so the output accumulators stay
    few per thread; never more than 256 threads, WebGPU's default limit."""
    assert attention_tiles(40) == attention_tiles(48) == NARROW_ATTENTION_TILES
    assert NARROW_ATTENTION_TILES.threads_x == 8 and not NARROW_ATTENTION_TILES.vectors
    assert attention_tiles(64) == attention_tiles(160) == DEFAULT_ATTENTION_TILES
    assert DEFAULT_ATTENTION_TILES.compact
    assert attention_tiles(512).threads_x == 32 and attention_tiles(512).vectors
    for depth in (8, 40, 64, 80, 160, 512):
        t = attention_tiles(depth)
        assert t.rows // t.rows_per_thread * t.threads_x <= 256


@pytest.mark.parametrize("depth", [8, 16, 40, 64, 80, 96, 160, 512])
def test_every_head_dimension_fits_the_workgroup_memory(depth: int) -> None:
    func = attention_kernel(2, 100, 77, depth, "float16", depth**-0.5)
    shared = 0
    for buf in re.findall(r"T\.alloc_shared\(\(([0-9, ]+)\)", func.script()):
        words = 1
        for dim in filter(str.strip, buf.split(",")):  # "(2300,)": a flat buffer
            words *= int(dim)
        shared += 4 * words
    assert 0 < shared <= DEFAULT_ATTENTION_TILES.shared_bytes <= 32 * 1024


@pytest.mark.parametrize(
    ("tiles", "q_row", "p_row"),
    [
        (AttentionTiles(vectors=False, compact=True), 49, 32),  # 40 staged as 48; rows unpadded
        (AttentionTiles(vectors=False), 41, 33),  # odd rows
        (AttentionTiles(), 44, 36),  # an odd number of vec4
    ],
    ids=["compact", "scalar", "vectors"],
)
def test_the_layouts_of_workgroup_memory(tiles: AttentionTiles, q_row: int, p_row: int) -> None:
    script = attention_kernel(16, 4096, 4096, 40, "float32", 40**-0.5, tiles, heads=8).script()
    assert f"T.alloc_shared((64, {q_row})" in script
    assert f"T.alloc_shared(({64 * p_row},)" in script
    assert ("vectorized" in script) == tiles.vectors


def test_the_compact_layout_reads_no_vectors() -> None:
    with pytest.raises(ValueError, match="compact layout reads no vectors"):
        AttentionTiles(compact=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rows": 60, "rows_per_thread": 8}, "rows must be a multiple of rows_per_thread"),
        ({"keys": 24, "threads_x": 16}, "keys of threads_x"),
        ({"keys": 6, "threads_x": 2}, "vector reads need keys in 4s"),
    ],
    ids=["rows", "keys", "vector-keys"],
)
def test_tilings_that_would_drop_rows_or_keys_are_refused(
    fields: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AttentionTiles(**fields)  # type: ignore[arg-type]


def test_scalar_reads_take_any_number_of_keys() -> None:
    tiles = AttentionTiles(keys=6, threads_x=2, vectors=False)
    script = attention_kernel(2, 40, 40, 16, "float32", 0.25, tiles).script()
    assert "vectorized" not in script


def test_tiles_too_large_for_the_workgroup_memory_are_refused() -> None:
    with pytest.raises(ValueError, match="leave no room for head dimension 64"):
        attention_kernel(1, 64, 64, 64, "float32", 0.125, AttentionTiles(shared_bytes=4096))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_kernel_builds_for_webgpu(dtype: str) -> None:
    target = webgpu_target()
    mod = _attention_module((4, 80, 77, 40), dtype)
    lib = tvm.compile(mod, target=target, relax_pipeline=webgpu_pipeline(target, ALL_FUSED))
    sources = wgsl_sources(lib.mod)
    check_wgsl(sources)
    kernels = [s for s in sources if "fused_attention" in s]
    assert len(kernels) == 1
    tiles = attention_tiles(40)
    threads = (tiles.threads_x, tiles.rows // tiles.rows_per_thread)
    assert f"@workgroup_size({threads[0]}, {threads[1]}, 1)" in kernels[0]
    assert "exp(" in kernels[0] and "workgroupBarrier()" in kernels[0]
    assert not any("softmax" in s for s in sources)


def test_the_option_turns_it_off() -> None:
    target = webgpu_target()
    kernels = DEFAULT_KERNELS.without(fused_attention=False)
    lib = tvm.compile(
        _attention_module((4, 32, 32, 32)),
        target=target,
        relax_pipeline=webgpu_pipeline(target, kernels),
    )
    sources = wgsl_sources(lib.mod)
    assert not any("fused_attention" in s for s in sources)
    assert any("softmax" in s for s in sources)


def test_a_custom_tiling_is_used() -> None:
    tiles = AttentionTiles(rows=32, rows_per_thread=2, threads_x=8, keys=16)
    fused = fuse_attention_pass(tiles, min_bytes=0)(_attention_module((2, 40, 40, 16)))
    kernel = next(f for _, f in fused.functions_items() if isinstance(f, tvm.tirx.PrimFunc))
    assert 'thread_binding(8, thread="threadIdx.x")' in kernel.script()
    assert 'thread_binding(16, thread="threadIdx.y")' in kernel.script()


# Attention on the subgroup-matrix path: the chain stays matmuls around a
# softmax, in ranges of query rows whose score matrices fit a chunk, and its
# products reach the tensor-core kernels (padded where a head or the 77 text
# tokens are not in 16s). The chunks' numbers are checked here on the CPU
# against the whole chain; the tensor-core kernels run only on a GPU with
# subgroup matrices (docs/benchmarks/gpu-parity.json: the ``attention`` cases).

MiB = 2**20


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [
        ((16, 4096, 4096), 4),  # SD 1.5 512, 64x64 level: 1 GiB of scores -> 4 x 256 MiB
        ((20, 4096, 4096), 8),  # SDXL 1024: 1.25 GiB -> 8 x 160 MiB (4096 splits in 2s)
        ((1, 16384, 16384), 4),  # SDXL's VAE mid-block at 128x128 latents
        ((16, 1024, 77), 1),  # fits whole
        ((1, 7, 2**30), 0),  # one row is already too large
    ],
)
def test_query_chunks_keep_each_score_matrix_within_the_chunk(
    shape: tuple[int, int, int], chunks: int
) -> None:
    batch, queries, keys = shape
    assert query_chunks(batch, queries, keys, 256 * MiB) == chunks
    if chunks:
        assert queries % chunks == 0 and 4 * batch * queries // chunks * keys <= 256 * MiB


def _chunked(mod: tvm.IRModule, chunk_bytes: int) -> tvm.IRModule:
    result: tvm.IRModule = fuse_attention_pass(min_bytes=0, chunk_bytes=chunk_bytes)(mod)
    return result


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_chain_is_split_into_ranges_of_queries(dtype: str) -> None:
    # 8 x 64 x 77 fp32 scores are 154 KiB: 16 rows (38.5 KiB) per range -> 4 ranges.
    text = _chunked(_attention_module((8, 64, 77, 40), dtype), 40 * 1024)["main"].script()
    assert len(re.findall(r"R\.call_tir\((?:cls\.)?scaled_softmax", text)) == 4
    assert len(re.findall(r"R\.strided_slice\(\w+, \(1,\)", text)) == 4
    # Each range's scores are summed into fp32, and scaled in fp32 by the
    # softmax that reads them: Q is not rounded once more by a scaling.
    assert "R.multiply(" not in text
    assert len(re.findall(r'R\.matmul\(\w+, \w+, out_dtype="float32"\)', text)) == 4
    assert "R.concat(" in text
    assert len(re.findall(r"R\.permute_dims\(", text)) == 1  # K^T once, for every range
    # The 77 keys padded to 80 once, K and V, for every range.
    assert len(re.findall(r"R\.nn\.pad\((k|v),", text)) == 2
    assert 'R.Tensor((8, 16, 80), dtype="float32")' in text
    # Whole when the scores fit the chunk.
    whole = _chunked(_attention_module((8, 64, 77, 40), dtype), 256 * MiB)["main"].script()
    assert len(re.findall(r"R\.call_tir\((?:cls\.)?scaled_softmax", whole)) == 1
    assert "R.concat(" not in whole


def _run(mod: tvm.IRModule, inputs: list[np.ndarray]) -> np.ndarray:
    executable = tvm.compile(mod, target="llvm")
    vm = relax.VirtualMachine(executable, tvm.cpu())
    out: np.ndarray = vm["main"](*[tvm.runtime.tensor(x) for x in inputs]).numpy()
    return out


def _random_qkv(queries: int, keys: int, *, seed: int) -> list[np.ndarray]:
    """Q, K and V of 4 heads of 40, standard normal."""
    rng = np.random.default_rng(seed)
    shapes = ((4, queries, 40), (4, keys, 40), (4, keys, 40))
    return [rng.standard_normal(s).astype("float32") for s in shapes]


def test_the_ranges_give_the_whole_chains_numbers() -> None:
    mod = _attention_module((4, 48, 77, 40))
    inputs = _random_qkv(48, 77, seed=0)
    want = _run(mod, inputs)
    got = _run(_chunked(mod, 4 * 4 * 16 * 77), inputs)  # 3 ranges of 16 rows
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_heads_of_40_and_77_tokens_reach_the_tensor_cores_padded() -> None:
    """Self- and cross-attention of SD 1.5's shapes (head 40; 77 text tokens):
    every product becomes a subgroup-matrix kernel on operands padded to 16s.
    The head's padded columns are sliced off the output; the keys are padded
    before the products, so that the scores are not sliced: the softmax reads
    all 80 columns."""
    for keys in (256, 77):
        chain = _chunked(_attention_module((16, 256, keys, 40), "float16"), 256 * MiB)
        mod = accumulate_fp32(chain)
        text = subgroup_matrix_pass()(mod)["main"].script()
        assert "R.matmul" not in text
        assert len(re.findall(r"R\.call_tir\(subgroup_matrix_matmul", text)) == 2
        assert "R.nn.pad(" in text
        # One slice: the output's head of 48 back to 40, never the scores.
        slices = re.findall(r"R\.strided_slice\(\w+, \((\d+),\), \((\d+),\), \((\d+),\)", text)
        assert slices == [("2", "0", "40")]
        padded_keys = -(-keys // 16) * 16
        assert f'R.Tensor((16, 256, {padded_keys}), dtype="float32")' in text
        assert 'R.Tensor((16, 256, 48), dtype="float32")' in text


def test_padded_keys_give_the_unpadded_chains_numbers() -> None:
    """77 keys padded to 80: the padded keys get no probability, so the
    output is the unpadded chain's, bit for bit on the CPU (the padding only
    appends zeros to each sum)."""
    mod = _attention_module((4, 32, 77, 40))
    inputs = _random_qkv(32, 77, seed=1)
    want = _run(mod, inputs)
    chained = _chunked(mod, 256 * MiB)
    assert "R.nn.pad(" in chained["main"].script()
    np.testing.assert_array_equal(_run(chained, inputs), want)


def test_the_subgroup_matrix_path_builds_chunked_attention_for_webgpu() -> None:
    kernels = DEFAULT_KERNELS.without(
        subgroup_matrix=True, fused_attention_min_bytes=0, subgroup_attention_chunk_bytes=64 * 1024
    )
    target = webgpu_target()
    built = tvm.compile(
        _attention_module((8, 64, 77, 40), "float16"),
        target=target,
        relax_pipeline=webgpu_pipeline(target, kernels),
    )
    sources = wgsl_sources(built.mod)
    assert any("subgroup_matrix_matmul" in s for s in sources)
    assert not any("fused_attention" in s for s in sources)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_other_paths_chunk_the_attentions_they_would_fuse(
    dtype: str, called_kernels: Kernels, lowered: Lowered
) -> None:
    """``attention_chunk_bytes`` on the shader-f16 and fp32 paths: the attention
    that would be fused (scores of 8 x 64 x 64 fp32, 128 KiB, above the 64 KiB
    set here) is two scalar products around a softmax in two ranges of queries;
    one below the threshold (16 queries over 77 keys: 39 KiB) stays the plain chain."""
    kernels = DEFAULT_KERNELS.without(
        fused_attention_min_bytes=100 * 1024, attention_chunk_bytes=64 * 1024
    )

    def attention(queries: int, keys: int, options: KernelOptions) -> tvm.IRModule:
        return lowered(_attention_module((8, queries, keys, 40), dtype), options)

    fused = called_kernels(attention(64, 64, kernels.without(attention_chunk_bytes=0)))
    assert fused == ["fused_attention"], fused
    chunked = attention(64, 64, kernels)
    names = called_kernels(chunked)
    assert not [n for n in names if "attention" in n or "subgroup" in n], names
    calls = re.findall(r"\b(\w+)\(", chunked["main"].script())
    assert sum("scaled_softmax" in c for c in calls) == 2, calls
    assert sum("matmul" in c for c in calls) == 4, calls
    small = called_kernels(attention(16, 77, kernels))
    assert small == called_kernels(attention(16, 77, kernels.without(attention_chunk_bytes=0)))
    assert not [n for n in small if "attention" in n or "scaled_softmax" in n], small


def test_cross_attentions_scores_are_read_whole_by_the_softmax(
    called_kernels: Kernels, lowered: Lowered
) -> None:
    """In a WebGPU build of cross-attention (77 keys), the softmax reads the
    product's 80 columns of scores: no kernel slices them to 77 first, and
    the probabilities are not padded again for the second product."""
    kernels = DEFAULT_KERNELS.without(subgroup_matrix=True, fused_attention_min_bytes=0)
    called = called_kernels(lowered(_attention_module((16, 256, 77, 40), "float16"), kernels))
    assert sum(n.startswith("subgroup_matrix_matmul") for n in called) == 2, called
    assert not [n for n in called if re.fullmatch(r"strided_slice\d*", n)], called
    assert [n for n in called if "softmax" in n] == ["fused_scaled_softmax_cast"], called


# Attention fused on tensor cores (kernels/flash_attention.py), opt-in on the
# subgroup-matrix path. Its WGSL runs only on a GPU with subgroup matrices
# (scripts/gpu_parity.py prepare --flash); here: what takes it, the rewrite,
# and the shader TVM writes around it.


@pytest.mark.parametrize(
    ("shape", "fits"),
    [
        ((4096, 4096, 40), True),  # SD 1.5 512's 64x64 level
        ((4096, 4096, 64), True),  # SDXL 1024's 64x64 level
        ((1024, 1024, 64), True),  # SDXL 1024's 32x32 level
        ((64, 64, 8), True),  # the tiny presets
        ((1024, 1024, 80), False),  # SD 1.5's 32x32: a padded row is longer than a block of keys
        ((4096, 77, 40), False),  # cross-attention: keys not in blocks
        ((48, 64, 40), False),  # queries not in whole subgroups' rows
        ((64, 64, 42), False),  # a depth not in 4s
    ],
)
def test_what_the_fused_tensor_core_kernel_takes(shape: tuple[int, int, int], fits: bool) -> None:
    assert flash_fits(*shape) is fits


def test_its_workgroup_memory_stays_within_what_browsers_allow() -> None:
    assert not flash_fits(4096, 4096, 64, FlashTiles(subgroups=2))  # 36 KiB
    assert flash_fits(4096, 4096, 40, FlashTiles(subgroups=1, keys=64))
    with pytest.raises(ValueError, match="does not take 1024x1024x80"):
        flash_attention_kernel(16, 1024, 1024, 80, 80**-0.5)


def _flash(mod: tvm.IRModule) -> tvm.IRModule:
    flash = fuse_attention_pass(min_bytes=0, chunk_bytes=256 * MiB, flash=FlashTiles())
    result: tvm.IRModule = flash(mod)
    return result


def test_on_the_subgroup_matrix_path_it_replaces_the_chain_where_it_fits() -> None:
    fused = _flash(_attention_module((16, 64, 64, 40), "float16"))
    assert _ops(fused) == ["call_tir"]
    prims = fused.functions_items()
    assert [gv.name_hint for gv, f in prims if isinstance(f, tvm.tirx.PrimFunc)] == [
        "flash_attention"
    ]
    out = fused["main"].ret_ty
    assert [int(d) for d in out.shape.values] == [16, 64, 40] and str(out.dtype) == "float16"
    # Cross-attention's 77 keys (and fp32) keep the chunked products.
    assert "flash_attention" not in _flash(_attention_module((16, 64, 77, 40), "float16")).script()
    assert "flash_attention" not in _flash(_attention_module((16, 64, 64, 40))).script()


def test_the_fused_tensor_core_kernel_builds_for_webgpu() -> None:
    kernels = DEFAULT_KERNELS.without(
        subgroup_matrix=True, fused_attention_min_bytes=0, subgroup_flash_attention=FlashTiles()
    )
    target = webgpu_target()
    built = tvm.compile(
        _attention_module((16, 64, 64, 40), "float16"),
        target=target,
        relax_pipeline=webgpu_pipeline(target, kernels),
    )
    (source,) = [s for s in wgsl_sources(built.mod) if "flash_attention" in s]
    check_wgsl([source])
    # Its workgroup buffers as TVM declares them (keys 64 a block, depth padded to 48,
    # 32 query rows): 24.1 KiB in all, and the output written by the WGSL text.
    for declared in (
        "var<workgroup> wsd_fk : array<f16, 3072>;",
        "var<workgroup> wsd_fs : array<f32, 2048>;",
        "var<workgroup> wsd_fp : array<f16, 2048>;",
        "var<storage, read_write> O_ptr : array<f16>;",
    ):
        assert declared in source
    assert "@workgroup_size(32, 1, 1)" in source
    assert source.count("subgroupMatrixMultiplyAccumulate") == 2 * 4 * 3 * 2  # scores and P V
    # The output's matrices are rescaled in every block, never assigned under an `if`
    # (miscompiled on Dawn over NVIDIA's Vulkan driver: docs/kernels.md).
    assert "wsd_ff" not in source and "workgroupUniformLoad" not in source
    body = source[source.index("@diagnostic(off, chromium.subgroup_matrix_uniformity)") :]
    for line in body.splitlines():
        if line.strip().startswith("if ("):
            assert "subgroupMatrix" not in line and "wsd_o" not in line, line
