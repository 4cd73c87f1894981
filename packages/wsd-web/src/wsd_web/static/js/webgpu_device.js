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

/**
 * Request a high-performance adapter and a device with the adapter's full limits.
 * @param {GPU | undefined} gpu  `navigator.gpu`, or Dawn's `create([])` in Node.
 * @param {{optionalFeatures?: GPUFeatureName[]}} [options]  Features to enable
 *   where the adapter has them (the benchmark asks for `timestamp-query`).
 * @returns {Promise<GPUInfo>}
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
  for (const name of /** @type {GPUFeatureName[]} */ (["shader-f16", ...optionalFeatures])) {
    if (adapter.features.has(name) && !requiredFeatures.includes(name)) requiredFeatures.push(name);
  }
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const adapterName = [info.vendor, info.architecture, info.device, info.description]
    .filter((s) => s).join(" ") || "unknown adapter";
  return { device, instance: gpu, adapter: adapterName, features: [...device.features].map(String).sort() };
}
