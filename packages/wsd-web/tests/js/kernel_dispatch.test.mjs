// Dispatch with kept bindings (js/kernel_dispatch.js): the launch plan read
// from a kernel's function info, the grid spread over z, and real dispatches
// on Dawn (SwiftShader on CPU machines) through a context shaped like tvmjs'.
/* global GPUBufferUsage, GPUMapMode -- Dawn's, installed on globalThis below */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, globals } from "webgpu";

import { BindingCache, dispatchWithKeptBindings, launchPlan, spreadGrid } from "../../src/wsd_web/static/js/kernel_dispatch.js";

Object.assign(globalThis, globals);

test("the launch plan: buffers in order with their write access, scalars by kind, grid extents", () => {
  const plan = launchPlan({
    name: "k",
    arg_types: ["handle", "int32", "handle", "float32", "uint32", "handle"],
    launch_param_tags: ["blockIdx.x", "blockIdx.y", "threadIdx.x", "paramWriteAccess:[0,0,1]"],
  });
  assert.deepEqual(plan.buffers, [0, 2, 5]);
  assert.deepEqual(plan.writable, [false, false, true]);
  assert.deepEqual(plan.scalars, [{ index: 1, kind: "int" }, { index: 3, kind: "float" }, { index: 4, kind: "uint" }]);
  assert.deepEqual(plan.grid, [0, 1, 3]);
});

test("a launch plan refuses what TVM's WebGPU protocol does not have, naming the kernel", () => {
  const tags = ["blockIdx.x", "paramWriteAccess:[1]"];
  assert.throws(() => launchPlan({ name: "k", arg_types: ["handle"], launch_param_tags: ["vthread", ...tags] }),
    /kernel k: cannot launch with thread axis vthread/);
  assert.throws(() => launchPlan({ name: "k", arg_types: ["handle", "bool"], launch_param_tags: tags }),
    /kernel k: cannot pass an argument of type bool/);
  assert.throws(() => launchPlan({ name: "k", arg_types: ["handle", "handle"], launch_param_tags: tags }),
    /kernel k: its paramWriteAccess tag must name each of its 2 buffers/);
  assert.throws(() => launchPlan({ name: "k", arg_types: ["handle"], launch_param_tags: ["blockIdx.x"] }),
    /paramWriteAccess/);
});

test("grids of 65,536 workgroups or more are halved into z until WebGPU takes them", () => {
  assert.deepEqual(spreadGrid(1), [1, 1]);
  assert.deepEqual(spreadGrid(65535), [65535, 1]);
  assert.deepEqual(spreadGrid(65536), [32768, 2]);
  assert.deepEqual(spreadGrid(131073), [32769, 4]);
  for (const x of [70001, 1 << 20, 5_000_011]) {
    const [gx, gz] = spreadGrid(x);
    assert.ok(gx < 65536 && gx * gz >= x && gx * (gz / 2) < x, `${x} -> ${gx} x ${gz}`);
  }
});

// A kernel as TVM writes them: scalars then packGridDimX in a uniform bound last,
// the x extent folded back from z.
const SCALE = `
struct PODArgs { n: i32, scale: f32, packGridDimX: u32 }
@group(0) @binding(0) var<storage, read> a : array<f32>;
@group(0) @binding(1) var<storage, read_write> o : array<f32>;
@group(0) @binding(2) var<uniform> podArgs : PODArgs;
@compute @workgroup_size(4)
fn scale_kernel(@builtin(workgroup_id) w : vec3<u32>, @builtin(num_workgroups) g : vec3<u32>,
                @builtin(local_invocation_id) t : vec3<u32>) {
  let block = w.z * g.x + w.x;
  if (block >= podArgs.packGridDimX) { return; }
  let i = i32(block * 4u + t.x);
  if (i < podArgs.n) { o[i] = a[i] * podArgs.scale; }
}`;
const SCALE_INFO = {
  name: "scale_kernel",
  arg_types: ["handle", "handle", "int32", "float32"],
  launch_param_tags: ["blockIdx.x", "threadIdx.x", "paramWriteAccess:[0,1]"],
};

const gpu = create([]);

