// A compiled Stable Diffusion build loaded onto a WebGPU device: its manifest,
// the model library (.wasm) in a tvmjs session, and every component's weights
// as GPU tensors. Everything comes from the manifest; nothing is inferred from
// file names.
//
// Ownership: the SDModel owns the session, the weight tensors and the weight
// tuples; dispose() releases all of them.

import { checkBuildStamp, runtimeMismatch } from "./build_stamp.js";
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
 * @property {Record<string, {param_names: string[], param_count: number, param_bytes: number, precision?: string}>} components
 * @property {{class_name: string, config: Record<string, unknown>}} scheduler
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
 * @typedef {object} XLConditioning
 * @property {boolean} force_zeros_for_empty_prompt
 * @property {"argmax" | "eos"} pooled_token
 * @property {number} pooled_dim
 * @property {number} time_ids_dim
 * @property {boolean} vae_force_upcast
 */

/** The manifest versions this app reads. */
export const MANIFEST_VERSION = 2;

/** Functions an SD 1.5 build must have. */
export const SD15_FUNCTIONS = Object.freeze([
  "text_encoder", "cfg_embeddings", "unet_input", "unet", "cfg_combine",
  "combine1", "combine2", "combine3", "combine4", "clamp", "vae_decode", "image_to_rgba",
]);

/** Functions an SDXL build must have. */
export const SDXL_FUNCTIONS = Object.freeze([...SD15_FUNCTIONS, "text_encoder_2", "text_concat", "cfg_text_embeds"]);

/** The functions each model kind needs. */
const KIND_FUNCTIONS = Object.freeze({ sd15: SD15_FUNCTIONS, sdxl: SDXL_FUNCTIONS });

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
  if (m.version > MANIFEST_VERSION) {
    throw new Error(
      `manifest version ${m.version} is newer than this app reads (${MANIFEST_VERSION}): ` +
      "serve the model with the wsd-web that matches the wsd-compile that built it",
    );
  }
  if (m.version < MANIFEST_VERSION) {
    throw new Error(
      `manifest version ${m.version} was written by an older wsd-compile; this app reads version ${MANIFEST_VERSION}: ` +
      "rebuild the model with the current wsd-compile",
    );
  }
  const needed = KIND_FUNCTIONS[/** @type {keyof typeof KIND_FUNCTIONS} */ (m.kind)];
  if (!needed) {
    throw new Error(`this app runs sd15 and sdxl builds; the manifest says ${JSON.stringify(m.kind)}`);
  }
  if (m.kind === "sdxl" && (!m.tokenizer_2 || !m.conditioning)) {
    throw new Error("this sdxl manifest lacks tokenizer_2 or conditioning: rebuild the model with wsd-compile sdxl");
  }
  const runtime = runtimeMismatch(m.runtime);
  if (runtime) throw new Error(runtime);
  const missing = needed.filter((f) => !m.functions?.[f]);
  if (missing.length > 0) {
    throw new Error(`the manifest lacks the functions ${missing.join(", ")}: rebuild the model with wsd-compile`);
  }
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
        params.set(component, session.persist(() => session.tvm.makeTVMArray(list)));
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
