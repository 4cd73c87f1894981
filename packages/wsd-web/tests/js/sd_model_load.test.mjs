// SDModel.load on a fake tvmjs: the kernel path is chosen from the weight index
// and the device before anything else downloads, only its library is fetched,
// and float16 weights are widened where the path takes float32.
import assert from "node:assert/strict";
import { test } from "node:test";

import { BuildMismatchError } from "../../src/wsd_web/static/js/build_stamp.js";
import { SDModel, parseManifest } from "../../src/wsd_web/static/js/sd_model.js";
import { fakeTvmjs, stampedLibrary } from "./fake_tvmjs.mjs";
import { manifest } from "./manifest_fixtures.mjs";

const BUILD = "0123456789abcdef";
const roomy = { maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 30 };

/** float16 1, -2, 2^-24 (subnormal), -0; then int32 7. */
const SHARD = new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x80, 7, 0, 0, 0]);

const INDEX = {
  records: [{
    dataPath: "shard-0.bin", nbytes: SHARD.byteLength,
    records: [
      { name: "unet.w", shape: [4], dtype: "float16", format: "raw", nbytes: 8, byteOffset: 0 },
      { name: "unet.n", shape: [1], dtype: "int32", format: "raw", nbytes: 4, byteOffset: 8 },
    ],
  }],
};

const PATHS = [
  { name: "shader-f16", library: "model.wasm", precision: "fp16", requires: ["shader-f16"], widen_f16_weights: false, max_buffer_bytes: 64 },
  { name: "fp32", library: "model-fp32.wasm", precision: "fp32", requires: [], widen_f16_weights: true, max_buffer_bytes: 128 },
];

/**
 * An fp16 build with two kernel paths, its files, and a log of what was fetched.
 * @param {{libraries?: Record<string, Uint8Array>, components?: any}} [options]
 */
function build({ libraries = {}, components = { unet: { param_names: ["unet.w", "unet.n"], param_count: 2, param_bytes: 12 } } } = {}) {
  const m = parseManifest(manifest({
    build_id: BUILD, model: { source: "t", precision: "fp16" }, library: "model.wasm", kernel_paths: PATHS,
    weights: "weights/tensor-cache.json", components,
  }));
  /** @type {Record<string, Uint8Array>} */
  const files = {
    "manifest.json": new TextEncoder().encode(JSON.stringify(m)),
    "weights/tensor-cache.json": new TextEncoder().encode(JSON.stringify(INDEX)),
    "weights/shard-0.bin": SHARD,
    "model.wasm": stampedLibrary(BUILD),
    "model-fp32.wasm": stampedLibrary(BUILD),
    ...libraries,
  };
  /** @type {string[]} */
  const fetched = [];
  const get = async (/** @type {string} */ path) => {
    fetched.push(path);
    if (!Object.hasOwn(files, path)) throw new Error(`no ${path}`);
    return files[path];
  };
  return { manifest: m, files, fetched, get };
}

/** @param {string[]} features @param {typeof roomy} [limits] */
function gpu(features, limits = roomy) {
  return /** @type {any} */ ({ device: { limits }, features, adapter: "fake", instance: {} });
}

/** @param {ReturnType<typeof build>} b */
function source(b) {
  return {
    get: b.get,
    /** @param {string[]} paths @param {(path: string, bytes: Uint8Array) => void | Promise<void>} consume */
    async getAll(paths, consume) {
      for (const path of paths) await consume(path, await b.get(path));
    },
  };
}

test("without shader-f16 the fp32 path loads: its library alone is fetched and float16 weights are widened", async () => {
  const b = build();
  const { tvmjs, books } = fakeTvmjs();
  /** @type {string[]} */
  const events = [];
  const model = await SDModel.load({
    tvmjs, gpu: gpu(["subgroups", "timestamp-query"]),
    manifest: b.manifest, files: source(b),
    onKernelPath: ({ path, passedOver }) => { events.push(`chose ${path.name} after ${b.fetched.join(",")}`, ...passedOver.map((p) => p.name)); },
    onUpload: (path) => events.push(`uploaded ${path}`),
  });
  assert.deepEqual(b.fetched, ["weights/tensor-cache.json", "model-fp32.wasm", "weights/shard-0.bin"]);
  assert.deepEqual(events, ["chose fp32 after weights/tensor-cache.json", "shader-f16", "uploaded weights/shard-0.bin"]);
  assert.equal(model.kernelPath.name, "fp32");
  assert.deepEqual(model.passedOver.map((p) => p.name), ["shader-f16"]);
  assert.deepEqual(books.instantiated, [b.files["model-fp32.wasm"]]);
  const [w, n] = books.uploads;
  assert.deepEqual([w.shape, w.dtype, n.dtype], [[4], "float32", "int32"]);
  const view = new DataView(/** @type {Uint8Array} */ (w.bytes).buffer);
  assert.deepEqual([0, 1, 2, 3].map((i) => view.getFloat32(4 * i, true)), [1, -2, 2 ** -24, -0]);
  assert.ok(Object.is(view.getFloat32(12, true), -0));
  assert.deepEqual(n.bytes, SHARD.subarray(8));
  assert.equal(books.tuples.length, 1);
  model.dispose();
  assert.ok(books.disposed);
});