/** A context shaped like tvmjs' WebGPU one, on a real device: buffers are table entries. */
async function dawnContext() {
  const adapter = await gpu.requestAdapter();
  assert.ok(adapter, "Dawn found no adapter: is VK_ICD_FILENAMES pointing at a Vulkan driver?");
  const device = await adapter.requestDevice();
  /** @type {GPUBuffer[]} */
  const table = [];
  const context = {
    device,
    /** @type {GPUCommandEncoder | null} */
    pendingEncoder: null,
    shaderSubmitCounter: 0,
    flushes: 0,
    gpuBufferFromPtr: (/** @type {number} */ ptr) => table[ptr],
    flushCommands() {
      this.flushes++;
      if (this.pendingEncoder) device.queue.submit([this.pendingEncoder.finish()]);
      this.pendingEncoder = null;
    },
    /** @type {(finfo: any, code: string, asyncMode: boolean) => any} */
    createShadeInternal: () => { throw new Error("replaced"); },
  };
  /** A storage buffer of `values`, as a pointer. @param {number[] | Float32Array} values */
  const upload = (values) => {
    const buffer = device.createBuffer({ size: values.length * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(buffer, 0, Float32Array.from(values));
    return table.push(buffer) - 1;
  };
  /** The values of the buffer at `ptr`, once what is recorded has run. @param {number} ptr */
  const read = async (ptr) => {
    const source = table[ptr];
    const staging = device.createBuffer({ size: source.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    context.pendingEncoder ??= device.createCommandEncoder();
    context.pendingEncoder.copyBufferToBuffer(source, 0, staging, 0, source.size);
    context.flushCommands();
    await staging.mapAsync(GPUMapMode.READ);
    const values = Array.from(new Float32Array(staging.getMappedRange().slice(0)));
    staging.unmap();
    staging.destroy();
    return values;
  };
  return { device, context, upload, read };
}

test("kernels dispatch with a binding made once per distinct buffers and scalars, and compute the same", async () => {
  const { device, context, upload, read } = await dawnContext();
  const cache = dispatchWithKeptBindings(context).bindings;
  const dispatch = await context.createShadeInternal(SCALE_INFO, SCALE, true);
  const input = Array.from({ length: 10 }, (_, i) => i + 1);
  const a = upload(input);
  const o = upload(new Array(10).fill(0));
  const o2 = upload(new Array(10).fill(0));
  dispatch(a, o, 10, 2, 3, 4);
  assert.deepEqual(await read(o), input.map((v) => 2 * v));
  dispatch(a, o, 10, 2, 3, 4);
  assert.deepEqual([cache.made, cache.reused], [1, 1]);
  dispatch(a, o, 10, 0.5, 3, 4); // other scalars: a binding of their own
  assert.deepEqual(await read(o), input.map((v) => 0.5 * v));
  dispatch(a, o2, 8, 2, 2, 4); // other buffers and grid
  assert.deepEqual(await read(o2), [...input.slice(0, 8).map((v) => 2 * v), 0, 0]);
  dispatch(a, o, 10, 0.5, 3, 4);
  assert.deepEqual([cache.made, cache.reused], [3, 2]);
  assert.equal(context.shaderSubmitCounter, 5);
  assert.throws(() => dispatch(a, o, 10, 2, 3), /kernel scale_kernel takes 6 arguments, got 5/);
  device.destroy();
});

test("a grid spread over z reaches every workgroup once, and a full cache starts over after submitting", async () => {
  const { device, context, upload, read } = await dawnContext();
  const cache = dispatchWithKeptBindings(context, 2).bindings;
  const dispatch = context.createShadeInternal(SCALE_INFO, SCALE, false);
  const n = 4 * 70001;
  const input = Float32Array.from({ length: n }, (_, i) => i % 1000);
  const a = upload(input);
  const o = upload(new Float32Array(n));
  dispatch(a, o, n, 3, 70001, 4);
  const out = await read(o);
  assert.ok(out.every((v, i) => v === 3 * input[i]), "every element scaled once");
  dispatch(a, o, n, 4, 70001, 4);
  const flushesBefore = context.flushes;
  dispatch(a, o, n, 5, 70001, 4); // a third binding: the cache of two starts over
  assert.equal(context.flushes, flushesBefore + 1);
  assert.deepEqual([cache.made, cache.size], [3, 1]);
  const last = await read(o);
  assert.ok(last.every((v, i) => v === 5 * input[i]));
  device.destroy();
});

test("consecutive dispatches share a pass and see each other's writes; a pass each when asked", async () => {
  const { device, context, upload, read } = await dawnContext();
  let passes = 0;
  let pipelinesSet = 0;
  const createEncoder = device.createCommandEncoder.bind(device);
  device.createCommandEncoder = (descriptor) => {
    const encoder = createEncoder(descriptor);
    const begin = encoder.beginComputePass.bind(encoder);
    encoder.beginComputePass = (descriptor) => {
      passes++;
      const pass = begin(descriptor);
      const setPipeline = pass.setPipeline.bind(pass);
      pass.setPipeline = (pipeline) => { pipelinesSet++; setPipeline(pipeline); };
      return pass;
    };
    return encoder;
  };
  const state = dispatchWithKeptBindings(context);
  const dispatch = context.createShadeInternal(SCALE_INFO, SCALE, false);
  const a = upload([1, 2, 3, 4]);
  const b = upload([0, 0, 0, 0]);
  const c = upload([0, 0, 0, 0]);
  dispatch(a, b, 4, 2, 1, 4);
  dispatch(b, c, 4, 3, 1, 4); // reads what the dispatch before it wrote
  dispatch(c, b, 4, 0.5, 1, 4);
  assert.equal(passes, 1);
  assert.equal(pipelinesSet, 1, "the pipeline is set once for consecutive dispatches of a kernel in a pass");
  assert.deepEqual(await read(b), [3, 6, 9, 12]); // the copy ended the pass first
  state.sharePasses = false;
  dispatch(a, b, 4, 1, 1, 4);
  dispatch(b, c, 4, 1, 1, 4);
  assert.equal(passes, 3);
  assert.equal(pipelinesSet, 3, "a new pass sets its pipeline again");
  assert.deepEqual(await read(c), [1, 2, 3, 4]);
  // Turned off while a shared pass is open: that pass ends, the next dispatch has its own.
  state.sharePasses = true;
  dispatch(a, b, 4, 2, 1, 4);
  state.sharePasses = false;
  assert.equal(state.sharePasses, false);
  dispatch(b, c, 4, 2, 1, 4);
  assert.equal(passes, 5);
  assert.deepEqual(await read(c), [4, 8, 12, 16]);
  device.destroy();
});

test("a context without the internals a dispatch uses is refused, naming them", () => {
  assert.throws(() => dispatchWithKeptBindings(/** @type {any} */ ({ flushCommands() {}, shaderSubmitCounter: 0 })),
    /the tvmjs WebGPU context lacks device, gpuBufferFromPtr, pendingEncoder/);
});

test("clearing an empty cache submits nothing", () => {
  let flushed = 0;
  const cache = new BindingCache(/** @type {any} */ ({}), () => { flushed++; });
  cache.clear();
  assert.equal(flushed, 0);
});

test("a cache limit that is not a positive integer is refused, naming it", () => {
  for (const limit of [0, -1, 2.5, Number.NaN]) {
    assert.throws(() => new BindingCache(/** @type {any} */ ({}), () => {}, limit),
      /the limit must be a positive integer \(the bindings kept at most\), not /);
  }
  assert.equal(new BindingCache(/** @type {any} */ ({}), () => {}, 1).limit, 1);
});

test("the dispatch benchmark records a step of synthetic sites, then finds every binding kept", async () => {
  const { execFile } = await import("node:child_process");
  const { promisify } = await import("node:util");
  const script = new URL("../../src/wsd_web/node/dispatch_bench.mjs", import.meta.url);
  const options = { dispatches: 40, kernels: 6, buffers: 20, steps: 3 };
  const { stdout } = await promisify(execFile)(process.execPath, [script.pathname, JSON.stringify(options)]);
  const report = JSON.parse(stdout.trim().split("\n").at(-1) ?? "");
  assert.equal(report.dispatches, 40);
  assert.ok(report.bindings.made > 0 && report.bindings.made <= 40, `made ${report.bindings.made}`);
  assert.equal(report.bindings.made + report.bindings.reused, 40 * 4, "every dispatch of the first step and the 3 after it");
  assert.ok(report.bindings.reused >= 40 * 3, "the later steps make nothing");
  assert.equal(report.samples.length, 3);
  assert.ok(report.keptUsPerDispatch > 0 && report.firstStepUsPerDispatch > 0);
});
