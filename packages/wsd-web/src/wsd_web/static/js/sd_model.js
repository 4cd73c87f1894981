// A compiled Stable Diffusion build loaded onto a WebGPU device: its manifest,
// the model library (.wasm) in a tvmjs session, and every component's weights
// as GPU tensors. Everything comes from the manifest; nothing is inferred from
// file names: which functions each task calls, which pipeline runs it
// (pipelines/registry.js, by kind and task), and which kernel paths (one
// library each, best first) the build offers: the first this device can run
// is loaded, and only its library is fetched.
//
// Ownership: the SDModel owns the session, the weight tensors and the weight
// tuples; dispose() releases all of them.

import { checkBuildStamp, runtimeMismatch } from "./build_stamp.js";
import { combineFunctions } from "./pipelines/scheduling.js";
import { PIPELINES, listing, pipelinesOf } from "./pipelines/registry.js";
import { parseTensorCacheIndex } from "./tensor_cache.js";
import { TVMSession } from "./tvm_session.js";
import { chooseMemoryMode, memoryNeed } from "./memory_plan.js";
import { useTiles } from "./vae_tiling.js";
import { ModelLoras, readLora } from "./lora.js";
import { ModelWeights, ON_DEMAND, componentTensors, filesHolding, shardFiles, shardPaths } from "./weights.js";

export { shardFiles, shardPaths };

/** @typedef {import("./tvm_session.js").TVMJS} TVMJS */
/** @typedef {import("./webgpu_device.js").GPUInfo} GPUInfo */
/** @typedef {import("@mlc-ai/web-runtime").TVMObject} TVMObject */
/** @typedef {import("./tensor_cache.js").TensorCacheIndex} TensorCacheIndex */
/** @typedef {import("./tensor_cache.js").TensorRecord} TensorRecord */

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
 * @property {{source: string, precision: string, quantize?: string}} model
 * @property {{height: number, width: number}} image
 * @property {{shape: number[], scaling_factor: number, vae_scale_factor: number}} latent
 * @property {string} library  The build's own library (that of its shader-f16 or fp32 path).
 * @property {KernelPath[]} [kernel_paths]  The ways to run the build, best first (absent: one, see kernelPaths).
 * @property {{tvm: string}} runtime  The TVM web runtime the library was linked with.
 * @property {string} weights
 * @property {Record<string, FunctionInfo>} functions
 * @property {Record<string, string[]>} tasks  The functions each task's pipeline calls, by task
 *   ("text-to-image"; "image-to-image" and "inpainting" later).
 * @property {Record<string, {param_names: string[], param_count: number, param_bytes: number, precision?: string, quantization?: Quantization,
 *   lora_targets?: Record<string, import("./lora.js").LoraTarget[]>}>} components  lora_targets: the weights a LoRA may change.
 * @property {{function: string}} [lora]  The LoRA merge function (absent: the build takes no LoRAs).
 * @property {SchedulerInfo} scheduler
 * @property {TokenizerEntry} tokenizer
 * @property {TokenizerEntry} [tokenizer_2]  SDXL's second tokenizer.
 * @property {XLConditioning} [conditioning]  SDXL's conditioning rules.
 * @property {{max_buffer_bytes: number}} [limits]  The largest tensor the model binds.
 * @property {import("./vae_tiling.js").VaeTiling} [vae_tiling]  The VAE decoder (and encoder) at a
 *   tile shape (absent: the build decodes whole latents and encodes whole images only).
 * @property {Record<string, {bytes: number, integrity: string}>} files
 */

/**
 * One way to run a build: a model library whose shaders need some WebGPU
 * features, and how it takes the weights.
 * @typedef {object} KernelPath
 * @property {string} name  "shader-f16", "fp32", ...
 * @property {string} library  Its model library (.wasm), relative to the manifest.
 * @property {string} precision  "fp16" or "fp32": what its kernels compute in.
 * @property {string[]} requires  The WebGPU features its shaders need.
 * @property {boolean} widen_f16_weights  Every float16 weight is converted to float32 before upload.
 * @property {number} max_buffer_bytes  The largest buffer it binds (widened weights included;
 *   without the untiled VAE decoder's where the build can decode in tiles).
 * @property {number} [vae_decode_buffer_bytes]  The untiled VAE decoder's largest buffer
 *   (where the build can decode in tiles).
 * @property {number} [vae_encode_buffer_bytes]  The untiled VAE encoder's largest buffer
 *   (where the build can encode in tiles).
 * @property {{weights: Record<string, number>, workspace: Record<string, number>}} [memory]  GPU bytes:
 *   each component's weights as uploaded, each function's planned storage for its intermediates.
 */

