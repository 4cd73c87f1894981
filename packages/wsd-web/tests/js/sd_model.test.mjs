import assert from "node:assert/strict";
import { test } from "node:test";

import { MANIFEST_VERSION, missingCapabilities, parseManifest, shardFiles } from "../../src/wsd_web/static/js/sd_model.js";
import { parseTensorCacheIndex } from "../../src/wsd_web/static/js/tensor_cache.js";
import { manifest, xlManifest } from "./manifest_fixtures.mjs";

test("a complete sd15 manifest parses", () => {
  const m = parseManifest(manifest());
  assert.equal(m.kind, "sd15");
});

test("something that is not a manifest is refused with the fix", () => {
  assert.throws(() => parseManifest([]), /not a wsd manifest: rebuild the model with wsd-compile/);
  assert.throws(() => parseManifest(null), /not a wsd manifest/);
});

test("a newer manifest version names both versions", () => {
  assert.throws(() => parseManifest(manifest({ version: MANIFEST_VERSION + 1 })), /version 4 is newer than this app reads \(3\)/);
});

test("an older manifest version asks for a rebuild", () => {
  assert.throws(() => parseManifest(manifest({ version: 1 })), /version 1 was written by an older wsd-compile.*rebuild/);
});

test("a library linked with another TVM runtime is refused before anything downloads", () => {
  assert.throws(() => parseManifest(manifest({ runtime: { tvm: "0.28.1" } })), /TVM 0\.28\.1 web runtime, but this app ships tvmjs 0\.27/);
  assert.throws(() => parseManifest(manifest({ runtime: undefined })), /does not say which TVM runtime/);
});

test("another model kind is refused", () => {
  assert.throws(() => parseManifest(manifest({ kind: "sd3" })), /runs sd15 and sdxl builds; the manifest says "sd3"/);
});

test("an sdxl manifest needs its functions, second tokenizer and conditioning", () => {
  assert.equal(parseManifest(xlManifest()).kind, "sdxl");
  assert.throws(() => parseManifest(manifest({ kind: "sdxl" })), /lacks tokenizer_2 or conditioning/);
  const m = xlManifest();
  delete m.functions.text_encoder_2;
  assert.throws(() => parseManifest(m), /lacks the functions text_encoder_2/);
});

test("missing functions are listed", () => {
  const m = manifest();
  delete m.functions.unet;
  delete m.functions.combine4;
  assert.throws(() => parseManifest(m), /lacks the functions unet, combine4/);
});

test("a manifest without tasks or scheduler.max_terms asks for a rebuild", () => {
  assert.throws(() => parseManifest(manifest({ tasks: undefined })), /lacks tasks or scheduler\.max_terms: rebuild/);
  const m = manifest();
  delete m.scheduler.max_terms;
  assert.throws(() => parseManifest(m), /lacks tasks or scheduler\.max_terms: rebuild/);
});

test("every function a task lists must be in the library", () => {
  const m = manifest();
  m.tasks["image-to-image"] = [...m.tasks["text-to-image"], "vae_encode"];
  assert.throws(() => parseManifest(m), /lacks the functions vae_encode/);
});

test("the scheduler's combine kernels up to max_terms must be in the library", () => {
  const m = manifest();
  m.scheduler.max_terms = 5;
  assert.throws(() => parseManifest(m), /lacks the functions combine5/);
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
  assert.deepEqual(problems, [
    `its largest tensor needs maxStorageBufferBindingSize >= ${200 * 2 ** 20} bytes (200 MiB); this adapter allows ${128 * 2 ** 20} (128 MiB)`,
  ]);
});

test("two index entries with the same content share one shard file, fetched once", () => {
  const record = (/** @type {string} */ name) => ({ name, shape: [2], dtype: "float32", format: "raw", nbytes: 8, byteOffset: 0 });
  const index = parseTensorCacheIndex({
    records: [
      { dataPath: "shard-zeros.bin", nbytes: 8, records: [record("unet.1")] },
      { dataPath: "shard-other.bin", nbytes: 8, records: [record("unet.2")] },
      { dataPath: "shard-zeros.bin", nbytes: 8, records: [record("unet.3")] },
    ],
  });
  const files = shardFiles(/** @type {any} */ ({ weights: "weights/tensor-cache.json" }), index);
  assert.deepEqual([...files.keys()], ["weights/shard-zeros.bin", "weights/shard-other.bin"]);
  assert.deepEqual(files.get("weights/shard-zeros.bin")?.map((s) => s.records[0].name), ["unet.1", "unet.3"]);
});
