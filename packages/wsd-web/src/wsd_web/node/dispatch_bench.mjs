// The CPU cost of recording a dispatch with kept bindings (js/kernel_dispatch.js),
// on WebGPU in Node through Dawn, without a model: a step of synthetic dispatch
// sites shaped like a SD 1.5 UNet step's (about 1,300 dispatches of a few hundred
// kernels, 2-6 storage buffers and 0-6 scalars each, buffers from a shared pool),
// recorded again and again. Nothing is submitted, so the figures are the CPU's
// alone: what a GPU waits for when a step's recording outlasts its kernels.
// Prints one JSON object: microseconds per dispatch for the first step (every
// binding made) and the median of the later ones (every binding kept), with
// every sample.
//   node dispatch_bench.mjs [OPTIONS_JSON]
// OPTIONS_JSON: {"dispatches": 1300, "kernels": 300, "buffers": 400, "steps": 50, "seed": 1}
/* global GPUBufferUsage -- Dawn's, installed on globalThis below */
import { globals } from "webgpu";

import { dispatchWithKeptBindings } from "../static/js/kernel_dispatch.js";
import { createDawn } from "./dawn.mjs";

Object.assign(globalThis, globals);
const options = JSON.parse(process.argv[2] ?? "{}");
const { dispatches = 1300, kernels = 300, buffers = 400, steps = 50, seed = 1 } = options;

/** A small deterministic generator (the sites must not change between runs). @param {number} state */
function random(state) {
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * A kernel as TVM's WebGPU codegen writes them, with `n` storage buffers (the
 * last one written) and `m` scalars, then packGridDimX, in the uniform.
 * @param {number} n @param {number} m
 */
function kernelCode(n, m) {
  const scalars = Array.from({ length: m }, (_, i) => `s${i}: i32, `).join("");
  const bindings = Array.from({ length: n }, (_, i) =>
    `@group(0) @binding(${i}) var<storage, ${i === n - 1 ? "read_write" : "read"}> b${i} : array<f32>;`).join("\n");
  const reads = Array.from({ length: n - 1 }, (_, i) => ` + b${i}[0]`).join("");
  return `struct PODArgs { ${scalars}packGridDimX: u32 }
${bindings}
@group(0) @binding(${n}) var<uniform> podArgs : PODArgs;
@compute @workgroup_size(1)
fn k(@builtin(workgroup_id) w : vec3<u32>) {
  if (w.x >= podArgs.packGridDimX) { return; }
  b${n - 1}[0] = f32(podArgs.packGridDimX)${reads};
}`;
}

const { gpu } = createDawn();
const adapter = await gpu.requestAdapter();
if (!adapter) throw new Error("Dawn found no adapter: is VK_ICD_FILENAMES pointing at a Vulkan driver?");
const device = await adapter.requestDevice();
/** @type {GPUBuffer[]} */
const table = Array.from({ length: buffers }, () =>
  device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE }));
const context = {
  device,
  /** @type {GPUCommandEncoder | null} */
  pendingEncoder: null,
  shaderSubmitCounter: 0,
  gpuBufferFromPtr: (/** @type {number} */ ptr) => table[ptr],
  flushCommands() {
    this.pendingEncoder?.finish();
    this.pendingEncoder = null;
  },
  /** @type {(finfo: any, code: string, asyncMode: boolean) => any} */
  createShadeInternal: () => { throw new Error("replaced"); },
};
const state = dispatchWithKeptBindings(context);

const next = random(seed);
/** @type {{run: (...args: number[]) => void, n: number, m: number}[]} */
const made = [];
for (let i = 0; i < kernels; i++) {
  const n = 2 + Math.floor(next() * 5);
  const m = Math.floor(next() * 7);
  const finfo = {
    name: "k",
    arg_types: [...Array(n).fill("handle"), ...Array(m).fill("int32")],
    launch_param_tags: ["blockIdx.x", "threadIdx.x", `paramWriteAccess:[${Array.from({ length: n }, (_, j) => (j === n - 1 ? 1 : 0))}]`],
  };
  made.push({ run: await context.createShadeInternal(finfo, kernelCode(n, m), true), n, m });
}
const sites = Array.from({ length: dispatches }, () => {
  const kernel = made[Math.floor(next() * kernels)];
  // Distinct buffers: one written and read in the same dispatch is a validation error.
  const bound = new Set();
  while (bound.size < kernel.n) bound.add(Math.floor(next() * buffers));
  const scalars = Array.from({ length: kernel.m }, () => Math.floor(next() * 4096));
  return { run: kernel.run, args: [...bound, ...scalars, 1 + Math.floor(next() * 1024), 64] };
});

/** Microseconds per dispatch of one recorded step. */
function step() {
  const start = performance.now();
  for (const site of sites) site.run(...site.args);
  const us = ((performance.now() - start) * 1000) / dispatches;
  context.flushCommands();
  return us;
}

const first = step();
const samples = Array.from({ length: steps }, step);
const sorted = [...samples].sort((a, b) => a - b);
const round = (/** @type {number} */ x) => Math.round(x * 1000) / 1000;
console.log(JSON.stringify({
  adapter: `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}`.trim(),
  dispatches, kernels, buffers, steps,
  firstStepUsPerDispatch: round(first),
  keptUsPerDispatch: round(sorted[Math.floor(sorted.length / 2)]),
  bindings: { made: state.bindings.made, reused: state.bindings.reused },
  samples: samples.map(round),
}));
process.exit(0);
