import assert from "node:assert/strict";
import { test } from "node:test";

import { MANIFEST_VERSION, SD15_FUNCTIONS, missingCapabilities, parseManifest } from "../../src/wsd_web/static/js/sd_model.js";
import { CancelledError, defaultSchedulerName } from "../../src/wsd_web/static/js/sd_pipeline.js";

/** A manifest with what the app reads (the rest of a real one is irrelevant here). */
function manifest(overrides = {}) {
  const functions = Object.fromEntries(SD15_FUNCTIONS.map((f) => [f, { inputs: [], outputs: [], params: null }]));
  return { version: MANIFEST_VERSION, kind: "sd15", model: { source: "t", precision: "fp32" }, functions, ...overrides };
}

test("a complete sd15 manifest parses", () => {
  const m = parseManifest(manifest());
  assert.equal(m.kind, "sd15");
});

test("something that is not a manifest is refused with the fix", () => {
  assert.throws(() => parseManifest([]), /not a wsd manifest: rebuild the model with wsd-compile/);
  assert.throws(() => parseManifest(null), /not a wsd manifest/);
});

test("a newer manifest version names both versions", () => {
  assert.throws(() => parseManifest(manifest({ version: MANIFEST_VERSION + 1 })), /version 2 is newer than this app reads \(1\)/);
});

test("another model kind is refused", () => {
  assert.throws(() => parseManifest(manifest({ kind: "sdxl" })), /runs sd15 builds; the manifest says "sdxl"/);
});

test("missing functions are listed", () => {
  const m = manifest();
  delete m.functions.unet;
  delete m.functions.combine4;
  assert.throws(() => parseManifest(m), /lacks the functions unet, combine4/);
});

const roomy = { maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 30 };

test("an fp32 model fits an adapter with room and no features", () => {
  assert.deepEqual(missingCapabilities(parseManifest(manifest()), roomy, [], 1000), []);
});

test("an fp16 model needs shader-f16", () => {
  const m = parseManifest(manifest({ model: { source: "t", precision: "fp16" } }));
  assert.match(missingCapabilities(m, roomy, [], 1000)[0], /needs the WebGPU feature shader-f16/);
  assert.deepEqual(missingCapabilities(m, roomy, ["shader-f16"], 1000), []);
});

test("a tensor larger than a binding names the limit and both sizes", () => {
  const small = { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 2 ** 30 };
  const problems = missingCapabilities(parseManifest(manifest()), small, [], 200 * 2 ** 20);
  assert.deepEqual(problems, [`its largest tensor needs maxStorageBufferBindingSize >= ${200 * 2 ** 20} bytes; this adapter allows ${128 * 2 ** 20}`]);
});

test("the default scheduler is the one the model's config names", () => {
  assert.equal(defaultSchedulerName({ class_name: "PNDMScheduler", config: {} }), "pndm");
  assert.equal(defaultSchedulerName({ class_name: "DPMSolverMultistepScheduler", config: {} }), "dpmpp-2m");
  assert.equal(
    defaultSchedulerName({ class_name: "DPMSolverMultistepScheduler", config: { use_karras_sigmas: true } }),
    "dpmpp-2m-karras",
  );
  assert.equal(defaultSchedulerName({ class_name: "DDIMScheduler", config: {} }), "ddim");
  assert.equal(defaultSchedulerName({ class_name: "SomethingElse", config: {} }), "dpmpp-2m");
});

test("a cancelled generation is its own error type", () => {
  const e = new CancelledError();
  assert.equal(e.name, "CancelledError");
  assert.match(e.message, /cancelled/);
});
