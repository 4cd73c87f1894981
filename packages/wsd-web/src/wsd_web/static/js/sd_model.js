// A compiled Stable Diffusion build loaded onto a WebGPU device: its manifest,
// the model library (.wasm) in a tvmjs session, and every component's weights
// as GPU tensors. Everything comes from the manifest; nothing is inferred from
// file names: which functions each task calls, and which pipeline runs it
// (pipelines/registry.js, by kind and task).
//
// Ownership: the SDModel owns the session, the weight tensors and the weight
// tuples; dispose() releases all of them.

import { checkBuildStamp, runtimeMismatch } from "./build_stamp.js";
import { combineFunctions } from "./pipelines/scheduling.js";
import { PIPELINES, listing, pipelinesOf } from "./pipelines/registry.js";
import { parseTensorCacheIndex } from "./tensor_cache.js";
import { TVMSession } from "./tvm_session.js";

/** @typedef {import("./tvm_session.js").TVMJS} TVMJS */
/** @typedef {import("./webgpu_device.js").GPUInfo} GPUInfo */
/** @typedef {import("@mlc-ai/web-runtime").TVMObject} TVMObject */

/**
 * @typedef {object} TensorInfo
 * @property {string} name
 * @property {number[]} shape
 * @property {string} dtype
 */

/**
 * @typedef {object} FunctionInfo
 * @property {TensorInfo[]} inputs
 * @property {TensorInfo[]} outputs
 * @property {string | null} params  The component whose weights the function takes.
 */

/**
 * The parts of manifest.json (written by wsd-artifacts) that the app reads.
 * @typedef {object} Manifest
 * @property {number} version
 * @property {string} kind
 * @property {string} build_id
 * @property {{source: string, precision: string}} model
 * @property {{height: number, width: number}} image
 * @property {{shape: number[], scaling_factor: number, vae_scale_factor: number}} latent
 * @property {string} library
 * @property {{tvm: string}} runtime  The TVM web runtime the library was linked with.
 * @property {string} weights
 * @property {Record<string, FunctionInfo>} functions
 * @property {Record<string, string[]>} tasks  The functions each task's pipeline calls, by task
 *   ("text-to-image"; "image-to-image" and "inpainting" later).
 * @property {Record<string, {param_names: string[], param_count: number, param_bytes: number, precision?: string}>} components
 * @property {SchedulerInfo} scheduler
 * @property {TokenizerEntry} tokenizer
 * @property {TokenizerEntry} [tokenizer_2]  SDXL's second tokenizer.
 * @property {XLConditioning} [conditioning]  SDXL's conditioning rules.
 * @property {{max_buffer_bytes: number}} [limits]  The largest tensor the model binds.
 * @property {Record<string, {bytes: number, integrity: string}>} files
 */

/**
 * @typedef {object} TokenizerEntry
 * @property {string} file
 * @property {number} max_length
 * @property {number} bos_token_id
 * @property {number} eos_token_id
 * @property {number} pad_token_id
 */

/**
 * @typedef {object} SchedulerInfo
 * @property {string} class_name  The diffusers scheduler class the model was trained with.
 * @property {Record<string, unknown>} config  Its diffusers config.
 * @property {number} max_terms  The library has combine1 .. combine<max_terms>.
 */

/**
 * @typedef {object} XLConditioning
 * @property {boolean} force_zeros_for_empty_prompt
 * @property {"argmax" | "eos"} pooled_token
 * @property {number} pooled_dim
 * @property {number} time_ids_dim
 * @property {boolean} vae_force_upcast
 */

/** The manifest version this app reads. */
export const MANIFEST_VERSION = 3;

/**
 * Refuse a manifest of another version, saying which side to update.
 * @param {number} version
 */
function checkVersion(version) {
  if (version > MANIFEST_VERSION) {
    throw new Error(
      `manifest version ${version} is newer than this app reads (${MANIFEST_VERSION}): ` +
      "serve the model with the wsd-web that matches the wsd-compile that built it",
    );
  }
  if (version < MANIFEST_VERSION) {
    throw new Error(
      `manifest version ${version} was written by an older wsd-compile; this app reads version ${MANIFEST_VERSION}: ` +
      "rebuild the model with the current wsd-compile",
    );
  }
}

/**
 * Refuse a manifest whose kind has no pipeline here, or that lacks a field its pipelines read.
 * @param {Manifest} m
 */
