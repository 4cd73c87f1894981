// What tensor cores give through WebGPU: an fp16 matrix multiply (f32 sums)
// written with Dawn's `chromium-experimental-subgroup-matrix`, timed on the
// adapter, against the same product in plain scalar WGSL. A probe for the
// subgroup-matrix kernel path (docs/kernels.md), not part of a build.
//   node probe_subgroup_matrix.mjs [M N K ...]   (default: SD 1.5 UNet shapes)
//   node probe_subgroup_matrix.mjs --blocks FILE (a build's GEMMs: every block of wsd's kernel)
//   node probe_subgroup_matrix.mjs --variants FILE (GEMMs: orders of wsd's kernel's loads, subgroups a workgroup)
// FILE: JSON [[M, N, K, layout], ...], layout "matmul" (A [M, K], B [K, N]) or
// "conv" (A [K, M], B [N, K], column-major, as wsd's convolution kernel).
// `--variants` (kernelVariants) times base TMxTN (wsd's kernel), prefetch TMxTN,
// unroll2 TMxTN, multi SYxSX of TMxTN and multi-prefetch SYxSX of TMxTN where
// the tiling divides the shape, with a `probe-variants {...}` line to stderr a shape.
// Prints one JSON line: the adapter, its subgroup-matrix configs, and per
// shape and variant the median time (PROBE_REPEATS measurements, default 20),
// TFLOP/s and the largest error against float64 on a checked corner of the
// output (`--variants`: and `sample_error` on entries sampled over all of it).
/* global GPUBufferUsage, GPUMapMode -- Dawn's, installed on globalThis below */
import { readFileSync } from "node:fs";

import { globals } from "webgpu";

import { createDawn } from "./dawn.mjs";

const FEATURES = /** @type {GPUFeatureName[]} */ (
  ["shader-f16", "subgroups", "timestamp-query", "chromium-experimental-subgroup-matrix"]
);
const REPEATS = Number(process.env.PROBE_REPEATS ?? 20);
/** Dispatches between the two timestamps of one measurement (short kernels are a few microseconds). */
const DISPATCHES = 10;

/**
 * One subgroup (a workgroup of 32) computes a (16*TM) x (16*TN) block of C
 * from A and B in storage, 16x16x16 matrices with f32 sums. `conv`: the
 * layouts of wsd's convolution kernel, A stored [K, M] (the im2col) and B
 * [N, K] (the OIHW weight), both loaded column-major.
 * @param {number} M @param {number} N @param {number} K @param {number} TM @param {number} TN
 * @param {boolean} [conv]
 */
