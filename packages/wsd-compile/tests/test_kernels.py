"""wsd's WebGPU kernels: the graph rewrites keep the numbers (checked on the
CPU against TVM's own lowering), and the schedules build for WebGPU."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import tvm
from tvm import relax, te

from wsd_compile.kernels import (
    DEFAULT_KERNELS,
    TVM_DEFAULT_KERNELS,
    FewRowsMatmul,
    KernelOptions,
    MatmulTiles,
    TiledMatmul,
    decompose_group_norm,
    legalize_map,
    load_tile_table,
    matmul_shape,
    split_k_parts,
    webgpu_pipeline,
)
from wsd_compile.webgpu import check_wgsl, webgpu_target, wgsl_sources

T = relax.TensorType


def _run(mod: tvm.IRModule, args: list[np.ndarray]) -> np.ndarray:
    vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
    out: np.ndarray = vm["main"](*[tvm.runtime.tensor(a) for a in args]).numpy()
    return out


def _conv_norm_module(
    x: tuple[int, ...], w: tuple[int, ...], *, stride: int, padding: int, groups: int
) -> tvm.IRModule:
    bb = relax.BlockBuilder()
    cout = w[0]
    xv, wv = relax.Var("x", T(x, "float32")), relax.Var("w", T(w, "float32"))
    gv, bv = relax.Var("g", T((cout,), "float32")), relax.Var("b", T((cout,), "float32"))
    with bb.function("main", [xv, wv, gv, bv]):
        with bb.dataflow():
            c = bb.emit(relax.op.nn.conv2d(xv, wv, strides=stride, padding=padding))
            n = bb.emit(
                relax.op.nn.group_norm(c, gv, bv, num_groups=groups, channel_axis=1, axes=[2, 3])
            )
            out = bb.emit_output(relax.op.nn.silu(n))
        bb.emit_func_output(out)
    return bb.get()


@pytest.mark.parametrize(
    ("channel_block", "split_k_tiles"),
    [(0, 0), (16, 0), (16, 256)],
    ids=["channel-major", "tap-blocks", "tap-blocks-split-k"],
)
@pytest.mark.parametrize(
    ("x", "w", "stride", "padding", "groups"),
    [
        ((2, 64, 16, 16), (32, 64, 3, 3), 1, 1, 8),  # the UNet's 3x3 convolutions
        ((1, 48, 9, 7), (16, 48, 3, 3), 2, 1, 4),  # 3 blocks of 16 channels, strided, odd
        ((2, 128, 4, 4), (64, 128, 3, 3), 1, 1, 8),  # few outputs, deep k: split-K
        ((1, 32, 15, 9), (16, 32, 3, 3), 2, 1, 4),  # downsampling, odd sizes
        ((2, 48, 8, 8), (64, 48, 1, 1), 1, 0, 32),  # 1x1 shortcut, one channel per group... x2
    ],
)
def test_rewrites_match_tvm_lowering(
    x: tuple[int, ...],
    w: tuple[int, ...],
    stride: int,
    padding: int,
    groups: int,
    channel_block: int,
    split_k_tiles: int,
) -> None:
    mod = _conv_norm_module(x, w, stride=stride, padding=padding, groups=groups)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s).astype("float32") * 3 + 1 for s in (x, w, (w[0],), (w[0],))]
    rewritten = relax.transform.LegalizeOps(legalize_map(channel_block, split_k_tiles))(
        decompose_group_norm(mod)
    )
    names = [gv.name_hint for gv in rewritten.get_global_vars()]
    assert "conv2d" in names and not any("group_norm" in n for n in names)
    assert ("conv2d_split_sum" in names) == (split_k_tiles > 0 and x == (2, 128, 4, 4))
    expected, got = _run(mod, args), _run(rewritten, args)
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))


def _group_norm_silu(shape: tuple[int, ...]) -> tvm.IRModule:
    bb = relax.BlockBuilder()
    x = relax.Var("x", T(shape, "float16"))
    g, b = relax.Var("g", T((shape[1],), "float16")), relax.Var("b", T((shape[1],), "float16"))
    with bb.function("main", [x, g, b]):
        with bb.dataflow():
            n = bb.emit(relax.op.nn.group_norm(x, g, b, num_groups=32, channel_axis=1, axes=[2, 3]))
            out = bb.emit_output(relax.op.nn.silu(n))
        bb.emit_func_output(out)
    return bb.get()


def _kernel_calls(mod: tvm.IRModule, kernels: KernelOptions) -> tuple[list[str], str]:
    target = webgpu_target()
    with target:
        built = webgpu_pipeline(target, kernels)(mod)
    script = built["main"].script()
    return re.findall(r"^\s*(\w+)\((?:lv|alloc|x|g)", script, re.M), script


@pytest.mark.parametrize(
    ("shape", "kernels"),
    [((2, 320, 64, 64), 5), ((2, 32, 8, 8), 3), ((1, 64, 4, 4), 3)],
    ids=["chunks", "one-chunk", "one-chunk-2-channels"],
)
def test_group_norm_kernels_read_x_without_a_copy_and_fp16_stays_fp16(
    shape: tuple[int, int, int, int], kernels: int
) -> None:
    decomposed = decompose_group_norm(_group_norm_silu(shape)).script()
    assert "group_norm" not in decomposed
    assert f'-> R.Tensor({shape}, dtype="float16")' in decomposed
    calls, script = _kernel_calls(
        _group_norm_silu(shape), DEFAULT_KERNELS.without(group_norm_stats_kernels=False)
    )
    # At 64x64, 10 channels x 4096 pixels per group, summed as 40 chunks of 1024
    # in fp32: chunk sums, group sums, chunk sums of squares about the mean, group
    # sums of those, then the normalisation with the SiLU after it; a group of one
    # chunk sums each in one kernel. Only the last kernel writes a tensor the size
    # of x (no fp32 or centred copy of x).
    assert len(calls) == kernels, calls
    assert calls[-1].endswith("silu") and "sum" not in calls[-1]
    assert sum("sum" in c for c in calls) == kernels - 1
    allocs = re.findall(r"R\.shape\(\[(\d+)\]\), 0, R\.dtype\(\"uint8\"\)", script)
    assert max(int(a) for a in allocs[:-1]) < 2 * int(np.prod(shape)), allocs


@pytest.mark.parametrize(
    ("shape", "stats"),
    [((2, 320, 64, 64), ["group_norm_chunk_stats", "group_norm_stats"]),
     ((2, 32, 8, 8), ["group_norm_chunk_stats"])],
    ids=["chunks", "one-chunk"],
)  # fmt: skip
def test_by_default_group_norm_statistics_are_one_kernel_a_chunk(
    shape: tuple[int, int, int, int], stats: list[str]
) -> None:
    calls, script = _kernel_calls(_group_norm_silu(shape), DEFAULT_KERNELS)
    # Each chunk's mean and M2 in one kernel, the chunks combined in a second (none
    # for a group of one chunk), then the normalisation with the SiLU after it.
    assert calls[:-1] == stats, calls
    assert calls[-1].endswith("silu") and "sum" not in calls[-1]
    # The statistics are fp32, one (or two) per chunk and per group: nothing the size of x.
    allocs = re.findall(r"R\.shape\(\[(\d+)\]\), 0, R\.dtype\(\"uint8\"\)", script)
    assert max(int(a) for a in allocs[:-1]) <= 4 * 2 * 32 * 40, allocs


def test_group_norm_statistics_build_for_webgpu() -> None:
    target = webgpu_target()
    lib = tvm.compile(
        _group_norm_silu((2, 320, 64, 64)), target=target, relax_pipeline=webgpu_pipeline(target)
    )
    sources = wgsl_sources(lib.mod)
    check_wgsl(sources)
    functions = [f for s in sources for f in s.split("// Function: ")]
    (chunks,) = [f for f in functions if "fn group_norm_chunk_stats_kernel" in f]
    (groups,) = [f for f in functions if "fn group_norm_stats_kernel" in f]
    # A workgroup of 256 a chunk of 1024 fp16 elements: the sum, then the squares about
    # the mean, each a tree of 8 halvings in workgroup memory (a barrier before each,
    # and after the tree).
    for kernel in (chunks, groups):
        assert "@workgroup_size(256, 1, 1)" in kernel
        assert "var<workgroup> tree : array<f32, 256>;" in kernel
        assert kernel.count("workgroupBarrier()") == 2 * 8 + 3
    assert chunks.count("X_ptr[") == 4 and chunks.count("X2_ptr[") == 4
    # 40 chunks a group (64 groups), combined a workgroup a group: an invocation a
    # chunk, reading its mean twice and its M2 once.
    assert "40i" in groups and groups.count("A_ptr[") == 2 and groups.count("B_ptr[") == 1


def test_other_convolutions_keep_tvm_lowering() -> None:
    bb = relax.BlockBuilder()
    x, w = relax.Var("x", T((1, 8, 8, 8), "float32")), relax.Var("w", T((8, 4, 3, 3), "float32"))
    with bb.function("main", [x, w]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.nn.conv2d(x, w, padding=1, groups=2))
        bb.emit_func_output(out)
    mod = relax.transform.LegalizeOps(legalize_map())(bb.get())
    assert not any("im2col" in str(f) for _, f in mod.functions_items())


def _matmul_nt(a: tuple[int, int], b: tuple[int, int], *, k_inner: bool = True) -> Any:
    """``A @ B.T`` as a PrimFunc, B stored [N, K] (or [K, N] with ``k_inner=False``)."""
    x = te.placeholder(a, name="x")
    y = te.placeholder(b if k_inner else (b[1], b[0]), name="y")
    k = te.reduce_axis((0, a[1]), name="k")
    out = te.compute(
        (a[0], b[0]),
        lambda i, j: te.sum(x[i, k] * (y[j, k] if k_inner else y[k, j]), axis=k),
        name="matmul",
    )
    return te.create_prim_func([x, y, out])


@pytest.mark.parametrize(
    ("a", "b", "k_inner", "vector"),
    [
        ((256, 320), (640, 320), True, 4),
        ((256, 320), (640, 320), False, 1),  # B read across rows: no vector loads
        ((77, 320), (640, 320), True, 1),  # 77 rows are padded to the tile
        ((256, 40), (64, 40), True, 1),  # so is k = 40
    ],
)
def test_vector_loads_only_where_tiles_divide(
    a: tuple[int, int], b: tuple[int, int], k_inner: bool, vector: int
) -> None:
    target = webgpu_target()
    rule = TiledMatmul(MatmulTiles())
    assert rule.apply(_matmul_nt(a, b, k_inner=k_inner), target, False) is not None
    assert rule.get_configs(target).vector_size == vector


@pytest.mark.parametrize(
    ("rows", "k_inner", "applies"),
    [
        (2, False, True),  # a linear layer's lifted weight, [K, N]: the time embedding
        (8, False, True),
        (9, False, False),  # more rows: tiled as any matmul
        (2, True, False),  # B read along k: not the layout it is written for
    ],
)
def test_few_rows_take_matmuls_of_a_few_rows_over_weights_stored_k_major(
    rows: int, k_inner: bool, applies: bool
) -> None:
    func = _matmul_nt((rows, 1280), (320, 1280), k_inner=k_inner)
    assert (FewRowsMatmul().apply(func, webgpu_target(), False) is not None) == applies


def _linear_module(rows: int, k: int, n: int) -> tvm.IRModule:
    """``x @ w + b`` with the weight stored [K, N], as lifted linear layers are."""
    bb = relax.BlockBuilder()
    x, w = relax.Var("x", T((rows, k), "float32")), relax.Var("w", T((k, n), "float32"))
    b = relax.Var("b", T((n,), "float32"))
    with bb.function("main", [x, w, b]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.add(relax.op.matmul(x, w), b))
        bb.emit_func_output(out)
    return bb.get()


def test_few_rows_kernel_reads_each_weight_once_with_the_bias_fused() -> None:
    target = webgpu_target()
    mod = _linear_module(2, 1280, 320)
    executable = tvm.compile(
        mod, target=target, relax_pipeline=webgpu_pipeline(target, DEFAULT_KERNELS)
    )
    (wgsl,) = wgsl_sources(executable.mod)
    # One kernel: 32 columns x 8 splits of k per workgroup, the bias in its epilogue.
    assert wgsl.count("@compute") == 1
    assert "@workgroup_size(32, 8, 1)" in wgsl
    assert "b_ptr[" in wgsl
    # Two rows summed per thread: one weight load serves both.
    assert re.search(r"array<f32, 2>", wgsl)
    off = tvm.compile(
        mod,
        target=target,
        relax_pipeline=webgpu_pipeline(target, DEFAULT_KERNELS.without(few_rows=0)),
    )
    assert "@workgroup_size(32, 8, 1)" not in "\n".join(wgsl_sources(off.mod))


def test_a_workgroup_over_the_default_limit_is_refused() -> None:
    from wsd_compile import WsdCompileError

    shader = "@compute @workgroup_size({})\nfn k_kernel() {{}}"
    check_wgsl([shader.format("256, 1, 1"), shader.format("16, 16"), shader.format("32, 8, 1")])
    with pytest.raises(WsdCompileError, match="k_kernel has 512 invocations per workgroup"):
        check_wgsl([shader.format("32, 16, 1")])
    with pytest.raises(WsdCompileError, match="has 1024 invocations"):
        check_wgsl([shader.format("1024")])


def test_kernels_build_for_webgpu() -> None:
    target = webgpu_target()
    mod = _conv_norm_module((2, 32, 16, 16), (64, 32, 3, 3), stride=1, padding=1, groups=8)
    for kernels in (DEFAULT_KERNELS, TVM_DEFAULT_KERNELS, DEFAULT_KERNELS.without(tiles=None)):
        executable = tvm.compile(
            mod, target=target, relax_pipeline=webgpu_pipeline(target, kernels)
        )
        sources = wgsl_sources(executable.mod)
        check_wgsl(sources)
        wgsl = "\n".join(sources)
        assert "fn " in wgsl


def _conv_module(x: tuple[int, ...], w: tuple[int, ...]) -> tvm.IRModule:
    bb = relax.BlockBuilder()
    xv, wv = relax.Var("x", T(x, "float32")), relax.Var("w", T(w, "float32"))
    with bb.function("main", [xv, wv]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.nn.conv2d(xv, wv, strides=1, padding=1))
        bb.emit_func_output(out)
    return bb.get()


def _workgroup_words(kernels: KernelOptions, mod: tvm.IRModule) -> list[int]:
    target = webgpu_target()
    executable = tvm.compile(mod, target=target, relax_pipeline=webgpu_pipeline(target, kernels))
    wgsl = "\n".join(wgsl_sources(executable.mod))
    return [int(n) for n in re.findall(r"var<workgroup> \w+ : array<f32, (\d+)>", wgsl)]


def test_tile_table_picks_the_tiles_of_its_shape_only() -> None:
    mod = _conv_module((2, 32, 16, 16), (64, 32, 3, 3))
    shapes = [
        s
        for func in tvm.relax.transform.LegalizeOps(legalize_map())(mod).functions.values()
        if (s := matmul_shape(func)) is not None
    ]
    assert shapes == [(1, 64, 512, 288)]  # i: output channels, j: pixels x batch, k: 32 x 3 x 3
    plain = DEFAULT_KERNELS.without(table=(), adaptive=False)
    big = MatmulTiles(micro_x=8, micro_y=8)
    # 64x64 tiles of k-step 16, rows padded to 17 words; 128x128 with the table entry.
    assert _workgroup_words(plain, mod) == [64 * 17, 64 * 17]
    assert _workgroup_words(plain.without(table=((shapes[0], big),)), mod) == [128 * 17] * 2
    other = (1, 64, 512, 289)
    assert _workgroup_words(plain.without(table=((other, big),)), mod) == [64 * 17, 64 * 17]


def test_committed_tile_table_is_valid() -> None:
    table = load_tile_table()
    assert dict(DEFAULT_KERNELS.table) == table
    for shape, tiles in table.items():
        assert len(shape) == 4 and all(d > 0 for d in shape)
        rows = tiles.block_y * tiles.micro_y + tiles.block_x * tiles.micro_x
        words = rows * (tiles.micro_k + 1)
        assert 4 * words <= 32 * 1024, (shape, tiles)  # TVM's WebGPU workgroup-memory cap
        assert tiles.block_x * tiles.block_y <= 256, (shape, tiles)  # WebGPU's default limit
        if tiles.contiguous:  # operands read as vectors of 4
            assert tiles.micro_x % 4 == 0 and tiles.micro_y % 4 == 0, (shape, tiles)


def test_runtime_check_convolution_takes_the_split_k_path() -> None:
    """The runtime check (run on WebGPU in Chromium and Dawn against numpy)
    exercises split-K and the tap-blocked k order with the default kernels."""
    from wsd_compile.check import build_check_module

    rewritten = relax.transform.LegalizeOps(
        legalize_map(DEFAULT_KERNELS.channel_block, DEFAULT_KERNELS.split_k_tiles)
    )(build_check_module())
    names = [gv.name_hint for gv in rewritten.get_global_vars()]
    assert "conv2d_split_sum" in names
    assert split_k_parts(16, 64, 128 * 9, DEFAULT_KERNELS.split_k_tiles) == 2


def _vector_tiles(kernels: KernelOptions, mod: tvm.IRModule) -> list[int]:
    """Per kernel, how many of its workgroup tiles are vectors of 4 (what TVM
    declares where ``matmul_contiguous`` stages them and reads them)."""
    target = webgpu_target()
    executable = tvm.compile(mod, target=target, relax_pipeline=webgpu_pipeline(target, kernels))
    vector = r"var<workgroup> \w+ : array<vec4<f32>"
    return [len(re.findall(vector, wgsl)) for wgsl in wgsl_sources(executable.mod)]


def test_contiguous_matmuls_everywhere_or_where_the_table_says() -> None:
    # A convolution's weight tile is a vector tile, its gathered pixels are not
    # (their 4 words are written one by one); both of a linear layer's are.
    conv = (_conv_module((2, 32, 16, 16), (64, 32, 3, 3)), (1, 64, 512, 288), 1)
    linear = (_linear_module(512, 64, 64), (1, 512, 64, 64), 2)
    plain = DEFAULT_KERNELS.without(table=(), adaptive=False, split_k_tiles=0, few_rows=0)
    tiles = MatmulTiles(contiguous=True)
    for mod, shape, vectors in (conv, linear):
        assert _vector_tiles(plain, mod) == [0]
        assert _vector_tiles(plain.without(matmul_contiguous=True), mod) == [vectors]
        assert _vector_tiles(plain.without(table=((shape, tiles),)), mod) == [vectors]
        other = (*shape[:3], shape[3] + 1)
        assert _vector_tiles(plain.without(table=((other, tiles),)), mod) == [0]
