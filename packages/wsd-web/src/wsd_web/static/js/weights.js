// A model's weights on the GPU: the shards' tensors uploaded as the kernel
// path takes them (float16 widened where it says so), one weight tuple per
// component, and which components are on the GPU now.
//
// Sequential offload: the text encoders and the VAE decoder are on the GPU
// only while they run. Their weights are uploaded again from the build's
// files (the page's verified cache) when next needed and released after, so
// that the GPU holds the UNet's weights and at most one other component's at
// a time. What it costs is the upload, once per generation for each.
//
// On demand: the VAE encoder (image to image) is neither fetched nor uploaded
// at load; its weights come the first time a generation encodes an image, and
// stay (with offload, they leave again after the encode).

import { widenFloat16 } from "./tensor_cache.js";

/** @typedef {import("./sd_model.js").Manifest} Manifest */
/** @typedef {import("./sd_model.js").KernelPath} KernelPath */
/** @typedef {import("./sd_model.js").FileSource} FileSource */
/** @typedef {import("./tensor_cache.js").TensorCacheIndex} TensorCacheIndex */
/** @typedef {import("./tensor_cache.js").TensorRecord} TensorRecord */
/** @typedef {import("./tensor_cache.js").ShardRecord} ShardRecord */
/** @typedef {import("./tvm_session.js").TVMSession} TVMSession */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */
/** @typedef {import("@mlc-ai/web-runtime").TVMObject} TVMObject */

/** The components sequential offload takes off the GPU between uses (the UNet stays). */
export const OFFLOADABLE = Object.freeze(["text_encoder", "text_encoder_2", "vae_decode"]);

/** The components only some tasks use: fetched and uploaded when first used, never at load. */
export const ON_DEMAND = Object.freeze(["vae_encode"]);

/** @param {string} component */
const leavesWithOffload = (component) => OFFLOADABLE.includes(component) || ON_DEMAND.includes(component);

/**
 * The weight shards of a build, as paths relative to the manifest.
 * @param {Manifest} manifest
 * @param {TensorCacheIndex} index
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
 * @param {TensorCacheIndex} index
 * @returns {Map<string, ShardRecord[]>}
 */
export function shardFiles(manifest, index) {
  /** @type {Map<string, ShardRecord[]>} */
  const files = new Map();
  shardPaths(manifest, index).forEach((path, i) => files.set(path, [...(files.get(path) ?? []), index.shards[i]]));
  return files;
}

/**
 * Upload one weight tensor, widened from float16 to float32 when `widen` says so.
 * @param {TVMSession} session
 * @param {TensorRecord} record
 * @param {Uint8Array} bytes  Its bytes as stored.
 * @param {boolean} widen
 */
function uploadWeight(session, record, bytes, widen) {
  if (!widen || record.dtype !== "float16") return session.upload(record, bytes);
  return session.upload({ ...record, dtype: "float32", nbytes: record.nbytes * 2 }, widenFloat16(bytes));
}

/**
 * The shard files that hold any of the tensors named in `names`.
 * @param {Manifest} manifest
 * @param {TensorCacheIndex} index
 * @param {Set<string>} names
 * @returns {string[]}
 */
export function filesHolding(manifest, index, names) {
  return [...shardFiles(manifest, index)]
    .filter(([, shards]) => shards.some((s) => s.records.some((r) => names.has(r.name))))
    .map(([file]) => file);
}

/**
 * The tensor names of `components`' weights.
 * @param {Manifest} manifest
 * @param {string[]} components
 * @returns {Set<string>}
 */
export function componentTensors(manifest, components) {
  return new Set(components.flatMap((c) => manifest.components[c]?.param_names ?? []));
}

/**
 * Where the weights come from, and how the kernel path takes them.
 * @typedef {object} WeightSource
 * @property {Manifest} manifest
 * @property {TensorCacheIndex} index
 * @property {FileSource} files
 * @property {KernelPath} path
 */

/**
 * Fetch the shards holding the tensors named in `names` and upload those tensors.
 * @param {TVMSession} session
 * @param {WeightSource} source
 * @param {Set<string>} names
 * @param {(path: string) => void} onUpload  Called once a file's tensors are on the GPU.
 * @returns {Promise<Map<string, Tensor>>} By tensor name.
 */
async function uploadTensors(session, { manifest, index, files, path }, names, onUpload) {
  const byPath = shardFiles(manifest, index);
  /** @type {Map<string, Tensor>} */
  const tensors = new Map();
  await files.getAll(filesHolding(manifest, index, names), (file, data) => {
    for (const shard of /** @type {ShardRecord[]} */ (byPath.get(file))) {
      if (data.byteLength !== shard.nbytes) {
        throw new Error(`${file} has ${data.byteLength} bytes, the index says ${shard.nbytes}: reload`);
      }
      for (const record of shard.records.filter((r) => names.has(r.name))) {
        const bytes = data.subarray(record.byteOffset, record.byteOffset + record.nbytes);
        tensors.set(record.name, uploadWeight(session, record, bytes, path.widen_f16_weights));
      }
    }
    onUpload(file);
  });
  return tensors;
}