function subgroupMatrixShader(M, N, K, TM, TN, conv = false) {
  const accs = [];
  const body = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) accs.push(`var acc_${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`);
  }
  for (let i = 0; i < TM; i++) {
    const at = conv ? `k * ${M}u + row + ${16 * i}u, true, ${M}u` : `(row + ${16 * i}u) * ${K}u + k, false, ${K}u`;
    body.push(`let a_${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&a, ${at});`);
  }
  for (let j = 0; j < TN; j++) {
    const at = conv ? `(col + ${16 * j}u) * ${K}u + k, true, ${K}u` : `k * ${N}u + col + ${16 * j}u, false, ${N}u`;
    body.push(`let b_${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&b, ${at});`);
  }
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) body.push(`acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(a_${i}, b_${j}, acc_${i}_${j});`);
  }
  const stores = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) {
      stores.push(`subgroupMatrixStore(&c, (row + ${16 * i}u) * ${N}u + col + ${16 * j}u, acc_${i}_${j}, false, ${N}u);`);
    }
  }
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read> a : array<f16>;
@group(0) @binding(1) var<storage, read> b : array<f16>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg : vec3<u32>) {
  let row = wg.y * ${16 * TM}u;
  let col = wg.x * ${16 * TN}u;
  ${accs.join("\n  ")}
  for (var k = 0u; k < ${K}u; k += 16u) {
    ${body.join("\n    ")}
  }
  ${stores.join("\n  ")}
}`;
}

/**
 * The variants of wsd's kernel `--variants` times: its loads straight from
 * storage (`conv`: its layouts) and its products, in another order or with
 * sy x sx subgroups a workgroup (no workgroup memory): subgroup s =
 * local_invocation_index / 32 owns the (16 tm) x (16 tn) block (wg.y sy + s / sx,
 * wg.x sx + s % sx) of C. `order` "plain": a 16-step's loads, then its products;
 * "prefetch": the loads of step k + 16 before the products of step k, the last
 * step peeled; "unroll2": steps of 32, both 16-steps' loads, then the products.
 * sy x sx > 1: Tint's uniformity diagnostic off, as in sharedTileShader.
 * @param {number} M @param {number} N @param {number} K
 * @param {{tm: number, tn: number, sy: number, sx: number, order: string}} t
 * @param {boolean} conv
 */
function variantShader(M, N, K, { tm, tn, sy, sx, order }, conv) {
  const multi = sy * sx > 1;
  /** @type {number[][]} */
  const pairs = [];
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) pairs.push([i, j]);
  /** The tiles of the 16-step at `k` (a u32 expression) into `${decl} ${p}a_i` and `${p}b_j`. */
  const loads = (/** @type {string} */ decl, /** @type {string} */ p, /** @type {string} */ k) => {
    const kk = k.includes(" ") ? `(${k})` : k;
    const as = Array.from({ length: tm }, (_, i) => `${decl} ${p}a_${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&a, ${
      conv ? `${kk} * ${M}u + row + ${16 * i}u, true, ${M}u` : `(row + ${16 * i}u) * ${K}u + ${k}, false, ${K}u`});`);
    const bs = Array.from({ length: tn }, (_, j) => `${decl} ${p}b_${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&b, ${
      conv ? `(col + ${16 * j}u) * ${K}u + ${k}, true, ${K}u` : `${kk} * ${N}u + col + ${16 * j}u, false, ${N}u`});`);
    return [...as, ...bs];
  };
  const products = (/** @type {string} */ p) =>
    pairs.map(([i, j]) => `acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(${p}a_${i}, ${p}b_${j}, acc_${i}_${j});`);
  const rotate = [...Array.from({ length: tm }, (_, i) => `a_${i} = na_${i};`), ...Array.from({ length: tn }, (_, j) => `b_${j} = nb_${j};`)];
  const prefetch = order === "prefetch";
  const body = prefetch ? [...loads("let", "n", "k + 16u"), ...products(""), ...rotate]
    : order === "unroll2" ? [...loads("let", "", "k"), ...loads("let", "n", "k + 16u"), ...products(""), ...products("n")]
      : [...loads("let", "", "k"), ...products("")];
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
${multi ? "diagnostic(off, chromium.subgroup_matrix_uniformity);\n" : ""}@group(0) @binding(0) var<storage, read> a : array<f16>;
@group(0) @binding(1) var<storage, read> b : array<f16>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
@compute @workgroup_size(${32 * sy * sx})
fn main(@builtin(workgroup_id) wg : vec3<u32>${multi ? ", @builtin(local_invocation_index) li : u32" : ""}) {
  ${multi ? "let sg = li / 32u;" : "// one subgroup"}
  let row = ${multi ? `(wg.y * ${sy}u + sg / ${sx}u)` : "wg.y"} * ${16 * tm}u;
  let col = ${multi ? `(wg.x * ${sx}u + sg % ${sx}u)` : "wg.x"} * ${16 * tn}u;
  ${pairs.map(([i, j]) => `var acc_${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`).join("\n  ")}
  ${prefetch ? loads("var", "", "0u").join("\n  ") : "// no prefetch"}
  for (var k = 0u; k < ${prefetch ? K - 16 : K}u; k += ${order === "unroll2" ? 32 : 16}u) {
    ${body.join("\n    ")}
  }
  ${prefetch ? products("").join("\n  ") : "// no peeled step"}
  ${pairs.map(([i, j]) => `subgroupMatrixStore(&c, (row + ${16 * i}u) * ${N}u + col + ${16 * j}u, acc_${i}_${j}, false, ${N}u);`).join("\n  ")}
}`;
}

