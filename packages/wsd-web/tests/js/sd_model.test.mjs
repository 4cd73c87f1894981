import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MANIFEST_VERSION, SDModel, chooseKernelPath, describeKernelPath, kernelPaths, missingCapabilities, parseManifest, shardFiles,
} from "../../src/wsd_web/static/js/sd_model.js";
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

/** An fp16 build's kernel paths as wsd-compile writes them: shader-f16 first, fp32 (widening) second. */
const FP16_PATHS = Object.freeze([
  { name: "shader-f16", library: "model.wasm", precision: "fp16", requires: ["shader-f16"], widen_f16_weights: false, max_buffer_bytes: 1000 },
  { name: "fp32", library: "model-fp32.wasm", precision: "fp32", requires: [], widen_f16_weights: true, max_buffer_bytes: 2000 },
]);

/** @param {Record<string, any>} [overrides] */
function fp16Build(overrides = {}) {
  return parseManifest(manifest({
    model: { source: "t", precision: "fp16" }, library: "model.wasm", kernel_paths: FP16_PATHS.map((p) => ({ ...p })), ...overrides,
  }));
}

test("an fp32 path fits an adapter with room and no features", () => {
  const [fp32] = kernelPaths(parseManifest(manifest({ library: "model.wasm" })));
  assert.deepEqual(missingCapabilities(fp32, roomy, [], 1000), []);
});

test("a path needs the features it requires", () => {
  const [f16] = kernelPaths(fp16Build());
  assert.deepEqual(missingCapabilities(f16, roomy, [], 1000), ["needs the WebGPU feature shader-f16, which this adapter lacks"]);
  assert.deepEqual(missingCapabilities(f16, roomy, new Set(["shader-f16"]), 1000), []);
  // An fp16 build without an fp32 path says to use an fp32 build.
  assert.deepEqual(missingCapabilities(f16, roomy, [], 1000, false), [
    "this fp16 build needs the WebGPU feature shader-f16, which this adapter lacks (use an fp32 build)",
  ]);
});

test("a tensor larger than a binding names the limit and both sizes", () => {
  const small = { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 2 ** 30 };
  const [fp32] = kernelPaths(parseManifest(manifest()));
  const problems = missingCapabilities(fp32, small, [], 200 * 2 ** 20);
  assert.deepEqual(problems, [
    `its largest tensor needs maxStorageBufferBindingSize >= ${200 * 2 ** 20} bytes (200 MiB); this adapter allows ${128 * 2 ** 20} (128 MiB)`,
  ]);
});

test("a build without kernel_paths has the one path its library and precision make", () => {
  assert.deepEqual(kernelPaths(parseManifest(manifest({ library: "model.wasm", limits: { max_buffer_bytes: 77 } }))), [
    { name: "fp32", library: "model.wasm", precision: "fp32", requires: [], widen_f16_weights: false, max_buffer_bytes: 77 },
  ]);
  assert.deepEqual(kernelPaths(parseManifest(manifest({ library: "m.wasm", model: { source: "t", precision: "fp16" } }))), [
    { name: "shader-f16", library: "m.wasm", precision: "fp16", requires: ["shader-f16"], widen_f16_weights: false, max_buffer_bytes: 0 },
  ]);
  assert.deepEqual(kernelPaths(fp16Build()).map((p) => p.name), ["shader-f16", "fp32"]);
});

test("malformed kernel_paths are refused with the fix", () => {
  assert.throws(() => fp16Build({ kernel_paths: [] }), /kernel_paths is not a list of paths with distinct names: rebuild/);
  assert.throws(() => fp16Build({ kernel_paths: [FP16_PATHS[0], FP16_PATHS[0]] }), /distinct names/);
  assert.throws(() => fp16Build({ kernel_paths: [FP16_PATHS[0], { ...FP16_PATHS[1], requires: "x" }] }), /kernel_paths\[1\] is malformed/);
  assert.throws(() => fp16Build({ kernel_paths: [null] }), /kernel_paths\[0\] is malformed/);
});

