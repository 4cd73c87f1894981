"""Workgroup tiles for the tensor-core GEMM (kernels/subgroup_tiles.py): which
products take them, the WGSL TVM builds around them, and their addressing,
checked on the CPU by running the generated offsets over numpy arrays.
The kernels themselves run only where WebGPU has subgroup matrices (the H200
through Dawn: docs/benchmarks/gpu-parity.json)."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from wsd_compile.kernels.subgroup_gemm import (
    SPLIT_K_WORKGROUPS,
    Gemm,
    Window,
    gemm_blocks,
    gemm_wgsl,
)
from wsd_compile.kernels.subgroup_tiles import (
    MAX_WORKGROUP_BYTES,
    NO_TILES,
    TILES,
    TilePolicy,
    workgroup_halves,
)


def _blocks(m: int, n: int, k: int, conv: bool = False, tiles: TilePolicy = TILES) -> Gemm | None:
    pixels = 256 if conv else 0  # a 16x16 image: whole 16-pixel matrices
    return gemm_blocks(
        m, n, k, conv=conv, pixels=pixels, split_k_workgroups=SPLIT_K_WORKGROUPS, tiles=tiles
    )


@pytest.mark.parametrize(
    ("shape", "conv", "block", "parts"),
    [
        ((8192, 1280, 1280), False, (128, 128), 1),  # 640 blocks of 128 x 128
        ((2048, 640, 5760), True, (128, 128), 2),  # 80 blocks: 640 subgroups, split in 2
        ((512, 1280, 11520), True, (64, 128), 4),  # 40 of 128 x 128: 64 x 128
        ((154, 1280, 768), False, (64, 128), 3),  # text tokens: the last row block overlaps
        ((8192, 320, 320), False, (128, 64), 1),  # SD 1.5's 320 columns: 320 blocks of 128 x 64
        ((8192, 320, 2880), True, (128, 64), 1),
        ((262144, 128, 1152), True, (128, 64), 1),  # the VAE's 128 channels at 512x512
        ((65536, 256, 2304), True, (128, 64), 1),
        ((2048, 320, 2880), True, (128, 64), 4),  # 80 blocks: 320 subgroups, split in 4
        ((512, 320, 2880), True, None, 1),  # 20 of 128 x 64, and columns not in 128s
        ((256, 256, 2304), True, (64, 128), 9),  # 8 of 128 x 64: 64 x 128, split
        ((8192, 384, 384), False, (128, 128), 1),  # more than 320 columns
        ((48, 128, 256), False, None, 1),  # fewer rows than a block
        ((8192, 4096, 48), False, None, 1),  # Q K^T over heads of 40: three stages
    ],
)
def test_products_with_columns_in_64s_take_workgroup_tiles(
    shape: tuple[int, int, int], conv: bool, block: tuple[int, int] | None, parts: int
) -> None:
    g = _blocks(*shape, conv=conv)
    assert g is not None
    assert ((g.rows, g.cols) if g.tiled else None) == block
    if g.tiled:
        assert (g.tm, g.tn, g.bk, g.parts) == (2, 4, 16, parts)
        assert 2 * sum(workgroup_halves(g)) <= MAX_WORKGROUP_BYTES
    off = _blocks(*shape, conv=conv, tiles=NO_TILES)
    assert off is not None and not off.tiled


def test_without_tall_tiles_320_columns_take_64x64_tiles_or_none() -> None:
    short = TilePolicy(tall_up_to=0)
    narrow = _blocks(8192, 320, 2880, conv=True, tiles=replace(short, narrow_k=32))
    assert narrow is not None and narrow.tiled
    assert (narrow.rows, narrow.cols, narrow.tm, narrow.tn, narrow.bk) == (64, 64, 2, 2, 32)
    wide = _blocks(8192, 320, 2880, conv=True, tiles=short)  # one subgroup a block
    assert wide is not None and not wide.tiled
    square = _blocks(262144, 128, 1152, conv=True, tiles=short)
    assert square is not None and (square.rows, square.cols) == (128, 128)


def test_tiles_too_large_for_workgroup_memory_fall_back_to_smaller_blocks() -> None:
    # 128 x 128 with 32 columns of K a stage and padded rows: 38 KiB, over 32 KiB.
    big = _blocks(8192, 1280, 1280, tiles=TilePolicy(k=32, pad=8))
    assert big is not None and (big.rows, big.cols) == (64, 128)
    unpadded = _blocks(8192, 1280, 1280, tiles=TilePolicy(k=32, pad=0))
    assert unpadded is not None and (unpadded.rows, unpadded.cols) == (128, 128)
    assert 2 * sum(workgroup_halves(unpadded)) == MAX_WORKGROUP_BYTES


def test_a_convolution_whose_matrices_span_images_keeps_one_subgroup_a_block() -> None:
    g = gemm_blocks(64 * 4, 128, 64, conv=True, pixels=4, tiles=TILES)  # 2x2 images
    assert g is not None and not g.tiled


# --- The addressing, run on the CPU --------------------------------------------------

_SUFFIX = re.compile(r"\b(\d+)u\b")


def _eval(expr: str, env: dict[str, int]) -> int:
    """A WGSL u32 expression of the kernel's text, in Python."""
    py = _SUFFIX.sub(r"\1", expr).replace("/", "//").replace(".", "_")
    return int(eval(py, {"min": min}, env))


