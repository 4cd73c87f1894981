// What tensor cores give through WebGPU: an fp16 matrix multiply (f32 sums)
// written with Dawn's `chromium-experimental-subgroup-matrix`, timed on the
// adapter, against the same product in plain scalar WGSL. A probe for the
// subgroup-matrix kernel path (docs/kernels.md), not part of a build.
//   node probe_subgroup_matrix.mjs [M N K ...]   (default: SD 1.5 UNet shapes)
//   node probe_subgroup_matrix.mjs --blocks FILE (a build's GEMMs: every block of wsd's kernel)
//   node probe_subgroup_matrix.mjs --variants FILE (GEMMs: orders of wsd's kernel's loads, subgroups a
//     workgroup, pipelined workgroup tiles; PROBE_VARIANTS=prefix,... times only those)
//   node probe_subgroup_matrix.mjs --attention [HEADS N D ...] (attention fused on tensor cores,
//     flashAttentionShader's variants; default: the UNets' largest attentions)
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

import { probeDevice, timeDispatches } from "./gpu_timing.mjs";
import { flashAttentionShader } from "./probe_attention_shaders.mjs";
import {
  kernelVariants, pipelinedShader, scalarShader, SHARED_TILES, sharedTileShader, subgroupMatrixShader, variantShader,
} from "./probe_shaders.mjs";

const FEATURES = /** @type {GPUFeatureName[]} */ (
  ["shader-f16", "subgroups", "timestamp-query", "chromium-experimental-subgroup-matrix"]
);
const REPEATS = Number(process.env.PROBE_REPEATS ?? 20);
/** Dispatches between the two timestamps of one measurement (short kernels are a few microseconds). */
const DISPATCHES = 10;


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
  const { ms } = await timeDispatches(device, pipeline, bindGroup, grid, repeats, DISPATCHES);
  return { ms };
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
    const code = v.order === "pipelined" ? pipelinedShader(M, N, K, v, conv)
      : v.name.startsWith("base ") ? subgroupMatrixShader(M, N, K, v.tm, v.tn, conv) : variantShader(M, N, K, v, conv);
    if (code === null) continue;
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

/** PROBE_ATTENTION: a comma-separated list of name prefixes of the attention variants to time (default: all). */
const only = (process.env.PROBE_ATTENTION ?? "").split(",").filter((x) => x);

/** The fused attention's variants `--attention` times: subgroups, 16-row tiles a subgroup, keys a block, lazy rescale. */
const ATTENTION_VARIANTS = [
  { sg: 4, qt: 1, kb: 64, lazy: 8 }, { sg: 4, qt: 1, kb: 64, lazy: 0 }, { sg: 2, qt: 1, kb: 64, lazy: 8 },
  { sg: 2, qt: 2, kb: 64, lazy: 8 }, { sg: 1, qt: 2, kb: 64, lazy: 8 }, { sg: 2, qt: 1, kb: 128, lazy: 8 },
  { sg: 2, qt: 2, kb: 64, lazy: 8, lanes: 1 }, { sg: 2, qt: 2, kb: 64, lazy: 0, lanes: 1 }, { sg: 1, qt: 2, kb: 64, lazy: 8, lanes: 1 },
  { sg: 1, qt: 2, kb: 128, lazy: 8, lanes: 1 },
  // The output in registers (flashAttentionShader's `oregs`).
  { sg: 4, qt: 1, kb: 64, lazy: 0, oregs: true }, { sg: 2, qt: 1, kb: 64, lazy: 0, oregs: true },
  { sg: 2, qt: 2, kb: 64, lazy: 0, oregs: true }, { sg: 2, qt: 2, kb: 64, lazy: 0, lanes: 1, oregs: true },
];

/**
 * Row `i` of head `h`'s attention output in float64 (Q, K, V fp16 [heads, n, D]).
 * @param {Uint16Array[]} qkv @param {number} n @param {number} D @param {number} h @param {number} i
 */
function attentionRow([q, k, v], n, D, h, i) {
  const scores = new Float64Array(n);
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += fromHalfBits(q[(h * n + i) * D + d]) * fromHalfBits(k[(h * n + j) * D + d]);
    scores[j] = dot / Math.sqrt(D);
    max = Math.max(max, scores[j]);
  }
  const out = new Float64Array(D);
  let total = 0;
  for (let j = 0; j < n; j++) {
    const p = Math.exp(scores[j] - max);
    total += p;
    for (let d = 0; d < D; d++) out[d] += p * fromHalfBits(v[(h * n + j) * D + d]);
  }
  return out.map((x) => x / total);
}