/** The kernels `--variants` times: name, tm x tn matrices a subgroup, sy x sx subgroups a
 * workgroup, order (variantShader; "base" is subgroupMatrixShader, wsd's kernel). */
function kernelVariants() {
  const out = [];
  for (const [kind, order] of [["base", "plain"], ["prefetch", "prefetch"], ["unroll2", "unroll2"]]) {
    for (const [tm, tn] of [[2, 2], [2, 4], [4, 2], [4, 4]]) out.push({ name: `${kind} ${tm}x${tn}`, tm, tn, sy: 1, sx: 1, order });
  }
  for (const [sy, sx] of [[2, 1], [1, 2], [2, 2], [4, 1], [1, 4]]) {
    for (const [tm, tn] of [[2, 2], [2, 4]]) out.push({ name: `multi ${sy}x${sx} of ${tm}x${tn}`, tm, tn, sy, sx, order: "plain" });
  }
  for (const [sy, sx, tm, tn] of [[2, 2, 2, 4], [4, 1, 2, 4], [2, 2, 2, 2]]) {
    out.push({ name: `multi-prefetch ${sy}x${sx} of ${tm}x${tn}`, tm, tn, sy, sx, order: "prefetch" });
  }
  return out;
}

/**
 * Several subgroups share workgroup tiles. A workgroup of SY x SX subgroups
 * (32 x SY x SX invocations) owns a (16 TM SY) x (16 TN SX) block of C; each
 * subgroup a (16 TM) x (16 TN) part of it. A and B are staged through
 * workgroup memory BK columns of K at a time (vec4 loads, rows padded by 8
 * halves against bank conflicts), then every subgroup loads its matrices from
 * there. Which subgroup an invocation is in is not workgroup-uniform to
 * Tint's analysis, so its uniformity diagnostic is turned off (correct where
 * 32 consecutive invocations are one subgroup).
 * @param {number} M @param {number} N @param {number} K
 * @param {{sy: number, sx: number, tm: number, tn: number, bk: number}} t
 */