test("the first path the device runs is chosen, with the better ones passed over and why", () => {
  const m = fp16Build();
  const both = chooseKernelPath(m, { features: ["shader-f16", "subgroups"], limits: roomy });
  assert.equal(both.path.name, "shader-f16");
  assert.deepEqual(both.passedOver, []);
  const { path, passedOver } = chooseKernelPath(m, { features: ["subgroups", "timestamp-query"], limits: roomy });
  assert.equal(path.library, "model-fp32.wasm");
  assert.deepEqual(passedOver, [{ name: "shader-f16", why: "needs the WebGPU feature shader-f16, which this adapter lacks" }]);
  assert.equal(describeKernelPath(path, passedOver),
    "kernel path fp32 (passed over shader-f16: needs the WebGPU feature shader-f16, which this adapter lacks)");
  assert.equal(describeKernelPath(both.path, both.passedOver), "kernel path shader-f16");
});

test("a path whose largest buffer exceeds a limit falls back to the next", () => {
  const m = fp16Build({
    kernel_paths: [
      { ...FP16_PATHS[1], name: "big", max_buffer_bytes: 3 * 2 ** 20 },
      { ...FP16_PATHS[1], name: "small", max_buffer_bytes: 2 ** 20 },
    ],
  });
  const limits = { maxStorageBufferBindingSize: 2 * 2 ** 20, maxBufferSize: 2 ** 30 };
  const { path, passedOver } = chooseKernelPath(m, { features: [], limits });
  assert.equal(path.name, "small");
  assert.match(passedOver[0].why, /^its largest tensor needs maxStorageBufferBindingSize >= 3145728 bytes \(3 MiB\); this adapter allows 2097152/);
});

test("float16 weights count double on a path that widens them", () => {
  const m = fp16Build();
  const limits = { maxStorageBufferBindingSize: 3000, maxBufferSize: 3000 };
  // 1800 bytes of float16 fit shader-f16 (1800 < 3000) and would fit fp32 as stored, not widened (3600).
  const f16 = chooseKernelPath(m, { features: ["shader-f16"], limits, largestWeightBytes: { float16: 1800 } });
  assert.equal(f16.path.name, "shader-f16");
  assert.throws(
    () => chooseKernelPath(m, { features: [], limits, largestWeightBytes: { float16: 1800 } }),
    /kernel path fp32: its largest tensor needs maxStorageBufferBindingSize >= 3600 bytes/,
  );
  // Weights that are not float16 count as they are; a number counts as such.
  assert.equal(chooseKernelPath(m, { features: [], limits, largestWeightBytes: { other: 2900 } }).path.name, "fp32");
  assert.equal(chooseKernelPath(m, { features: [], limits, largestWeightBytes: 2900 }).path.name, "fp32");
  assert.throws(() => chooseKernelPath(m, { features: [], limits, largestWeightBytes: 3001 }), /maxBufferSize >= 3001/);
});

test("when no path fits, every path's reasons are given in one line", () => {
  const tiny = { maxStorageBufferBindingSize: 1500, maxBufferSize: 2 ** 30 };
  assert.throws(() => chooseKernelPath(fp16Build(), { features: [], limits: tiny }), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.message,
      "this GPU cannot run the model: kernel path shader-f16: needs the WebGPU feature shader-f16, which this adapter lacks; " +
      "kernel path fp32: its largest tensor needs maxStorageBufferBindingSize >= 2000 bytes (0 MiB); this adapter allows 1500 (0 MiB)");
    return true;
  });
  // A build of one path says why as before kernel paths; an fp16 one with no fp32 path says what would run.
  const old = parseManifest(manifest({ library: "model.wasm", model: { source: "t", precision: "fp16" } }));
  assert.throws(() => chooseKernelPath(old, { features: ["subgroups"], limits: roomy }),
    /^Error: this GPU cannot run the model: this fp16 build needs the WebGPU feature shader-f16, which this adapter lacks \(use an fp32 build\)$/);
  const fp32 = parseManifest(manifest({ library: "model.wasm", limits: { max_buffer_bytes: 2 ** 31 } }));
  assert.throws(() => chooseKernelPath(fp32, { features: [], limits: roomy }),
    /^Error: this GPU cannot run the model: its largest tensor needs maxStorageBufferBindingSize >= 2147483648 bytes \(2048 MiB\); this adapter allows 1073741824 \(1024 MiB\); its largest tensor needs maxBufferSize/);
});