/**
 * flashAttentionShader's variants on `heads` heads of n queries and keys of D:
 * per variant the median time, TFLOP/s (4 heads n^2 D) and the largest error
 * against float64 on 12 sampled rows (the last row of the last head among them).
 * Q is drawn 3x wider than K and V, so that the scores spread (and rescale).
 * @param {GPUDevice} device @param {number} heads @param {number} n @param {number} D
 */
async function probeAttention(device, heads, n, D) {
  const size = heads * n * D;
  const qkv = [randomHalves(size, 1).map((h) => toHalfBits(3 * fromHalfBits(h))), randomHalves(size, 2), randomHalves(size, 3)];
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const buffers = [...qkv, null].map((data) => {
    const buffer = device.createBuffer({ size: size * 2, usage });
    if (data) device.queue.writeBuffer(buffer, 0, /** @type {Uint16Array<ArrayBuffer>} */ (data));
    return buffer;
  });
  let s = 11;
  const next = (/** @type {number} */ x) => Math.floor(((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * x);
  const rows = [...Array.from({ length: 11 }, () => next(heads * n)), heads * n - 1];
  const refs = rows.map((r) => attentionRow(qkv, n, D, Math.floor(r / n), r % n));
  const scale = refs.reduce((w, row) => Math.max(w, ...row.map(Math.abs)), 0);
  const flops = 4 * heads * n * n * D;
  /** @type {Record<string, unknown>} */
  const results = {};
  for (const t of ATTENTION_VARIANTS) {
    const name = `sg${t.sg} qt${t.qt} kb${t.kb} lazy${t.lazy} lanes${t.lanes ?? 2}${t.oregs ? " oregs" : ""}`;
    const code = flashAttentionShader(n, D, t);
    if (code === null || (only.length && !only.some((x) => name.startsWith(x)))) continue;
    const encoder = device.createCommandEncoder();
    encoder.clearBuffer(buffers[3]);
    device.queue.submit([encoder.finish()]);
    const timed = await timeKernel(device, code, [n / (16 * t.qt * t.sg), heads], buffers, REPEATS);
    if ("error" in timed) {
      results[name] = timed;
      continue;
    }
    // Each row's D halves read back as D / 2 floats.
    const got = new Uint16Array((await readRows(device, buffers[3], rows, D / 2)).buffer);
    const worst = refs.reduce((w, ref, r) => Math.max(w, ...ref.map((x, d) => Math.abs(x - fromHalfBits(got[r * D + d])))), 0);
    results[name] = {
      ms: Number(timed.ms.toFixed(4)),
      tflops: Number((flops / timed.ms / 1e9).toFixed(2)),
      max_error: Number(worst.toExponential(2)),
      relative_error: Number((worst / scale).toExponential(2)),
    };
  }
  for (const buffer of buffers) buffer.destroy();
  return { heads, n, D, gflop: Number((flops / 1e9).toFixed(2)), results };
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
const attention = process.argv.includes("--attention");
const fileModes = process.argv.includes("--blocks") || process.argv.includes("--variants");
const shapes = fileModes || attention ? [] : process.argv.slice(2).map(Number);
const attentionArgs = attention ? process.argv.slice(process.argv.indexOf("--attention") + 1).map(Number) : [];
/** @type {number[][]} */
const attentions = [];
for (let i = 0; i + 2 < attentionArgs.length; i += 3) attentions.push(attentionArgs.slice(i, i + 3));
// SD 1.5 512's 64x64 level (CFG batch 2 x 8 heads of 40), SDXL 1024's (2 x 10 of 64) and 32x32 (2 x 20 of 64).
if (attention && attentions.length === 0) attentions.push([16, 4096, 40], [20, 4096, 64], [40, 1024, 64]);
/** @type {number[][]} */
const problems = [];
for (let i = 0; i + 2 < shapes.length; i += 3) problems.push(shapes.slice(i, i + 3));
if (problems.length === 0 && !fileModes && !attention) {
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
const { adapter, device, features: requiredFeatures } = await probeDevice(FEATURES);
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
for (const [heads, n, D] of attentions) {
  const found = await probeAttention(device, heads, n, D);
  report.shapes.push(found);
  process.stderr.write(`probe-attention ${JSON.stringify(found)}\n`);
}
await new Promise((resolve) => process.stdout.write(`${JSON.stringify(report)}\n`, resolve));
device.destroy();
process.exit(0);
