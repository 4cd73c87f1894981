"""The tensor-core kernels with workgroup tiles as TVM writes them
(wsd_compile.kernels.subgroup_tiles), completed by the page's shader rewrite
(js/wgsl_rewrite.js): every gather of four halves becomes one vector load and
A and B are declared as arrays of vec4<f16>. Checked on the generated WGSL
itself, so the Python generator and the JS rewrite cannot drift apart."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import tvm
from tvm import relax

from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.kernels.subgroup_tiles import TILES
from wsd_compile.webgpu import WASM_HOST, wgsl_sources
from wsd_web.server import STATIC_DIR

REWRITE = STATIC_DIR / "js" / "wgsl_rewrite.js"


def _tiles_kernel(conv: bool, tall_up_to: int = 0, side: int = 3, gather: bool = True) -> str:
    """The WGSL of one kernel with workgroup tiles: a matmul, or a ``side x
    side`` convolution, gathering A from its input or reading an im2col
    matrix; 128 x 64 blocks for at most ``tall_up_to`` columns."""
    bb = relax.BlockBuilder()
    if conv:
        x = relax.Var("x", relax.TensorType((2, 32, 16, 16), "float16"))
        w = relax.Var("w", relax.TensorType((128, 32, side, side), "float16"))
        op = relax.op.nn.conv2d(x, w, padding=side // 2, out_dtype="float32")
        args = [x, w]
    else:
        x = relax.Var("x", relax.TensorType((2, 128, 256), "float16"))
        w = relax.Var("w", relax.TensorType((256, 256), "float16"))
        args, op = [x, w], relax.op.matmul(x, w, out_dtype="float32")
    with bb.function("main", args):
        with bb.dataflow():
            c = bb.emit(op)
            d = bb.emit_output(relax.op.astype(c, "float16"))
        bb.emit_func_output(d)
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    tiles = replace(TILES, large_from=1, min_k=16, tall_up_to=tall_up_to, gather=gather)
    kernels = DEFAULT_KERNELS.without(subgroup_matrix=True, subgroup_tiles=tiles)
    built = tvm.compile(bb.get(), target=target, relax_pipeline=webgpu_pipeline(target, kernels))
    [source] = [s for s in wgsl_sources(built.mod) if "var<workgroup> wsd_ta" in s]
    return source


def _complete(sources: list[str], tmp_path: Path) -> list[str]:
    """completeShader (js/wgsl_rewrite.js) on each source, in Node."""
    given = tmp_path / "sources.json"
    given.write_text(json.dumps(sources), encoding="utf-8")
    script = (
        f"const m = await import({json.dumps(REWRITE.as_uri())});"
        "const fs = await import('node:fs');"
        f"const sources = JSON.parse(fs.readFileSync({json.dumps(str(given))}, 'utf8'));"
        "process.stdout.write(JSON.stringify(sources.map(m.completeShader)));"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    completed: list[str] = json.loads(done.stdout)
    return completed


def test_tvm_builds_the_tiles_with_two_workgroup_buffers_and_a_diagnostic_block() -> None:
    source = _tiles_kernel(conv=False)
    # 256 rows in 128 x 128 blocks of 4 x 2 subgroups; k in 16 stages of 16.
    assert "@workgroup_size(256, 1, 1)" in source
    assert "var<workgroup> wsd_ta : array<f16, 6144>;" in source  # 2 x 128 x (16 + 8)
    assert "var<workgroup> wsd_tb : array<f16, 4352>;" in source  # 2 x 16 x (128 + 8)
    assert "@diagnostic(off, chromium.subgroup_matrix_uniformity) {" in source
    assert source.count("workgroupBarrier();") == 2
    assert "for (var wsd_s = 0u; wsd_s < 16u; wsd_s++) {" in source
    assert "var<storage, read_write> C_ptr : array<f32>;" in source
    assert source.count("subgroupMatrixStore(&C_ptr,") == 8


def test_tvm_builds_tall_tiles_of_four_subgroups_sharing_b() -> None:
    source = _tiles_kernel(conv=False, tall_up_to=320)
    # 256 columns in 128 x 64 blocks of 4 x 1 subgroups of 32 x 64.
    assert "@workgroup_size(128, 1, 1)" in source
    assert "var<workgroup> wsd_ta : array<f16, 6144>;" in source  # 2 x 128 x (16 + 8)
    assert "var<workgroup> wsd_tb : array<f16, 2304>;" in source  # 2 x 16 x (64 + 8)
    assert source.count("subgroupMatrixStore(&C_ptr,") == 8


def test_the_page_turns_the_tiles_gathers_into_vector_loads(tmp_path: Path) -> None:
    """A matmul, a 3x3 convolution reading its im2col matrix and a 1x1 one
    gathering from its input: all of A's and B's loads are vectors of four."""
    sources = [
        _tiles_kernel(conv=False),
        _tiles_kernel(conv=True, gather=False),
        _tiles_kernel(conv=True, side=1),
    ]
    assert "wsd_pa0" in sources[2] and "wsd_pa0" not in sources[1]
    for before, after in zip(sources, _complete(sources, tmp_path), strict=True):
        assert after.startswith("enable chromium_experimental_subgroup_matrix;\n")
        for buffer in ("A_ptr", "B_ptr"):
            assert f"var<storage, read> {buffer} : array<f16>;" in before
            assert f"var<storage, read> {buffer} : array<vec4<f16>>;" in after
            gathers = before.count(f"vec4<f16>({buffer}[")
            assert gathers > 0
            # Each gather is one load of the vector at a quarter of its offset.
            loads = re.findall(rf"= {buffer}\[\((.*)\) / 4u\];", after)
            assert len(loads) == gathers == after.count(f"{buffer}[")
        # Nothing else changed: the matrices still load from workgroup memory.
        assert after.count("subgroupMatrixLoad") == before.count("subgroupMatrixLoad")
        assert after.count("wsd_ta[") == before.count("wsd_ta[")


def test_a_3x3_convolution_gathering_from_its_input_keeps_a_scalar(tmp_path: Path) -> None:
    """Its loads of A are per element (zero in the padding): A stays an array
    of halves, and B's loads still become vectors."""
    before = _tiles_kernel(conv=True)
    [after] = _complete([before], tmp_path)
    assert "select(vec4<f16>(), vec4<f16>(" in before
    assert "var<storage, read> A_ptr : array<f16>;" in after
    assert "var<storage, read> B_ptr : array<vec4<f16>>;" in after
    assert after.count("A_ptr[") == before.count("A_ptr[") > 0