test("with shader-f16 the first path loads its own library and takes the weights as stored", async () => {
  const b = build();
  const { tvmjs, books } = fakeTvmjs();
  const model = await SDModel.load({ tvmjs, gpu: gpu(["shader-f16"]), manifest: b.manifest, files: source(b) });
  assert.deepEqual(b.fetched, ["weights/tensor-cache.json", "model.wasm", "weights/shard-0.bin"]);
  assert.equal(model.kernelPath.name, "shader-f16");
  assert.deepEqual(model.passedOver, []);
  assert.deepEqual(books.uploads.map((t) => t.dtype), ["float16", "int32"]);
  assert.deepEqual(books.uploads[0].bytes, SHARD.subarray(0, 8));
});

test("open passes a kernel path asked for by name through", async () => {
  const b = build();
  const { tvmjs } = fakeTvmjs();
  const model = await SDModel.open({ tvmjs, gpu: gpu(["shader-f16"]), get: b.get, kernelPath: "fp32" });
  assert.equal(model.kernelPath.library, "model-fp32.wasm");
  assert.deepEqual(model.passedOver, [{ name: "shader-f16", why: "fp32 was asked for" }]);
  assert.ok(!b.fetched.includes("model.wasm"));
  await assert.rejects(
    SDModel.open({ tvmjs, gpu: gpu(["shader-f16"]), get: build().get, kernelPath: "nope" }),
    /this build has no kernel path "nope"; its kernel paths are shader-f16 and fp32/,
  );
});

test("a device no path fits is refused before any library or shard is fetched", async () => {
  const b = build();
  const { tvmjs, books } = fakeTvmjs();
  const limits = { maxStorageBufferBindingSize: 100, maxBufferSize: 2 ** 30 };
  await assert.rejects(
    SDModel.load({ tvmjs, gpu: gpu([], limits), manifest: b.manifest, files: source(b) }),
    /this GPU cannot run the model: kernel path shader-f16: needs the WebGPU feature shader-f16.*; kernel path fp32: its largest tensor needs maxStorageBufferBindingSize >= 128 bytes/,
  );
  assert.deepEqual(b.fetched, ["weights/tensor-cache.json"]);
  assert.deepEqual(books.instantiated, []);
});

test("the chosen library of another build is named before it is instantiated", async () => {
  const b = build({ libraries: { "model-fp32.wasm": stampedLibrary("fedcba9876543210") } });
  const { tvmjs, books } = fakeTvmjs();
  await assert.rejects(
    SDModel.load({ tvmjs, gpu: gpu([]), manifest: b.manifest, files: source(b) }),
    (e) => e instanceof BuildMismatchError && e.file === "model-fp32.wasm",
  );
  assert.deepEqual(books.instantiated, []);
});

test("a failure after the library is instantiated releases it", async () => {
  const b = build({ components: { unet: { param_names: ["unet.w", "unet.missing"], param_count: 2, param_bytes: 12 } } });
  const { tvmjs, books } = fakeTvmjs();
  await assert.rejects(
    SDModel.load({ tvmjs, gpu: gpu([]), manifest: b.manifest, files: source(b) }),
    /the weights lack unet.missing, which unet needs: rebuild the model/,
  );
  assert.ok(books.disposed);
});

test("a build that needs more GPU memory than the budget in every mode is refused before its library", async () => {
  const memory = { weights: { unet: 1000 }, workspace: { unet: 500 } };
  const b = build();
  b.manifest.kernel_paths = PATHS.map((p) => ({ ...p, memory }));
  b.manifest.functions.unet.params = "unet";
  const { tvmjs, books } = fakeTvmjs();
  await assert.rejects(
    SDModel.load({ tvmjs, gpu: gpu(["shader-f16"]), manifest: b.manifest, files: source(b), memoryBudget: 1499 }),
    /this build needs 0\.0 MiB of GPU memory even with sequential offload, over the budget of 0\.0 MiB: raise the budget/,
  );
  assert.deepEqual(b.fetched, ["weights/tensor-cache.json"]);
  assert.deepEqual(books.instantiated, []);
  const model = await SDModel.load({ tvmjs, gpu: gpu(["shader-f16"]), manifest: b.manifest, files: source(b), memoryBudget: 1500 });
  assert.deepEqual(model.memoryMode({ budget: 1500 }), { offload: false, tiles: false, need: 1500 });
});