def _gather(statement: str, scope: dict[str, object]) -> tuple[str, np.ndarray]:
    """A register filled by a convolution's gather (``{ let ...; wsd_gaP = ...; ... }``),
    its WGSL statements run in Python in ``scope`` (the invocation's, its
    variables carried from stage to stage; ``A_ptr`` the input, flat):
    (register, its 4 halves)."""
    body = _SUFFIX.sub(r"\1", statement.strip("{} ")).replace("0.0h", "0.0")
    body = body.replace("vec4<f16>()", "(0.0, 0.0, 0.0, 0.0)").replace("vec4<f16>", "")
    body = body.replace("/", "//").replace("&&", " and ").replace("let ", "")
    reg = ""
    for statement in (x.strip() for x in body.split(";") if x.strip()):
        exec(statement, scope)
        reg = reg or (statement.split(" = ")[0] if statement.startswith("wsd_ga") else "")
    return reg, np.array(scope[reg])


class _Gathering:
    """A convolution's gather in a kernel's WGSL lines (none for other kernels)."""

    def __init__(self, lines: list[str]) -> None:
        # The prologue's gathers (the loop repeats them).
        gathers = [x for x in lines if x.startswith("{ let wsd_iy")]
        self.gathers = gathers[: len(gathers) // 2]
        # Where it places an invocation's loads, once before the stages.
        lets = [re.match(r"let (wsd_[kmpyx]a\d+) = (.*);$", x) for x in lines]
        self.placed = [x for x in lets if x]
        self.carried = [
            x for x in (re.match(r"var (wsd_[ct]a\d+) = (.*);$", x) for x in lines) if x
        ]

    def fill(
        self, li: int, env: dict[str, int], scopes: dict[int, dict[str, object]], a: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Invocation ``li``'s registers for this stage, its variables carried in
        ``scopes`` from stage to stage; the places are set in ``env``."""
        for found in self.placed:
            env[found[1]] = _eval(found[2].replace("i32", ""), env)
        if self.gathers and li not in scopes:
            scopes[li] = {
                **env,
                "A_ptr": a,
                "i32": int,
                "clamp": lambda v, lo, hi: min(max(v, lo), hi),
                "select": lambda no, yes, cond: yes if cond else no,
            }
            for var in self.carried:
                scopes[li][var[1]] = _eval(var[2].replace("i32", ""), env)
        return dict(_gather(text, scopes[li]) for text in self.gathers)


def _matrix(buf: np.ndarray, offset: int, col_major: bool, stride: int) -> np.ndarray:
    """What subgroupMatrixLoad reads: element (r, c) at offset + r * stride + c,
    or offset + c * stride + r when column-major."""
    r, c = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    return buf[offset + (c * stride + r if col_major else r * stride + c)]


def _run(g: Gemm, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The result the kernel's WGSL computes, by evaluating its offsets: A and B
    as stored (flat), the stages staged into two buffers and the matrices
    loaded from them, the accumulators stored to C (flat, with its parts)."""
    lines = [line.strip() for line in gemm_wgsl(g).split("\n")]
    lets = [re.match(r"let (wsd_\w+) = (.*);$", x) for x in lines]
    fetch = [re.match(r"(wsd_g[ab]\d+) = vec4<f16>\(([AB])_ptr\[(.*) \+ 0u\], ", x) for x in lines]
    stash = [re.match(r"wsd_t([ab])\[(.*) \+ 0u\] = (wsd_g[ab]\d+)\[0\];", x) for x in lines]
    loads = [
        re.match(
            r"let wsd_([ab])(\d+)_(\d) = subgroupMatrixLoad<.*>"
            r"\(&wsd_t[ab], (.*), (true|false), (\d+)u\);",
            x,
        )
        for x in lines
    ]
    stores = [
        re.match(
            r"subgroupMatrixStore\(&C_ptr, (.*), wsd_acc_(\d)_(\d), (true|false), (\d+)u\);", x
        )
        for x in lines
    ]
    # The fetches and stashes of the prologue (the loop repeats them).
    fetch = [x for x in fetch if x]
    stash = [x for x in stash if x]
    fetch, stash = fetch[: len(fetch) // 2], stash[: len(stash) // 2]
    gathering = _Gathering(lines)
    halves = workgroup_halves(g)
    c = np.zeros(g.parts * g.batch * g.m * g.n, np.float64)
    span = g.k // g.parts
    for by in range(g.row_blocks * g.parts * g.batch):
        for bx in range(g.n // g.cols):
            env = {"blockIdx_x": bx, "blockIdx_y": by, "blockIdx_z": 0, "gridDim_x": g.n // g.cols}
            for found in lets:
                if found and found[1] in ("wsd_n0", "wsd_m0", "wsd_part", "wsd_k0", "wsd_b"):
                    env[found[1]] = _eval(found[2], env)
            shared = {"a": np.zeros(halves[0]), "b": np.zeros(halves[1])}
            scopes: dict[int, dict[str, object]] = {}  # each invocation's, for the gather
            acc: dict[tuple[int, int, int], np.ndarray] = {}
            for stage in range(span // g.bk):
                buf = stage % 2
                env["wsd_k"] = env.get("wsd_k0", 0) + stage * g.bk
                regs = {}
                for li in range(g.threads):
                    env.update(wsd_li=li, wsd_buf=buf)
                    for reg, value in gathering.fill(li, env, scopes, a).items():
                        regs[li, reg] = value
                    for found in filter(None, fetch):
                        src = a if found[2] == "A" else b
                        at = _eval(found[3], env)
                        regs[li, found[1]] = src[at : at + 4]
                    for found in filter(None, stash):
                        at = _eval(found[2], env)
                        shared[found[1]][at : at + 4] = regs[li, found[3]]
                for sg in range(g.sy * g.sx):
                    env.update(wsd_li=sg * 32, wsd_cur=buf)
                    for name in ("wsd_mr", "wsd_nc"):
                        env[name] = _eval(next(x[2] for x in lets if x and x[1] == name), env)
                    mats = {}
                    for found in filter(None, loads):
                        offset = _eval(found[4], env)
                        mats[found[1], int(found[2]), int(found[3])] = _matrix(
                            shared[found[1]], offset, found[5] == "true", int(found[6])
                        )
                    for (_, kk, i), left in [(key, m) for key, m in mats.items() if key[0] == "a"]:
                        for j in range(g.tn):
                            acc[sg, i, j] = acc.get((sg, i, j), 0) + left @ mats["b", kk, j]
            for sg in range(g.sy * g.sx):
                env.update(wsd_li=sg * 32)
                for name in ("wsd_mr", "wsd_nc"):
                    env[name] = _eval(next(x[2] for x in lets if x and x[1] == name), env)
                for found in filter(None, stores):
                    env.update({f"wsd_r{i}": env["wsd_mr"] + 16 * i for i in range(g.tm)})
                    offset = _eval(found[1], env)
                    r, col = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
                    at = offset + (
                        col * int(found[5]) + r if found[4] == "true" else r * int(found[5]) + col
                    )
                    c[at] = acc[sg, int(found[2]), int(found[3])]
    return c


@pytest.mark.parametrize(
    ("g", "conv"),
    [
        (Gemm(256, 256, 64, 2, 4, sy=4, sx=2, bk=16, pad=8), False),  # 128 x 128, 4 stages
        (Gemm(192, 128, 96, 2, 4, sy=2, sx=2, bk=32, pad=0), False),  # 64 x 128, 3 stages
        (Gemm(80, 128, 32, 2, 4, sy=2, sx=2, bk=16, pad=8), False),  # rows overlap
        (Gemm(256, 128, 64, 2, 4, sy=4, sx=2, bk=16, pad=8, parts=2), False),  # split k
        (Gemm(128, 128, 32, 2, 4, sy=2, sx=2, bk=16, pad=8, batch=2), False),
        (Gemm(512, 256, 48, 2, 4, sy=4, sx=2, bk=16, pad=8, conv=True, pixels=256), True),
        (Gemm(128, 128, 64, 2, 4, sy=2, sx=2, bk=32, pad=8, conv=True, pixels=64, parts=2), True),
        (Gemm(128, 192, 64, 2, 2, sy=2, sx=2, bk=32, pad=8), False),  # 64 x 64, 3 column blocks
        (Gemm(192, 64, 96, 2, 2, sy=2, sx=2, bk=32, pad=8, conv=True, pixels=64), True),
        (Gemm(256, 128, 64, 2, 4, sy=4, sx=1, bk=16, pad=8), False),  # 128 x 64, 2 blocks a row
        (Gemm(256, 64, 48, 2, 4, sy=4, sx=1, bk=16, pad=8, conv=True, pixels=128), True),
        (Gemm(160, 64, 32, 2, 4, sy=4, sx=1, bk=16, pad=8, parts=2), False),  # overlap, split
    ],
)
def test_the_tiles_addressing_computes_the_product(g: Gemm, conv: bool) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((g.batch, g.m, g.k))
    b = rng.standard_normal((g.batch, g.k, g.n))
    # As stored: conv A^T [k, m] and B^T [n, k]; a matmul's [m, k] and [k, n].
    a_stored = np.transpose(a, (0, 2, 1)) if conv else a
    b_stored = np.transpose(b, (0, 2, 1)) if conv else b
    c = _run(g, a_stored.ravel(), b_stored.ravel())
    span = g.k // g.parts
    for part in range(g.parts):
        ks = slice(part * span, (part + 1) * span)
        want = a[:, :, ks] @ b[:, ks, :]
        got = c[part * g.batch * g.m * g.n : (part + 1) * g.batch * g.m * g.n]
        if conv:  # NCHW: [image, channel, pixel]
            images = g.m // g.pixels
            got = got.reshape(images, g.n, g.pixels).transpose(0, 2, 1).reshape(1, g.m, g.n)
        np.testing.assert_allclose(got.reshape(g.batch, g.m, g.n), want, atol=1e-9)


def _im2col_t(x: np.ndarray, w: Window) -> np.ndarray:
    """The transposed im2col matrix of ``x`` (NCHW): ``[c kh kw, n oh ow]``."""
    n, c, h, width = x.shape
    out_h, out_w = (h + 2 * w.top - w.kh) // w.sy + 1, (width + 2 * w.left - w.kw) // w.sx + 1
    padded = np.pad(x, ((0, 0), (0, 0), (w.top, w.top), (w.left, w.left)))
    cols = np.empty((c, w.kh, w.kw, n, out_h, out_w))
    for ty in range(w.kh):
        for tx in range(w.kw):
            rows = padded[:, :, ty : ty + w.sy * out_h : w.sy, tx : tx + w.sx * out_w : w.sx]
            cols[:, ty, tx] = rows.transpose(1, 0, 2, 3)
    return cols.reshape(c * w.kh * w.kw, n * out_h * out_w)


@pytest.mark.parametrize(
    ("window", "n", "sy", "parts"),
    [
        (Window(2, 16, 8, 16, 3, 3, 1, 1, 1, 1, 16), 64, 4, 1),  # a resnet's 3x3, padded
        (Window(1, 16, 16, 32, 3, 3, 2, 2, 1, 1, 16), 64, 4, 1),  # a downsampler: stride 2
        (Window(2, 32, 8, 16, 1, 1, out_w=16), 64, 4, 1),  # a 1x1: the page's vector loads
        (Window(2, 16, 8, 16, 3, 3, 1, 1, 1, 1, 16), 128, 2, 3),  # 64 x 128 blocks, split in 3
    ],
)
def test_a_convolution_gathered_from_its_input_is_the_im2col_product(
    window: Window, n: int, sy: int, parts: int
) -> None:
    """The tiles' gather (implicit GEMM) stages the im2col matrix's elements
    from the NCHW input, zero in the padding, at every stride and split."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(window.shape)
    a_t = _im2col_t(x, window)
    k, m = a_t.shape
    pixels = m // window.images
    sx = 1 if n == 64 else 2
    g = Gemm(m, n, k, 2, 4, True, parts, 1, pixels, sy, sx, 16, 8, window)
    weight = rng.standard_normal((n, k))
    c = _run(g, x.ravel(), weight.ravel())
    span = k // parts
    for part in range(parts):
        want = weight[:, part * span : (part + 1) * span] @ a_t[part * span : (part + 1) * span]
        got = c[part * m * n : (part + 1) * m * n].reshape(window.images, n, pixels)
        np.testing.assert_allclose(got.transpose(1, 0, 2).reshape(n, m), want, atol=1e-9)
    if window.pointwise:  # 4 adjacent halves a load, as vectorizeTileLoads expects
        assert "wsd_ga0 = vec4<f16>(A_ptr[wsd_pa0 + (wsd_k + wsd_ka0) * 128u + 0u], " in gemm_wgsl(
            g
        )