/** The weights of a model's components on the GPU, uploaded and released by component. */
export class ModelWeights {
  /**
   * @param {TVMSession} session
   * @param {WeightSource | null} source  null: nothing to upload again (every component stays).
   * @param {{offload?: boolean}} [options]  offload: sequential offload (see the module comment).
   */
  constructor(session, source, { offload = false } = {}) {
    this.session = session;
    this.source = source;
    /** @type {Map<string, TVMObject>} The weight tuple of each component on the GPU. */
    this.tuples = new Map();
    /** @type {Map<string, Tensor[]>} */
    this.tensors = new Map();
    this.offload = false;
    /** @type {(components: string[]) => Promise<void>} Runs on components just uploaded (LoRAs merge here). */
    this.onAcquired = async () => {};
    this.setOffload(offload);
  }

  /**
   * Turn sequential offload on (the offloadable components leave the GPU now, with the
   * buffers the VM pooled for earlier calls) or off (they are uploaded when next used, and stay).
   * @param {boolean} on
   */
  setOffload(on) {
    if (on && !this.source) throw new Error("sequential offload needs the build's files, to upload weights again");
    const turnedOn = on && !this.offload;
    this.offload = on;
    if (!turnedOn) return;
    this.release([...this.tuples.keys()]);
    // What the VM pooled while every stage kept its buffers goes too.
    this.session.releasePooledMemory();
  }

  /**
   * The components uploaded at load: all but ON_DEMAND, and with offload all but OFFLOADABLE too.
   * @returns {string[]}
   */
  initialComponents() {
    const all = Object.keys(this.source?.manifest.components ?? {}).filter((c) => !ON_DEMAND.includes(c));
    return this.offload ? all.filter((c) => !OFFLOADABLE.includes(c)) : all;
  }

  /**
   * Put the weights of `components` on the GPU (those there already are left as they are).
   * @param {string[]} components
   * @param {(path: string) => void} [onUpload]
   */
  async acquire(components, onUpload = () => {}) {
    const source = this.source;
    const absent = components.filter((c) => !this.tuples.has(c) && source?.manifest.components[c]);
    if (absent.length === 0 || !source) return;
    const names = componentTensors(source.manifest, absent);
    const uploaded = await uploadTensors(this.session, source, names, onUpload);
    for (const component of absent) {
      const list = source.manifest.components[component].param_names.map((name) => {
        const t = uploaded.get(name);
        if (!t) throw new Error(`the weights lack ${name}, which ${component} needs: rebuild the model`);
        return t;
      });
      this.tensors.set(component, list);
      this.tuples.set(component, this.session.tensorArray(list));
    }
    await this.onAcquired(absent);
  }

  /**
   * Upload the tensors named in `names` again from the build's files, in place of
   * those on the GPU (weights a LoRA changed get their stored values back, bit for bit).
   * @param {Set<string>} names
   */
  async reload(names) {
    const source = this.source;
    if (!source) throw new Error("the build's files are not at hand, to upload weights again");
    const present = new Set([...this.tuples.keys()].flatMap((c) => source.manifest.components[c].param_names).filter((n) => names.has(n)));
    if (present.size === 0) return;
    const uploaded = await uploadTensors(this.session, source, present, () => {});
    for (const [component, list] of this.tensors) {
      const names = source.manifest.components[component].param_names;
      const old = list.filter((_, i) => uploaded.has(names[i]));
      if (old.length === 0) continue;
      const fresh = list.map((t, i) => uploaded.get(names[i]) ?? t);
      this.tuples.get(component)?.dispose();
      this.tensors.set(component, fresh);
      this.tuples.set(component, this.session.tensorArray(fresh));
      this.session.release(old);
    }
  }

  /**
   * With offload, take the weights of `components` off the GPU (a no-op without).
   * Call it once the GPU work that reads them has finished.
   * @param {string[]} components
   */
  release(components) {
    if (!this.offload) return;
    for (const component of components.filter(leavesWithOffload)) {
      this.tuples.get(component)?.dispose();
      this.session.release(this.tensors.get(component) ?? []);
      this.tuples.delete(component);
      this.tensors.delete(component);
    }
  }

  /**
   * The weight tuple of `component`; an error when it is not on the GPU.
   * @param {string} component
   * @returns {TVMObject}
   */
  tuple(component) {
    const found = this.tuples.get(component);
    if (!found) throw new Error(`the weights of ${component} are not on the GPU: acquire them first`);
    return found;
  }

  /** Release every tuple (the session releases the tensors it owns). */
  dispose() {
    for (const t of this.tuples.values()) t.dispose();
    this.tuples.clear();
    this.tensors.clear();
  }
}