function checkKind(m) {
  if (!Object.hasOwn(PIPELINES, m.kind)) {
    throw new Error(`this app runs ${listing(Object.keys(PIPELINES))} builds; the manifest says ${JSON.stringify(m.kind)}`);
  }
  const fields = [...new Set(pipelinesOf(m.kind).flatMap((p) => p.manifestFields))];
  if (fields.some((f) => !m[f])) {
    throw new Error(`this ${m.kind} manifest lacks ${fields.join(" or ")}: rebuild the model with wsd-compile ${m.kind}`);
  }
}

/**
 * Refuse a manifest without the functions its tasks and its scheduler updates call.
 * @param {Manifest} m
 */
function checkFunctions(m) {
  if (typeof m.tasks !== "object" || m.tasks === null || !Number.isInteger(m.scheduler?.max_terms)) {
    throw new Error("the manifest lacks tasks or scheduler.max_terms: rebuild the model with wsd-compile");
  }
  const needed = new Set([...Object.values(m.tasks).flat(), ...combineFunctions(m.scheduler.max_terms)]);
  const missing = [...needed].filter((f) => !m.functions?.[f]);
  if (missing.length > 0) {
    throw new Error(`the manifest lacks the functions ${missing.join(", ")}: rebuild the model with wsd-compile`);
  }
}

/**
 * Check a parsed manifest.json for what the app relies on.
 * @param {unknown} json
 * @returns {Manifest}
 */
export function parseManifest(json) {
  const m = /** @type {Manifest} */ (json);
  if (typeof m !== "object" || m === null || typeof m.version !== "number") {
    throw new Error("manifest.json is not a wsd manifest: rebuild the model with wsd-compile");
  }
  checkVersion(m.version);
  checkKind(m);
  const runtime = runtimeMismatch(m.runtime);
  if (runtime) throw new Error(runtime);
  checkFunctions(m);
  return m;
}

/**
 * What the model needs of the GPU that this device lacks, as sentences; empty when it fits.
 * @param {Manifest} manifest
 * @param {{maxStorageBufferBindingSize: number, maxBufferSize: number}} limits
 * @param {Iterable<string>} features
 * @param {number} largestTensorBytes
 * @returns {string[]}
 */
export function missingCapabilities(manifest, limits, features, largestTensorBytes) {
  const problems = [];
  if (manifest.model.precision === "fp16" && ![...features].includes("shader-f16")) {
    problems.push("this fp16 build needs the WebGPU feature shader-f16, which this adapter lacks (use an fp32 build)");
  }
  for (const limit of /** @type {const} */ (["maxStorageBufferBindingSize", "maxBufferSize"])) {
    if (limits[limit] < largestTensorBytes) {
      problems.push(
        `its largest tensor needs ${limit} >= ${largestTensorBytes} bytes (${(largestTensorBytes / 2 ** 20).toFixed(0)} MiB); ` +
          `this adapter allows ${limits[limit]} (${(limits[limit] / 2 ** 20).toFixed(0)} MiB)`,
      );
    }
  }
  return problems;
}

/**
 * Where a build's files come from: the page's verifying, caching downloader
 * (delivery.js) or, in Node, the model directory on disk.
 * @typedef {object} FileSource
 * @property {(path: string) => Promise<Uint8Array>} get  One file, by its path in the manifest.
 * @property {(paths: string[], consume: (path: string, bytes: Uint8Array) => void | Promise<void>) => Promise<void>} getAll
 *   Many files, each handed to consume as it arrives (any order).
 */

/**
 * A FileSource over a plain `get` (one file at a time, in order).
 * @param {(path: string) => Promise<Uint8Array>} get
 * @returns {FileSource}
 */
export function sequentialSource(get) {
  return {
    get,
    async getAll(paths, consume) {
      for (const path of paths) await consume(path, await get(path));
    },
  };
}

/**
 * @typedef {object} LoadOptions
 * @property {TVMJS} tvmjs
 * @property {GPUInfo} gpu
 * @property {Manifest} manifest  Parsed with parseManifest.
 * @property {FileSource} files
 * @property {(path: string) => void} [onUpload]  Called once a file's tensors are on the GPU.
 */

/**
 * The weight shards of a build, as paths relative to the manifest.
 * @param {Manifest} manifest
 * @param {import("./tensor_cache.js").TensorCacheIndex} index
 */
export function shardPaths(manifest, index) {
  const dir = manifest.weights.slice(0, manifest.weights.lastIndexOf("/") + 1);
  return index.shards.map((s) => dir + s.dataPath);
}

