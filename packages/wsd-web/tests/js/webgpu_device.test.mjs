// requestGPU against Dawn (npm `webgpu`): a real adapter where Vulkan has one
// (SwiftShader on CPU machines; scripts/test.sh points Vulkan at it).
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, globals } from "webgpu";

import { requestGPU } from "../../src/wsd_web/static/js/webgpu_device.js";

Object.assign(globalThis, globals);

test("no WebGPU at all says which browsers have it", async () => {
  await assert.rejects(requestGPU(undefined), /no WebGPU \(navigator.gpu is missing\)/);
});

test("a WebGPU without adapters says so", async () => {
  const gpu = /** @type {GPU} */ (/** @type {unknown} */ ({ requestAdapter: async () => null }));
  await assert.rejects(requestGPU(gpu), /no GPU adapter is available/);
});

test("a real adapter gives a device with the adapter's limits", async () => {
  const gpu = create([]);
  const adapter = await gpu.requestAdapter();
  assert.ok(adapter, "Dawn found no adapter: is VK_ICD_FILENAMES pointing at a Vulkan driver?");
  const info = await requestGPU(gpu);
  assert.equal(info.device.limits.maxStorageBufferBindingSize, adapter.limits.maxStorageBufferBindingSize);
  assert.equal(info.device.limits.maxBufferSize, adapter.limits.maxBufferSize);
  assert.ok(info.adapter.length > 0);
  info.device.destroy();
});

test("capability tokens: a 16x16x16 f16 -> f32 subgroup matrix and subgroups of at most 32", async () => {
  const { capabilityTokens } = await import("../../src/wsd_web/static/js/webgpu_device.js");
  const h200 = {
    subgroupMaxSize: 32,
    subgroupMatrixConfigs: [
      { componentType: "f16", resultComponentType: "f16", M: 16, N: 16, K: 16 },
      { componentType: "f16", resultComponentType: "f32", M: 16, N: 16, K: 16 },
    ],
  };
  const all = ["subgroups", "chromium-experimental-subgroup-matrix"];
  assert.deepEqual(capabilityTokens(h200, all), ["subgroup-matrix-f16-f32-16x16x16", "subgroup-size-max-32"]);
  // Without the feature on the device, the adapter's configs do not count.
  assert.deepEqual(capabilityTokens(h200, ["subgroups"]), ["subgroup-size-max-32"]);
  // Apple's 8x8 only; subgroups of 64 (a workgroup of 32 would not be whole subgroups).
  const apple = { subgroupMaxSize: 32, subgroupMatrixConfigs: [{ componentType: "f16", resultComponentType: "f32", M: 8, N: 8, K: 8 }] };
  assert.deepEqual(capabilityTokens(apple, all), ["subgroup-size-max-32"]);
  assert.deepEqual(capabilityTokens({ subgroupMaxSize: 64 }, all), []);
  assert.deepEqual(capabilityTokens({ subgroupMaxSize: 4 }, ["subgroups"]), ["subgroup-size-max-32"]);
  assert.deepEqual(capabilityTokens({}, []), []);
  // 32 KiB of workgroup memory for the shared tiles (16 KiB: WebGPU's default).
  assert.deepEqual(capabilityTokens(h200, all, { maxComputeWorkgroupStorageSize: 49152 }),
    ["subgroup-matrix-f16-f32-16x16x16", "subgroup-size-max-32", "workgroup-storage-32k"]);
  assert.deepEqual(capabilityTokens({}, [], { maxComputeWorkgroupStorageSize: 16384 }), []);
});
