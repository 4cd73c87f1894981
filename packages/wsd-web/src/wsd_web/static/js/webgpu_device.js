// Acquiring a WebGPU device for a model, in a browser or in Node + Dawn.

/**
 * @typedef {object} GPUInfo
 * @property {GPUDevice} device
 * @property {GPU} instance  Kept referenced: Dawn (Node) crashes if the instance is collected.
 * @property {string} adapter  A human-readable adapter description.
 * @property {string[]} features
 */

/** Limits a model library may need more of than the WebGPU defaults. */
const RAISED_LIMITS = /** @type {const} */ ([
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxStorageBuffersPerShaderStage",
]);

/** Features a build's kernel paths may need, enabled wherever the adapter has them. */
const KERNEL_FEATURES = /** @type {GPUFeatureName[]} */ (
  ["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix"]
);

/**
 * What a kernel path may require of `adapter.info` beyond features, as tokens
 * beside them (`wsd_compile.kernels.subgroup_matrix.SUBGROUP_MATRIX_REQUIRES`):
 * `subgroup-matrix-f16-f32-16x16x16` when the device multiplies 16x16x16 f16
 * subgroup matrices into f32, `subgroup-size-max-32` when its subgroups have at
 * most 32 invocations and a workgroup of 32 is whole subgroups,
 * `workgroup-storage-32k` when a workgroup may use 32 KiB of workgroup memory
 * (the tensor-core kernels' shared tiles; WebGPU's default is 16 KiB).
 * @param {{subgroupMaxSize?: number, subgroupMatrixConfigs?: Iterable<any>}} info  `adapter.info`.
 * @param {Iterable<string>} features  The device's features.
 * @param {{maxComputeWorkgroupStorageSize?: number}} [limits]  The device's limits.
 * @returns {string[]}
 */
export function capabilityTokens(info, features, limits = {}) {
  const have = new Set(features);
  const tokens = [];
  if (have.has("chromium-experimental-subgroup-matrix")) {
    const configs = [...(info.subgroupMatrixConfigs ?? [])];
    if (configs.some((c) => c.componentType === "f16" && c.resultComponentType === "f32" && c.M === 16 && c.N === 16 && c.K === 16)) {
      tokens.push("subgroup-matrix-f16-f32-16x16x16");
    }
  }
  const size = info.subgroupMaxSize ?? 0;
  if (have.has("subgroups") && size > 0 && size <= 32 && 32 % size === 0) tokens.push("subgroup-size-max-32");
  if ((limits.maxComputeWorkgroupStorageSize ?? 0) >= 32768) tokens.push("workgroup-storage-32k");
  return tokens;
}

/**
 * Request a high-performance adapter and a device with the adapter's full limits.
 * @param {GPU | undefined} gpu  `navigator.gpu`, or Dawn's `create([])` in Node.
 * @param {{optionalFeatures?: GPUFeatureName[]}} [options]  Features to enable
 *   where the adapter has them (the benchmark asks for `timestamp-query`).
 * @returns {Promise<GPUInfo>}  Its `features` are the device's and the
 *   `capabilityTokens` of its adapter, what kernel paths are chosen by.
 */
export async function requestGPU(gpu, { optionalFeatures = [] } = {}) {
  if (!gpu) {
    throw new Error(
      "This browser has no WebGPU (navigator.gpu is missing): use a recent Chrome or Edge, " +
      "or Firefox/Safari with WebGPU enabled, over https or localhost",
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new Error("WebGPU is present but no GPU adapter is available: check that the GPU is enabled");
  }
  /** @type {Record<string, number>} */
  const requiredLimits = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
  /** @type {GPUFeatureName[]} */
  const requiredFeatures = [];
  for (const name of [...KERNEL_FEATURES, ...optionalFeatures]) {
    if (adapter.features.has(name) && !requiredFeatures.includes(name)) requiredFeatures.push(name);
  }
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const adapterName = [info.vendor, info.architecture, info.device, info.description]
    .filter((s) => s).join(" ") || "unknown adapter";
  const features = [...device.features].map(String);
  features.push(...capabilityTokens(/** @type {any} */ (info), features, device.limits));
  return { device, instance: gpu, adapter: adapterName, features: features.sort() };
}