/**
 * Each distinct shard file with the index entries stored in it. Shards are
 * named by content, so two entries with the same bytes (e.g. two shards of
 * zero-initialised biases) share one file: it is fetched once and the tensors
 * of every entry that names it are uploaded from it.
 * @param {Manifest} manifest
 * @param {import("./tensor_cache.js").TensorCacheIndex} index
 * @returns {Map<string, import("./tensor_cache.js").ShardRecord[]>}
 */
export function shardFiles(manifest, index) {
  /** @type {Map<string, import("./tensor_cache.js").ShardRecord[]>} */
  const files = new Map();
  shardPaths(manifest, index).forEach((path, i) => files.set(path, [...(files.get(path) ?? []), index.shards[i]]));
  return files;
}

export class SDModel {
  /**
   * @param {Manifest} manifest
   * @param {TVMSession} session
   * @param {Map<string, TVMObject>} params  Weight tuples by component.
   */
  constructor(manifest, session, params) {
    this.manifest = manifest;
    this.session = session;
    this.params = params;
  }

  /**
   * Fetch a build's library and weights, and put them on the GPU. What the GPU
   * cannot hold is refused before the weights are fetched.
   * @param {LoadOptions} options
   * @returns {Promise<SDModel>}
   */
  static async load({ tvmjs, gpu, manifest, files, onUpload = () => {} }) {
    const text = (/** @type {Uint8Array} */ b) => new TextDecoder().decode(b);
    const index = parseTensorCacheIndex(JSON.parse(text(await files.get(manifest.weights))));
    const largest = Math.max(
      manifest.limits?.max_buffer_bytes ?? 0, ...index.shards.flatMap((s) => s.records.map((r) => r.nbytes)),
    );
    const problems = missingCapabilities(manifest, gpu.device.limits, gpu.features, largest);
    if (problems.length > 0) {
      throw new Error(`this GPU cannot run the model: ${problems.join("; ")}`);
    }
    const wasm = await files.get(manifest.library);
    checkBuildStamp(manifest.library, wasm, manifest);
    const session = await TVMSession.create(tvmjs, wasm.slice().buffer, gpu.device);
    try {
      const byPath = shardFiles(manifest, index);
      /** @type {Map<string, import("@mlc-ai/web-runtime").Tensor>} */
      const tensors = new Map();
      await files.getAll([...byPath.keys()], (path, data) => {
        for (const shard of /** @type {import("./tensor_cache.js").ShardRecord[]} */ (byPath.get(path))) {
          if (data.byteLength !== shard.nbytes) {
            throw new Error(`${path} has ${data.byteLength} bytes, the index says ${shard.nbytes}: reload`);
          }
          for (const record of shard.records) {
            tensors.set(record.name, session.upload(record, data.subarray(record.byteOffset, record.byteOffset + record.nbytes)));
          }
        }
        onUpload(path);
      });
      /** @type {Map<string, TVMObject>} */
      const params = new Map();
      for (const [component, { param_names: names }] of Object.entries(manifest.components)) {
        const list = names.map((name) => {
          const t = tensors.get(name);
          if (!t) throw new Error(`the weights lack ${name}, which ${component} needs: rebuild the model`);
          return t;
        });
        params.set(component, session.tensorArray(list));
      }
      return new SDModel(manifest, session, params);
    } catch (e) {
      session.dispose();
      throw e;
    }
  }

  /**
   * Load a build whose files `get` reads as they are (no checksums, no cache): Node, tests.
   * @param {{tvmjs: TVMJS, gpu: GPUInfo, get: (path: string) => Promise<Uint8Array>}} options
   * @returns {Promise<SDModel>}
   */
  static async open({ tvmjs, gpu, get }) {
    const manifest = parseManifest(JSON.parse(new TextDecoder().decode(await get("manifest.json"))));
    return SDModel.load({ tvmjs, gpu, manifest, files: sequentialSource(get) });
  }

  /**
   * Call a compiled function by name; a model function gets its weights appended.
   * Results live in the caller's tvm scope.
   * @param {string} name
   * @param {...any} args
   * @returns {any}
   */
  call(name, ...args) {
    const info = this.manifest.functions[name];
    if (!info) throw new Error(`the model has no function ${name}`);
    const fn = this.session.func(name);
    return info.params ? fn(...args, this.params.get(info.params)) : fn(...args);
  }

  /** Release the weights, the library and the runtime. */
  dispose() {
    for (const p of this.params.values()) p.dispose();
    this.params.clear();
    this.session.dispose();
  }
}
