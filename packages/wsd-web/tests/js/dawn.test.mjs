import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_DAWN_FEATURES, dawnToggles } from "../../src/wsd_web/node/dawn.mjs";

test("every runner asks Dawn for shader-f16 on NVIDIA's Vulkan driver and for subgroup matrices", () => {
  assert.deepEqual(DEFAULT_DAWN_FEATURES, ["vulkan_enable_f16_on_nvidia", "allow_unsafe_apis"]);
  assert.deepEqual(dawnToggles(), ["enable-dawn-features=vulkan_enable_f16_on_nvidia,allow_unsafe_apis"]);
});

test("features to enable join the defaults in one entry; Dawn would keep only the last of two", () => {
  assert.deepEqual(dawnToggles({ enable: ["disable_robustness", "vulkan_enable_f16_on_nvidia"] }), [
    "enable-dawn-features=vulkan_enable_f16_on_nvidia,allow_unsafe_apis,disable_robustness",
  ]);
});

test("features to disable get their own entry", () => {
  assert.deepEqual(dawnToggles({ disable: ["timestamp_quantization"] }), [
    "enable-dawn-features=vulkan_enable_f16_on_nvidia,allow_unsafe_apis",
    "disable-dawn-features=timestamp_quantization",
  ]);
});
