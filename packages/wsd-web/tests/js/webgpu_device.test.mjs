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