test("a path asked for by name is run, or the error says why not", () => {
  const m = fp16Build();
  const forced = chooseKernelPath(m, { features: ["shader-f16"], limits: roomy, wanted: "fp32" });
  assert.equal(forced.path.name, "fp32");
  assert.deepEqual(forced.passedOver, [{ name: "shader-f16", why: "fp32 was asked for" }]);
  assert.deepEqual(chooseKernelPath(m, { features: ["shader-f16"], limits: roomy, wanted: "shader-f16" }).passedOver, []);
  assert.throws(() => chooseKernelPath(m, { features: [], limits: roomy, wanted: "shader-f16" }),
    /^Error: the kernel path shader-f16 cannot run on this GPU: needs the WebGPU feature shader-f16, which this adapter lacks$/);
  assert.throws(() => chooseKernelPath(m, { features: ["shader-f16"], limits: roomy, wanted: "subgroup-matrix" }),
    /^Error: this build has no kernel path "subgroup-matrix"; its kernel paths are shader-f16 and fp32$/);
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

test("a model decodes in tiles as the mode says, auto where its path's untiled decoder exceeds the device's limits", () => {
  const tiling = { function: "vae_decode_tile", tile: [32, 32], overlap: [8, 8] };
  const m = parseManifest(manifest({ vae_tiling: tiling }));
  const path = { ...kernelPaths(m)[0], vae_decode_buffer_bytes: 512 * 2 ** 20 };
  // decodesInTiles reads the manifest, the kernel path and the limits only.
  const [session, weights] = [/** @type {any} */ ({}), /** @type {any} */ ({})];
  const limits = (/** @type {number} */ bytes) => ({ maxStorageBufferBindingSize: bytes, maxBufferSize: 2 ** 32 });
  const model = (/** @type {any} */ options) => new SDModel(m, session, weights, options);
  assert.equal(model({ kernelPath: path, limits: limits(128 * 2 ** 20) }).decodesInTiles("auto"), true);
  assert.equal(model({ kernelPath: path, limits: limits(1024 * 2 ** 20) }).decodesInTiles("auto"), false);
  assert.equal(model({ kernelPath: path }).decodesInTiles("auto"), false);
  assert.equal(model({ kernelPath: path }).decodesInTiles("on"), true);
  assert.equal(model({ kernelPath: path, limits: limits(1) }).decodesInTiles("off"), false);
  const untiled = new SDModel(parseManifest(manifest()), session, weights);
  assert.equal(untiled.decodesInTiles("auto"), false);
  assert.throws(() => untiled.decodesInTiles("on"), /this build cannot decode in tiles/);
});

test("quantized weights in a format this app cannot read are refused before anything downloads", () => {
  const quantization = { scheme: "int8", bits: 8, group: null, format: "packed-uint32", tensors: 3, unquantized_bytes: 10 };
  const quantized = (/** @type {Record<string, unknown>} */ q, /** @type {string} */ stated = "int8") => {
    const m = manifest();
    m.model = { ...m.model, quantize: stated };
    m.components = { ...m.components, unet: { param_names: [], param_count: 0, param_bytes: 0, quantization: { ...quantization, ...q } } };
    return m;
  };
  assert.equal(parseManifest(quantized({})).model.quantize, "int8");
  assert.throws(() => parseManifest(quantized({ format: "palette-v9" })),
    /the unet weights are stored as "palette-v9", which this app cannot read \(it reads packed-uint32\): serve the model with the wsd-web/);
  assert.throws(() => parseManifest(quantized({}, "int3")), /quantized as "int3", which this app cannot read.*--quantize int8, int4 or none/);
  assert.throws(() => parseManifest(quantized({ scheme: "int4" })), /says the weights are int8 but the unet weights are int4: rebuild/);
  // An unquantized manifest from before the field existed still parses.
  assert.equal(parseManifest(manifest()).model.quantize, undefined);
});