/**
 * A kernel path that was not chosen, and why.
 * @typedef {object} PassedOver
 * @property {string} name
 * @property {string} why
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

/** @typedef {{maxStorageBufferBindingSize: number, maxBufferSize: number}} BufferLimits */
/** @typedef {import("./memory_plan.js").MemoryMode} MemoryMode */

/** @type {BufferLimits} */
const NO_LIMITS = Object.freeze({ maxStorageBufferBindingSize: Infinity, maxBufferSize: Infinity });

/**
 * How a component's quantized weights are stored (wsd_artifacts.quantization).
 * @typedef {object} Quantization
 * @property {string} scheme  "int8" or "int4".
 * @property {number} bits
 * @property {number | null} group  Weights per scale along the reduction axis (null: per output channel).
 * @property {string} format  The packing: one of WEIGHT_FORMATS.
 * @property {number} tensors
 * @property {number} unquantized_bytes
 */

/** The weight packings this app uploads (wsd_artifacts.quantization.WEIGHT_FORMAT). */
export const WEIGHT_FORMATS = ["packed-uint32"];
/** The quantizations a manifest's model.quantize may state. */
const QUANTIZE = ["none", "int8", "int4"];
const NEWER = "serve the model with the wsd-web that matches the wsd-compile that built it";

/**
 * Refuse weights stored in a way this app cannot read, before anything is downloaded.
 * @param {Manifest} m
 */
function checkQuantization(m) {
  const stated = m.model?.quantize ?? "none";
  if (!QUANTIZE.includes(stated)) {
    throw new Error(`the manifest's weights are quantized as ${JSON.stringify(stated)}, which this app cannot read ` +
      `(it reads ${listing(QUANTIZE)}): ${NEWER}, or rebuild with wsd-compile --quantize int8, int4 or none`);
  }
  for (const [name, { quantization: q }] of Object.entries(m.components ?? {})) {
    if (!q) continue;
    if (!WEIGHT_FORMATS.includes(q.format)) {
      throw new Error(`the ${name} weights are stored as ${JSON.stringify(q.format)}, which this app cannot read ` +
        `(it reads ${listing(WEIGHT_FORMATS)}): ${NEWER}, or rebuild the model with wsd-compile`);
    }
    if (q.scheme !== stated) {
      throw new Error(`the manifest says the weights are ${stated} but the ${name} weights are ${q.scheme}: rebuild the model with wsd-compile`);
    }
  }
}

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
 * Refuse kernel_paths that are not a list of well-formed paths with distinct names.
 * @param {Manifest} m
 */
