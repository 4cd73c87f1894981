import assert from "node:assert/strict";
import { test } from "node:test";

import { MANIFEST_VERSION, SD15_FUNCTIONS, SDXL_FUNCTIONS, missingCapabilities, parseManifest, shardFiles } from "../../src/wsd_web/static/js/sd_model.js";
import { parseTensorCacheIndex } from "../../src/wsd_web/static/js/tensor_cache.js";
import { CancelledError, SDXLPipeline, defaultSchedulerName, xlTimeIds } from "../../src/wsd_web/static/js/sd_pipeline.js";

/** A manifest with what the app reads (the rest of a real one is irrelevant here). */
function manifest(overrides = {}) {
  const functions = Object.fromEntries(SD15_FUNCTIONS.map((f) => [f, { inputs: [], outputs: [], params: null }]));
  return { version: MANIFEST_VERSION, kind: "sd15", model: { source: "t", precision: "fp32" }, runtime: { tvm: "0.27.0" }, functions, ...overrides };
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
  assert.throws(() => parseManifest(manifest({ version: MANIFEST_VERSION + 1 })), /version 3 is newer than this app reads \(2\)/);
});

test("an older manifest version asks for a rebuild", () => {
  assert.throws(() => parseManifest(manifest({ version: 1 })), /version 1 was written by an older wsd-compile.*rebuild/);
});

test("a library linked with another TVM runtime is refused before anything downloads", () => {
  assert.throws(() => parseManifest(manifest({ runtime: { tvm: "0.28.1" } })), /TVM 0\.28\.1 web runtime, but this app ships tvmjs 0\.27/);
  assert.throws(() => parseManifest(manifest({ runtime: undefined })), /does not say which TVM runtime/);
});

/** An SDXL manifest with what the app reads. */
function xlManifest(overrides = {}) {
  const functions = Object.fromEntries(SDXL_FUNCTIONS.map((f) => [f, { inputs: [], outputs: [], params: null }]));
  const tokenizer = { file: "tokenizer.json", max_length: 77, bos_token_id: 1017, eos_token_id: 1018, pad_token_id: 1018 };
  return manifest({
    kind: "sdxl",
    functions,
    image: { height: 1024, width: 768 },
    tokenizer,
    tokenizer_2: { ...tokenizer, file: "tokenizer_2.json", pad_token_id: 0 },
    conditioning: { force_zeros_for_empty_prompt: true, pooled_token: "argmax", pooled_dim: 1280, time_ids_dim: 6, vae_force_upcast: true },
    ...overrides,
  });
}

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

test("sdxl time ids: original size, crop top-left, target size, defaulting to the image", () => {
  const image = { height: 1024, width: 768 };
  assert.deepEqual(xlTimeIds({}, image), [1024, 768, 0, 0, 1024, 768]);
  assert.deepEqual(
    xlTimeIds({ originalSize: [512, 640], cropsCoordsTopLeft: [16, 8], targetSize: [1024, 1024] }, image),
    [512, 640, 16, 8, 1024, 1024],
  );
  assert.throws(() => xlTimeIds({ originalSize: /** @type {any} */ ([512]) }, image), /must be pairs of non-negative numbers/);
  assert.throws(() => xlTimeIds({ cropsCoordsTopLeft: [-1, 0] }, image), /non-negative/);
});

test("the pooled token follows transformers' rule for the config", () => {
  const ids = Int32Array.from([1017, 5, 9, 1018, 0, 0, 0]);
  const model = /** @type {any} */ ({ manifest: xlManifest() });
  const argmax = new SDXLPipeline(model, { encode: () => ids }, { encode: () => ids });
  assert.deepEqual(Array.from(argmax.pooledMask(ids)), [0, 0, 0, 1, 0, 0, 0]);
  // eos rule: the first EOS, even when a larger id comes earlier.
  const eosModel = /** @type {any} */ ({ manifest: xlManifest() });
  eosModel.manifest.conditioning.pooled_token = "eos";
  eosModel.manifest.tokenizer_2.eos_token_id = 9;
  const eos = new SDXLPipeline(eosModel, { encode: () => ids }, { encode: () => ids });
  assert.deepEqual(Array.from(eos.pooledMask(ids)), [0, 0, 1, 0, 0, 0, 0]);
  assert.throws(() => eos.pooledMask(Int32Array.from([1, 2])), /no EOS \(9\) to pool/);
  assert.equal(argmax.defaultNegativePrompt, null);
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
  assert.deepEqual(problems, [
    `its largest tensor needs maxStorageBufferBindingSize >= ${200 * 2 ** 20} bytes (200 MiB); this adapter allows ${128 * 2 ** 20} (128 MiB)`,
  ]);
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