function sharedTileShader(M, N, K, t) {
  const BM = 16 * t.tm * t.sy, BN = 16 * t.tn * t.sx, BK = t.bk, threads = 32 * t.sy * t.sx;
  const SA = BK + 8, SB = BN + 8;
  const pairs = [];
  for (let i = 0; i < t.tm; i++) for (let j = 0; j < t.tn; j++) pairs.push([i, j]);
  const left = "subgroup_matrix_left<f16, 16, 16>", right = "subgroup_matrix_right<f16, 16, 16>";
  const loads = [];
  for (let i = 0; i < t.tm; i++) loads.push(`let a_${i} = subgroupMatrixLoad<${left}>(&ta, (sr + ${16 * i}u) * ${SA}u + kk, false, ${SA}u);`);
  for (let j = 0; j < t.tn; j++) loads.push(`let b_${j} = subgroupMatrixLoad<${right}>(&tb, kk * ${SB}u + sc + ${16 * j}u, false, ${SB}u);`);
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> a : array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> b : array<vec4<f16>>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
var<workgroup> ta : array<f16, ${BM * SA}>;
var<workgroup> tb : array<f16, ${BK * SB}>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg : vec3<u32>, @builtin(local_invocation_index) li : u32) {
  let row = wg.y * ${BM}u;
  let col = wg.x * ${BN}u;
  let sg = li / 32u;
  let sr = (sg / ${t.sx}u) * ${16 * t.tm}u;
  let sc = (sg % ${t.sx}u) * ${16 * t.tn}u;
  ${pairs.map(([i, j]) => `var acc_${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`).join("\n  ")}
  for (var k = 0u; k < ${K}u; k += ${BK}u) {
    for (var e = li; e < ${(BM * BK) / 4}u; e += ${threads}u) {
      let r = e / ${BK / 4}u;
      let q = e % ${BK / 4}u;
      let v = a[((row + r) * ${K}u + k) / 4u + q];
      for (var x = 0u; x < 4u; x++) { ta[r * ${SA}u + q * 4u + x] = v[x]; }
    }
    for (var e = li; e < ${(BK * BN) / 4}u; e += ${threads}u) {
      let r = e / ${BN / 4}u;
      let q = e % ${BN / 4}u;
      let v = b[((k + r) * ${N}u + col) / 4u + q];
      for (var x = 0u; x < 4u; x++) { tb[r * ${SB}u + q * 4u + x] = v[x]; }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk += 16u) {
      ${loads.join("\n      ")}
      ${pairs.map(([i, j]) => `acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(a_${i}, b_${j}, acc_${i}_${j});`).join("\n      ")}
    }
    workgroupBarrier();
  }
  ${pairs.map(([i, j]) => `subgroupMatrixStore(&c, (row + sr + ${16 * i}u) * ${N}u + col + sc + ${16 * j}u, acc_${i}_${j}, false, ${N}u);`).join("\n  ")}
}`;
}

/** The shared-tile variants tried: subgroups per workgroup (sy x sx), matrices per subgroup (tm x tn), K per stage. */
const SHARED_TILES = [
  { sy: 2, sx: 2, tm: 2, tn: 2, bk: 32 }, { sy: 2, sx: 2, tm: 2, tn: 2, bk: 64 }, { sy: 4, sx: 2, tm: 2, tn: 2, bk: 32 },
  { sy: 2, sx: 2, tm: 2, tn: 4, bk: 32 }, { sy: 4, sx: 1, tm: 2, tn: 4, bk: 32 }, { sy: 4, sx: 2, tm: 2, tn: 4, bk: 32 },
  { sy: 2, sx: 2, tm: 4, tn: 4, bk: 32 }, { sy: 4, sx: 1, tm: 2, tn: 2, bk: 32 }, { sy: 2, sx: 2, tm: 4, tn: 2, bk: 64 },
  { sy: 2, sx: 4, tm: 2, tn: 2, bk: 32 }, { sy: 1, sx: 1, tm: 2, tn: 2, bk: 32 }, { sy: 1, sx: 1, tm: 2, tn: 2, bk: 64 },
];

/**
 * The scalar baseline: 16x16 threads, 4x4 outputs each, K in steps of 16
 * through workgroup tiles (what a plain tiled kernel does).
 * @param {number} M @param {number} N @param {number} K
 */
function scalarShader(M, N, K) {
  return `enable f16;