function checkKernelPaths(m) {
  if (m.kernel_paths === undefined) return;
  const paths = Array.isArray(m.kernel_paths) ? m.kernel_paths : [];
  const strings = (/** @type {unknown} */ v) => Array.isArray(v) && v.every((x) => typeof x === "string");
  const bad = paths.findIndex((p) => typeof p?.name !== "string" || typeof p.library !== "string" ||
    !strings(p.requires) || typeof p.widen_f16_weights !== "boolean" || !Number.isFinite(p.max_buffer_bytes));
  const names = paths.map((p) => p?.name);
  if (paths.length === 0 || bad >= 0 || new Set(names).size !== names.length) {
    const which = bad >= 0 ? `kernel_paths[${bad}] is malformed` : "kernel_paths is not a list of paths with distinct names";
    throw new Error(`the manifest's ${which}: rebuild the model with wsd-compile`);
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
  checkKernelPaths(m);
  checkQuantization(m);
  return m;
}

/**
 * The kernel paths of a build, best first: its kernel_paths, or for a build
 * without them the one its library makes (shader-f16 for fp16, else fp32).
 * @param {Manifest} manifest
 * @returns {KernelPath[]}
 */
export function kernelPaths(manifest) {
  if (Array.isArray(manifest.kernel_paths) && manifest.kernel_paths.length > 0) return manifest.kernel_paths;
  const fp16 = manifest.model.precision === "fp16";
  return [{
    name: fp16 ? "shader-f16" : "fp32",
    library: manifest.library,
    precision: fp16 ? "fp16" : "fp32",
    requires: fp16 ? ["shader-f16"] : [],
    widen_f16_weights: false,
    max_buffer_bytes: manifest.limits?.max_buffer_bytes ?? 0,
  }];
}

/**
 * The largest weight tensors of a build as stored, in bytes: the float16 ones and the others.
 * @param {TensorCacheIndex} index
 * @returns {{float16: number, other: number}}
 */
export function largestWeights(index) {
  const largest = { float16: 0, other: 0 };
  for (const record of index.shards.flatMap((s) => s.records)) {
    const key = record.dtype === "float16" ? "float16" : "other";
    largest[key] = Math.max(largest[key], record.nbytes);
  }
  return largest;
}

/**
 * What a kernel path needs of the GPU that this device lacks, as sentences; empty when it runs.
 * @param {KernelPath} path
 * @param {{maxStorageBufferBindingSize: number, maxBufferSize: number}} limits
 * @param {Iterable<string>} features
 * @param {number} largestTensorBytes  The largest buffer the path binds (see chooseKernelPath).
 * @param {boolean} [fp32Elsewhere]  The build has an fp32 path (else an fp16 path lacking
 *   shader-f16 says to use an fp32 build).
 * @returns {string[]}
 */
export function missingCapabilities(path, limits, features, largestTensorBytes, fp32Elsewhere = true) {
  const has = new Set(features);
  const problems = path.requires.filter((f) => !has.has(f)).map((f) => (
    !fp32Elsewhere && path.precision === "fp16" && f === "shader-f16"
      ? "this fp16 build needs the WebGPU feature shader-f16, which this adapter lacks (use an fp32 build)"
      : `needs the WebGPU feature ${f}, which this adapter lacks`
  ));
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
 * @typedef {object} DeviceCapabilities
 * @property {Iterable<string>} features  The device's WebGPU features.
 * @property {{maxStorageBufferBindingSize: number, maxBufferSize: number}} limits
 * @property {number | {float16?: number, other?: number}} [largestWeightBytes]  The largest
 *   weight tensors as stored (largestWeights); a number counts as weights that are not float16.
 * @property {string | null} [wanted]  A kernel path's name: that path or an error.
 */

/**
 * The first kernel path of a build this device can run (or the one asked for),
 * and the better ones passed over with why. Its largest buffer is the larger
 * of the path's max_buffer_bytes and the largest weight as the path uploads it
 * (float16 ones doubled where it widens them). Throws one line when no path
 * fits, when `wanted` names no path, or when the device cannot run it.
 * @param {Manifest} manifest
 * @param {DeviceCapabilities} device
 * @returns {{path: KernelPath, passedOver: PassedOver[]}}
 */
export function chooseKernelPath(manifest, { features, limits, largestWeightBytes = 0, wanted = null }) {
  const paths = kernelPaths(manifest);
  const weights = typeof largestWeightBytes === "number"
    ? { float16: 0, other: largestWeightBytes }
    : { float16: largestWeightBytes.float16 ?? 0, other: largestWeightBytes.other ?? 0 };
  const has = [...features];
  const fp32 = paths.some((p) => p.precision === "fp32");
  const problems = (/** @type {KernelPath} */ p) => missingCapabilities(p, limits, has, Math.max(
    p.max_buffer_bytes, weights.other, weights.float16 * (p.widen_f16_weights ? 2 : 1),
  ), fp32);
  if (wanted) {
    const path = paths.find((p) => p.name === wanted);
    if (!path) {
      const names = paths.map((p) => p.name);
      throw new Error(`this build has no kernel path ${JSON.stringify(wanted)}; its kernel paths are ${listing(names)}`);
    }
    const missing = problems(path);
    if (missing.length > 0) throw new Error(`the kernel path ${wanted} cannot run on this GPU: ${missing.join("; ")}`);
    const passedOver = paths.slice(0, paths.indexOf(path)).map((p) => ({ name: p.name, why: `${wanted} was asked for` }));
    return { path, passedOver };
  }
  /** @type {PassedOver[]} */
  const passedOver = [];
  for (const path of paths) {
    const missing = problems(path);
    if (missing.length === 0) return { path, passedOver };
    passedOver.push({ name: path.name, why: missing.join("; ") });
  }
  // A build of one path says why as builds always did; with several, each path says why.
  const reasons = paths.length === 1 ? [passedOver[0].why] : passedOver.map(({ name, why }) => `kernel path ${name}: ${why}`);
  throw new Error(`this GPU cannot run the model: ${reasons.join("; ")}`);
}

/**
 * The kernel path a model runs, for people: "kernel path fp32 (passed over
 * shader-f16: needs the WebGPU feature shader-f16, which this adapter lacks)".
 * @param {KernelPath} path
 * @param {PassedOver[]} passedOver
 * @returns {string}
 */
export function describeKernelPath(path, passedOver) {
  const others = passedOver.map(({ name, why }) => `${name}: ${why}`).join("; ");
  return `kernel path ${path.name}${others ? ` (passed over ${others})` : ""}`;
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
 * @property {string | null} [kernelPath]  Run this kernel path (by name) or fail; default: the
 *   first the device can run.
 * @property {(choice: {path: KernelPath, passedOver: PassedOver[]}) => void | Promise<void>} [onKernelPath]
 *   Called (and awaited) once the kernel path is chosen, before its library is fetched.
 * @property {(path: string) => void} [onUpload]  Called once a file's tensors are on the GPU.
 * @property {boolean} [offload]  Sequential offload (weights.js): the text encoders' and the VAE
 *   decoder's weights are on the GPU only while they run.
 * @property {number} [memoryBudget]  GPU bytes the model may use: a build that needs more in every
 *   memory mode (memory_plan.js) is refused before its library and weights are fetched.
 */

export class SDModel {
  /**
   * @param {Manifest} manifest
   * @param {TVMSession} session
   * @param {ModelWeights} weights  On the GPU, by component.
   * @param {{kernelPath?: KernelPath, passedOver?: PassedOver[], limits?: BufferLimits}} [choice]
   *   The kernel path the session's library is (default: the build's first), the better
   *   ones passed over, and the device's buffer limits (default: none).
   */
  constructor(manifest, session, weights, { kernelPath = kernelPaths(manifest)[0], passedOver = [], limits = NO_LIMITS } = {}) {
    this.manifest = manifest;
    this.session = session;
    this.weights = weights;
    this.kernelPath = kernelPath;
    this.passedOver = passedOver;
    this.limits = limits;
    /** The LoRAs merged into the weights (lora.js). */
    this.loras = new ModelLoras(session, weights, manifest);
  }

  /**
   * Read a LoRA file and match it to this build (nothing changes yet); an error
   * with one line that says what is wrong when it does not fit.
   * @param {Uint8Array} file
   * @param {string} name
   */
  readLora(file, name) {
    return readLora(file, name, this.manifest);
  }

  /**
   * Whether the VAE runs in tiles: "on" and "off" as said, "auto" where the device
   * cannot bind the untiled VAE decoder's largest buffer or, for a generation that
   * encodes an image (`encode`), the untiled encoder's (vae_tiling.js).
   * @param {"auto" | "on" | "off"} mode
   * @param {boolean} [encode]
   * @returns {boolean}
   */
  decodesInTiles(mode, encode = false) {
    const path = this.kernelPath;
    const encodeBytes = encode ? path.vae_encode_buffer_bytes ?? 0 : 0;
    return useTiles(mode, this.manifest.vae_tiling, path.vae_decode_buffer_bytes, this.limits, encodeBytes);
  }

  /**
   * A generation's memory modes: the VAE in tiles as `vaeTiling` says ("auto": where the
   * device's buffer limits need it; tiles decode, and encode where the build can), sequential offload as `offload` says (undefined:
   * as it is), and within a `budget` (bytes) the first of what they leave open that
   * fits (memory_plan.js; one line of error when nothing does). `need`: the bytes the
   * modes need, by the build's own reckoning (null for a build that does not state it).
   * `encode`: the generation encodes an image (image to image), whose encoder then counts.
   * @param {{vaeTiling?: "auto" | "on" | "off", offload?: boolean, budget?: number, encode?: boolean}} wanted
   * @returns {MemoryMode & {need: number | null}}
   */
  memoryMode({ vaeTiling = "auto", offload, budget = Infinity, encode = false }) {
    const tiles = this.decodesInTiles(vaeTiling, encode);
    if (!(budget < Infinity)) {
      const mode = { tiles, offload: offload ?? this.weights.offload };
      return { ...mode, need: memoryNeed(this.manifest, this.kernelPath, mode, { encode }) };
    }
    return chooseMemoryMode(this.manifest, this.kernelPath, budget, {
      offload: offload ?? null, tiles: vaeTiling === "auto" && !tiles ? null : tiles, encode,
    });
  }

  /**
   * Fetch a build's weight index, choose the kernel path the GPU can run, fetch
   * that path's library (and no other) and the weights, and put them on the GPU.
   * What the GPU cannot run is refused before the library and the weights are fetched.
   * @param {LoadOptions} options
   * @returns {Promise<SDModel>}
   */
  static async load({
    tvmjs, gpu, manifest, files, kernelPath = null, onKernelPath = () => {}, onUpload = () => {}, offload = false, memoryBudget = Infinity,
  }) {
    const text = (/** @type {Uint8Array} */ b) => new TextDecoder().decode(b);
    const index = parseTensorCacheIndex(JSON.parse(text(await files.get(manifest.weights))));
    const { path, passedOver } = chooseKernelPath(manifest, {
      features: gpu.features, limits: gpu.device.limits, largestWeightBytes: largestWeights(index), wanted: kernelPath,
    });
    if (memoryBudget < Infinity) chooseMemoryMode(manifest, path, memoryBudget);
    await onKernelPath({ path, passedOver });
    const wasm = await files.get(path.library);
    checkBuildStamp(path.library, wasm, manifest);
    const session = await TVMSession.create(tvmjs, wasm.slice().buffer, gpu.device);
    try {
      const weights = new ModelWeights(session, { manifest, index, files, path }, { offload });
      const initial = weights.initialComponents();
      await weights.acquire(initial, onUpload);
      // With offload the other components' files are fetched now too (cached for
      // their uploads), so a loaded model runs offline; those only a task needs
      // (ON_DEMAND) come when it first runs.
      const uploaded = new Set(filesHolding(manifest, index, componentTensors(manifest, initial)));
      const everyTask = Object.keys(manifest.components).filter((c) => !ON_DEMAND.includes(c));
      const rest = filesHolding(manifest, index, componentTensors(manifest, everyTask)).filter((f) => !uploaded.has(f));
      if (rest.length > 0) await files.getAll(rest, (file) => onUpload(file));
      return new SDModel(manifest, session, weights, { kernelPath: path, passedOver, limits: gpu.device.limits });
    } catch (e) {
      session.dispose();
      throw e;
    }
  }

  /**
   * Load a build whose files `get` reads as they are (no checksums, no cache): Node, tests.
   * @param {{tvmjs: TVMJS, gpu: GPUInfo, get: (path: string) => Promise<Uint8Array>, kernelPath?: string | null}} options
   *   kernelPath: as LoadOptions's.
   * @returns {Promise<SDModel>}
   */
  static async open({ tvmjs, gpu, get, kernelPath = null }) {
    const manifest = parseManifest(JSON.parse(new TextDecoder().decode(await get("manifest.json"))));
    return SDModel.load({ tvmjs, gpu, manifest, files: sequentialSource(get), kernelPath });
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
    return info.params ? fn(...args, this.weights.tuple(info.params)) : fn(...args);
  }

  /**
   * The components whose weights the functions in `names` take.
   * @param {ReadonlyArray<string>} names
   * @returns {string[]}
   */
  componentsOf(names) {
    return [...new Set(names.map((n) => this.manifest.functions[n]?.params).filter((c) => typeof c === "string"))];
  }

  /**
   * Run `run` with the weights of the functions in `names` on the GPU: with
   * sequential offload they are uploaded first, and once the GPU has finished
   * what `run` submitted they are released with the buffers the VM pooled for
   * the stage's activations; without, `run` just runs.
   * @template R
   * @param {ReadonlyArray<string>} names  Function names.
   * @param {() => Promise<R>} run
   * @returns {Promise<R>}
   */
  async withWeights(names, run) {
    const components = this.componentsOf(names);
    await this.weights.acquire(components);
    try {
      return await run();
    } finally {
      if (this.weights.offload) {
        await this.session.sync();
        this.weights.release(components);
        this.session.releasePooledMemory();
      }
    }
  }

  /** Release the weights, the library and the runtime. */
  dispose() {
    this.weights.dispose();
    this.session.dispose();
  }
}