@functools.cache
def _im2col_kernel() -> str:
    """The WGSL of the im2col kernel of ``conv2d(silu(x))`` (3x3) at SD 1.5's
    64x64 level, as TVM writes it (wsd_compile.kernels.im2col)."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((2, 320, 64, 64), "float16"))
    w = relax.Var("w", relax.TensorType((320, 320, 3, 3), "float16"))
    with bb.function("main", [x, w]):
        with bb.dataflow():
            s = bb.emit(relax.op.nn.silu(x))
            y = bb.emit(relax.op.nn.conv2d(s, w, padding=(1, 1), out_dtype="float32"))
            z = bb.emit_output(relax.op.astype(y, "float16"))
        bb.emit_func_output(z)
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    kernels = DEFAULT_KERNELS.without(
        subgroup_matrix=True, subgroup_tiles=replace(TILES, gather=False)
    )
    built = tvm.compile(bb.get(), target=target, relax_pipeline=webgpu_pipeline(target, kernels))
    [source] = [s for s in wgsl_sources(built.mod) if "fn fused_silu_im2col_kernel" in s]
    start = source.rindex("enable f16;", 0, source.index("fn fused_silu_im2col_kernel"))
    end = source.find("//----", start)
    return source[start : end if end > 0 else None]


def test_tvm_writes_each_threads_four_pixels_a_tap_as_one_vector_with_no_division() -> None:
    """SiLU and a convolution at SD 1.5's 64x64 level (320 channels, two
    images), its tiles reading an im2col matrix rather than gathering from
    the input (wsd_compile.kernels.im2col): each thread writes 4 consecutive
    pixels' 9 taps, each tap as one vector of 4 halves (4 lines, which the
    page makes one store, below), 8192 pixels apart, with shifts and masks
    only: no WGSL integer division or remainder."""
    source = _im2col_kernel()
    body = source[source.index("@compute") :]
    assert "@workgroup_size(256, 1, 1)" in body
    stores = re.findall(r"im2col_intermediate_ptr\[(v__\d+) \+ (\d)\] = vec4<f16>\(", body)
    assert [int(q) for _, q in stores] == [0, 1, 2, 3] * 9
    offsets = [re.search(rf"let {v} : i32 = (.*);", body) for v, _ in stores[::4]]
    assert all(
        o is not None and o[1].endswith(f" + {8192 * tap}i)")
        for tap, o in enumerate(offsets)
        if tap
    )
    assert not re.search(r"[^/]/ ?\d|%", body)


def test_the_page_turns_the_im2col_kernels_stores_into_vector_stores(tmp_path: Path) -> None:
    """Each of the 9 taps of a thread's 4 pixels, 4 lines as TVM writes
    them, becomes one store of a vec4<f16>, at a quarter of its offset."""
    before = _im2col_kernel()
    [after] = _complete([before], tmp_path)
    assert "var<storage, read_write> im2col_intermediate_ptr : array<f16>;" in before
    assert before.count("im2col_intermediate_ptr[") == 36
    assert "var<storage, read_write> im2col_intermediate_ptr : array<vec4<f16>>;" in after
    stores = re.findall(r"im2col_intermediate_ptr\[\((v__\d+)\) / 4\] = vec4<f16>\(", after)
    assert len(stores) == 9 == after.count("im2col_intermediate_ptr[")
    # Nothing else changed: every input load and its activation are still there.
    assert after.count("x_ptr[") == before.count("x_ptr[") > 0