@group(0) @binding(0) var<storage, read> a : array<f16>;
@group(0) @binding(1) var<storage, read> b : array<f16>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
var<workgroup> ta : array<f32, ${64 * 16}>;
var<workgroup> tb : array<f32, ${16 * 64}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg : vec3<u32>, @builtin(local_invocation_id) lid : vec3<u32>) {
  let row = wg.y * 64u;
  let col = wg.x * 64u;
  var acc : array<f32, 16>;
  for (var k = 0u; k < ${K}u; k += 16u) {
    for (var t = 0u; t < 4u; t++) {
      let e = (lid.y * 16u + lid.x) * 4u + t;
      ta[e] = f32(a[(row + e / 16u) * ${K}u + k + e % 16u]);
      tb[e] = f32(b[(k + e / 64u) * ${N}u + col + e % 64u]);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      for (var i = 0u; i < 4u; i++) {
        let av = ta[(lid.y * 4u + i) * 16u + kk];
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] = fma(av, tb[kk * 64u + lid.x * 4u + j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      c[(row + lid.y * 4u + i) * ${N}u + col + lid.x * 4u + j] = acc[i * 4u + j];
    }
  }
}`;
}

const halfScratch = new Float32Array(1);
const halfScratchBits = new Uint32Array(halfScratch.buffer);

/** @param {number} x  A float32 value, rounded to the nearest fp16, as bits. */
function toHalfBits(x) {
  halfScratch[0] = x;
  const u = halfScratchBits[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  const mant = u & 0x7fffff;
  let h = sign | (exp << 10) | (mant >>> 13);
  if (mant & 0x1000) h += 1;
  return h;
}

/** @param {number} h */
function fromHalfBits(h) {
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  const value = exp === 0 ? mant * 2 ** -24 : (1 + mant / 1024) * 2 ** (exp - 15);
  return h & 0x8000 ? -value : value;
}

/** @param {number} n @param {number} seed */
function randomHalves(n, seed) {
  const out = new Uint16Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = toHalfBits((s / 2 ** 32) * 2 - 1);
  }
  return out;
}

/**
 * @param {GPUDevice} device @param {string} code @param {number[]} grid
 * @param {GPUBuffer[]} buffers @param {number} repeats
 */
async function timeKernel(device, code, grid, buffers, repeats) {
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error").map((m) => m.message);
  if (errors.length > 0) return { error: errors.join("; ").slice(0, 500) };
  device.pushErrorScope("validation");
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const failed = await device.popErrorScope();
  if (failed) return { error: failed.message.slice(0, 500) };
  const query = device.createQuerySet({ type: "timestamp", count: 2 });
  const resolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const times = [];
  // Untimed passes for WARM_MS first (default 300): an idle GPU's clocks are low.
  const warmUntil = performance.now() + Number(process.env.WARM_MS ?? 300);
  for (let r = 0; r < repeats; r++) {
    const warm = performance.now() < warmUntil;
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass(warm ? {} : { timestampWrites: { querySet: query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    for (let d = 0; d < DISPATCHES; d++) pass.dispatchWorkgroups(grid[0], grid[1]);
    pass.end();
    if (warm) {
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      r--;
      continue;
    }
    encoder.resolveQuerySet(query, 0, 2, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, read, 0, 16);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const [start, end] = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    times.push(Number(end - start) / 1e6 / DISPATCHES);
  }
  times.sort((x, y) => x - y);
  return { ms: times[Math.floor(times.length / 2)] };
}

const CORNER_ROWS = Array.from({ length: 32 }, (_, i) => i); // of C's checked corner

/**
 * Rows of C (N floats each) read back, one after another in the order asked.
 * @param {GPUDevice} device @param {GPUBuffer} buffer @param {number[]} rows @param {number} N
 * @returns {Promise<Float32Array>}
 */
async function readRows(device, buffer, rows, N) {
  const staging = device.createBuffer({ size: rows.length * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  rows.forEach((row, t) => encoder.copyBufferToBuffer(buffer, row * N * 4, staging, t * N * 4, N * 4));
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

/**
 * C[i, j] in float64.
 * @param {Uint16Array} a @param {Uint16Array} b @param {number} N @param {number} K
 * @param {number} M  rows, for the convolution layouts (A [K, M], B [N, K]); 0: A [M, K], B [K, N]
 * @param {number} i @param {number} j
 */
function dot(a, b, N, K, M, i, j) {
  let sum = 0;
  for (let k = 0; k < K; k++) sum += fromHalfBits(M > 0 ? a[k * M + i] : a[i * K + k]) * fromHalfBits(M > 0 ? b[j * K + k] : b[k * N + j]);
  return sum;
}

/**
 * The largest error of C's first 32 x 32 corner against float64 sums.
 * @param {Float32Array} c @param {Uint16Array} a @param {Uint16Array} b
 * @param {number} N @param {number} K @param {number} [M]  rows, for the convolution layouts
 */
function cornerError(c, a, b, N, K, M = 0) {
  let worst = 0;
  for (const i of CORNER_ROWS) {
    for (let j = 0; j < 32; j++) worst = Math.max(worst, Math.abs(dot(a, b, N, K, M, i, j) - c[i * N + j]));
  }
  return worst;
}

/** A and B (fp16), C (`floats` f32) as storage buffers. @param {GPUDevice} device @param {Uint16Array} a @param {Uint16Array} b @param {number} floats */
function gemmBuffers(device, a, b, floats) {
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  return [a, b, null].map((data) => {
    const buffer = device.createBuffer({ size: data ? data.byteLength : floats * 4, usage });
    if (data) device.queue.writeBuffer(buffer, 0, /** @type {Uint16Array<ArrayBuffer>} */ (data));
    return buffer;
  });
}

/**
 * @param {GPUDevice} device @param {number} M @param {number} N @param {number} K
 */
async function probeShape(device, M, N, K) {
  const a = randomHalves(M * K, 1);
  const b = randomHalves(K * N, 2);
  const buffers = gemmBuffers(device, a, b, M * N);
  const flops = 2 * M * N * K;
  /** @type {Record<string, unknown>} */
  const results = {};
  /** @type {Array<[string, string, number[]]>} */
  const variants = [["scalar 64x64", scalarShader(M, N, K), [N / 64, M / 64]]];
  for (const [tm, tn] of [[2, 2], [4, 2], [2, 4], [4, 4]]) {
    if (M % (16 * tm) === 0 && N % (16 * tn) === 0) {
      variants.push([`subgroup-matrix ${16 * tm}x${16 * tn}`, subgroupMatrixShader(M, N, K, tm, tn), [N / (16 * tn), M / (16 * tm)]]);
    }
  }
  for (const t of SHARED_TILES) {
    const bm = 16 * t.tm * t.sy, bn = 16 * t.tn * t.sx;
    if (M % bm === 0 && N % bn === 0 && K % t.bk === 0) {
      const name = `shared ${bm}x${bn} k${t.bk} (${t.sy * t.sx} subgroups of ${16 * t.tm}x${16 * t.tn})`;
      variants.push([name, sharedTileShader(M, N, K, t), [N / bn, M / bm]]);
    }
  }
  for (const [name, code, grid] of variants) {
    const timed = await timeKernel(device, code, grid, buffers, REPEATS);
    if ("error" in timed) {
      results[name] = timed;
      continue;
    }
    const c = await readRows(device, buffers[2], CORNER_ROWS, N);
    results[name] = {
      ms: Number(timed.ms.toFixed(4)),
      tflops: Number((flops / timed.ms / 1e9).toFixed(2)),
      max_error: Number(cornerError(c, a, b, N, K).toExponential(2)),
    };
  }
  for (const buffer of buffers) buffer.destroy();
  return { M, N, K, gflop: Number((flops / 1e9).toFixed(2)), results };
}

/**
 * Every block of wsd's one-subgroup kernel ((16 tm) x (16 tn), tm and tn in
 * 1, 2, 4) on one GEMM of a build, in its layouts: the timings and the fastest.
 * @param {GPUDevice} device @param {number} M @param {number} N @param {number} K
 * @param {string} layout  "conv" (A [K, M], B [N, K]) or "matmul" (A [M, K], B [K, N])
 */
async function probeBlocks(device, M, N, K, layout) {
  const conv = layout === "conv";
  const a = randomHalves(M * K, 1);
  const b = randomHalves(K * N, 2);
  const buffers = gemmBuffers(device, a, b, M * N);
  /** @type {Record<string, unknown>} */
  const results = {};
  let best = { ms: Infinity, tm: 0, tn: 0 };
  for (const tm of [1, 2, 4]) {
    for (const tn of [1, 2, 4]) {
      if (M % (16 * tm) !== 0 || N % (16 * tn) !== 0) continue;
      const timed = await timeKernel(device, subgroupMatrixShader(M, N, K, tm, tn, conv), [N / (16 * tn), M / (16 * tm)], buffers, REPEATS);
      if ("error" in timed) {
        results[`${16 * tm}x${16 * tn}`] = timed;
        continue;
      }
      const c = await readRows(device, buffers[2], CORNER_ROWS, N);
      results[`${16 * tm}x${16 * tn}`] = {
        ms: Number(timed.ms.toFixed(4)),
        max_error: Number(cornerError(c, a, b, N, K, conv ? M : 0).toExponential(2)),
      };
      if (timed.ms < best.ms) best = { ms: timed.ms, tm, tn };
    }
  }
  for (const buffer of buffers) buffer.destroy();
  return { M, N, K, layout, tflops: Number(((2 * M * N * K) / best.ms / 1e9).toFixed(2)), best: [best.tm, best.tn], results };
}

/**
 * Entries of C sampled over all of it (16 pseudo-random rows and the last, 33
 * columns each: the last among them) with their float64 sums; `t`: the row's place in `rows`.
 * @param {Uint16Array} a @param {Uint16Array} b @param {number} M @param {number} N @param {number} K @param {boolean} conv
 */
function sampledEntries(a, b, M, N, K, conv) {
  let s = 7;
  const next = (/** @type {number} */ n) => Math.floor(((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * n);
  const rows = [...Array.from({ length: 16 }, () => next(M)), M - 1];
  const cols = [...Array.from({ length: 32 }, () => next(N)), N - 1];
  return { rows, entries: rows.flatMap((i, t) => cols.map((j) => ({ t, j, ref: dot(a, b, N, K, conv ? M : 0, i, j) }))) };
}

/**
 * wsd's kernel's variants (kernelVariants) on one GEMM in its layouts where
 * their tiling divides it: per variant the median time, TFLOP/s and the largest
 * errors against float64 (`max_error`: C's 32 x 32 corner; `sample_error`:
 * sampledEntries), and the fastest.
 * @param {GPUDevice} device @param {number} M @param {number} N @param {number} K
 * @param {string} layout  "conv" (A [K, M], B [N, K]) or "matmul" (A [M, K], B [K, N])
 */
async function probeVariants(device, M, N, K, layout) {
  const conv = layout === "conv";
  const a = randomHalves(M * K, 1);
  const b = randomHalves(K * N, 2);
  const buffers = gemmBuffers(device, a, b, M * N);
  const sampled = sampledEntries(a, b, M, N, K, conv);
  const flops = 2 * M * N * K;
  /** @type {Record<string, unknown>} */
  const results = {};
  let best = { ms: Infinity, name: "" };
  for (const v of kernelVariants()) {
    const bm = 16 * v.tm * v.sy, bn = 16 * v.tn * v.sx, grid = [N / bn, M / bm];
    if (M % bm !== 0 || N % bn !== 0 || K % (v.order === "unroll2" ? 32 : 16) !== 0 || Math.max(...grid) > 65535) continue;
    const code = v.name.startsWith("base ") ? subgroupMatrixShader(M, N, K, v.tm, v.tn, conv) : variantShader(M, N, K, v, conv);
    // C zeroed first: a kernel that writes nothing does not pass on the last one's sums.
    const encoder = device.createCommandEncoder();
    encoder.clearBuffer(buffers[2]);
    device.queue.submit([encoder.finish()]);
    const timed = await timeKernel(device, code, grid, buffers, REPEATS);
    if ("error" in timed) {
      results[v.name] = timed;
      continue;
    }
    const c = await readRows(device, buffers[2], [...CORNER_ROWS, ...sampled.rows], N);
    const off = CORNER_ROWS.length * N;
    results[v.name] = {
      ms: Number(timed.ms.toFixed(4)),
      tflops: Number((flops / timed.ms / 1e9).toFixed(2)),
      max_error: Number(cornerError(c, a, b, N, K, conv ? M : 0).toExponential(2)),
      sample_error: Number(sampled.entries.reduce((w, e) => Math.max(w, Math.abs(e.ref - c[off + e.t * N + e.j])), 0).toExponential(2)),
    };
    if (timed.ms < best.ms) best = { ms: timed.ms, name: v.name };
  }
  for (const buffer of buffers) buffer.destroy();
  const tflops = best.name ? Number((flops / best.ms / 1e9).toFixed(2)) : null;
  return { M, N, K, layout, gflop: Number((flops / 1e9).toFixed(2)), best: best.name, tflops, results };
}

/**
 * `--blocks FILE`, `--variants FILE`: the GEMMs ([[M, N, K, layout], ...]) in FILE; none without the flag.
 * @param {string} flag @returns {Array<[number, number, number, string]>}
 */
function shapesFile(flag) {
  const at = process.argv.indexOf(flag);
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- a shapes file the caller names
  return at > 0 ? JSON.parse(readFileSync(process.argv[at + 1], "utf8")) : [];
}
const blockShapes = shapesFile("--blocks"); // through probeBlocks
const variantShapes = shapesFile("--variants"); // through probeVariants
const fileModes = process.argv.includes("--blocks") || process.argv.includes("--variants");
const shapes = fileModes ? [] : process.argv.slice(2).map(Number);
/** @type {number[][]} */
const problems = [];
for (let i = 0; i + 2 < shapes.length; i += 3) problems.push(shapes.slice(i, i + 3));
if (problems.length === 0 && !fileModes) {
  // SD 1.5 at 512, CFG batch 2: attention projections and feed-forward at the
  // 64x64 level, and a square product for reference.
  problems.push(
    [8192, 320, 320], [8192, 2560, 320], [8192, 320, 1280], [2048, 640, 640], [512, 1280, 1280],
    // 3x3 convolutions as implicit GEMMs (K = 9 x input channels) at the 64, 32 and 16 levels.
    [8192, 320, 2880], [2048, 640, 5760], [512, 1280, 11520],
    [4096, 4096, 4096],
  );
}
Object.assign(globalThis, globals);
// Timestamps unquantised: Dawn rounds them to 64 microseconds otherwise.
const dawn = createDawn({ enable: ["allow_unsafe_apis"], disable: ["timestamp_quantization"] });
const adapter = await dawn.gpu.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) throw new Error("no adapter");
const requiredFeatures = FEATURES.filter((f) => adapter.features.has(f));
const device = await adapter.requestDevice({
  requiredFeatures,
  requiredLimits: {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
    maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
  },
});
const info = /** @type {any} */ (adapter.info);
const report = {
  adapter: [info.vendor, info.architecture, info.description].filter((s) => s).join(" "),
  features: requiredFeatures,
  subgroup_sizes: [info.subgroupMinSize, info.subgroupMaxSize],
  subgroup_matrix_configs: Array.from(info.subgroupMatrixConfigs ?? [], (/** @type {any} */ c) => ({
    component: c.componentType, result: c.resultComponentType, M: c.M, N: c.N, K: c.K,
  })),
  shapes: /** @type {unknown[]} */ ([]),
};
for (const [M, N, K] of problems) report.shapes.push(await probeShape(device, M, N, K));
for (const [M, N, K, layout] of blockShapes) {
  const found = await probeBlocks(device, M, N, K, layout);
  report.shapes.push(found);
  // One line per GEMM as it is measured (Dawn's shader warnings share stdout).
  process.stderr.write(`probe-blocks ${JSON.stringify(found)}\n`);
}
for (const [M, N, K, layout] of variantShapes) {
  const found = await probeVariants(device, M, N, K, layout);
  report.shapes.push(found);
  process.stderr.write(`probe-variants ${JSON.stringify(found)}\n`);
}
await new Promise((resolve) => process.stdout.write(`${JSON.stringify(report)}\n`, resolve));
device.destroy();
process.exit(0);
