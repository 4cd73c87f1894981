// GPU time of a compute dispatch, for the probes (probe_subgroup_matrix.mjs,
// probe_kernels.mjs): timestamp queries around passes of a few dispatches.
/* global GPUBufferUsage, GPUMapMode -- Dawn's, installed on globalThis by the caller */
import { createDawn } from "./dawn.mjs";

/**
 * Milliseconds per dispatch of `pipeline` over `grid`: `repeats` timed passes of
 * `dispatches` dispatches each, after WARM_MS (environment; default 300) of
 * untimed ones, since an idle GPU's clocks are low. The device needs
 * `timestamp-query`.
 * @param {GPUDevice} device @param {GPUComputePipeline} pipeline @param {GPUBindGroup} bindGroup
 * @param {number[]} grid workgroups along x, y (and z)
 * @param {number} repeats @param {number} dispatches
 * @returns {Promise<{ms: number, min_ms: number}>} the median and the fastest pass
 */
export async function timeDispatches(device, pipeline, bindGroup, grid, repeats, dispatches) {
  const query = device.createQuerySet({ type: "timestamp", count: 2 });
  const resolve = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const [x, y = 1, z = 1] = grid;
  const times = [];
  const warmUntil = performance.now() + Number(process.env.WARM_MS ?? 300);
  while (times.length < repeats) {
    const warm = performance.now() < warmUntil;
    const encoder = device.createCommandEncoder();
    const writes = { querySet: query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 };
    const pass = encoder.beginComputePass(warm ? {} : { timestampWrites: writes });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    for (let d = 0; d < dispatches; d++) pass.dispatchWorkgroups(x, y, z);
    pass.end();
    if (!warm) {
      encoder.resolveQuerySet(query, 0, 2, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, read, 0, 16);
    }
    device.queue.submit([encoder.finish()]);
    if (warm) {
      await device.queue.onSubmittedWorkDone();
      continue;
    }
    await read.mapAsync(GPUMapMode.READ);
    const [start, end] = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    times.push(Number(end - start) / 1e6 / dispatches);
  }
  query.destroy();
  resolve.destroy();
  read.destroy();
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], min_ms: times[0] };
}

/** @type {{gpu: GPU} | undefined} */
let dawn;

/**
 * A device for timing kernels: Dawn with unquantised timestamps (it rounds them
 * to 64 microseconds otherwise) and `allow_unsafe_apis`, the adapter's largest
 * buffer, workgroup-memory and workgroup-size limits, and those of `features`
 * the adapter has.
 * @param {readonly string[]} features
 * @returns {Promise<{adapter: GPUAdapter, device: GPUDevice, features: GPUFeatureName[]}>}
 */
export async function probeDevice(features) {
  // Kept for the life of the process: Dawn's instance must outlive its devices.
  dawn = createDawn({ enable: ["allow_unsafe_apis"], disable: ["timestamp_quantization"] });
  const adapter = await dawn.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("no WebGPU adapter");
  const requiredFeatures = /** @type {GPUFeatureName[]} */ (features.filter((f) => adapter.features.has(f)));
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
  return { adapter, device, features: requiredFeatures };
}
