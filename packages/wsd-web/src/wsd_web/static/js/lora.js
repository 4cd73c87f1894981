// LoRA at runtime: a LoRA file (diffusers/PEFT or kohya keys) matched to the
// build's weights, merged into them on the GPU, and taken out again.
//
// The build says which weights a LoRA may change (manifest components'
// lora_targets, by the model's module path) and has a merge function (manifest
// lora.function): it adds scale * left @ right to a 2-D weight in place,
// summing in float32 (up @ down, or down.T @ up.T for a transposed weight). Taking a LoRA out re-uploads the touched weights
// from the build's files (the page's verified cache): subtracting the delta
// again would not give the same bits back once the sum was rounded.
//
// Everything about a file is checked before the GPU is touched: a LoRA that
// does not fit the build is refused with one line and the model is unchanged.

import { isSgmName, layersPerBlock, sgmToDiffusers } from "./lora_sgm.js";
import { float32Values, parseSafetensors } from "./safetensors.js";

/** @typedef {import("./safetensors.js").SafeTensor} SafeTensor */
/** @typedef {import("./sd_model.js").Manifest} Manifest */
/** @typedef {import("./weights.js").ModelWeights} ModelWeights */
/** @typedef {import("./tvm_session.js").TVMSession} TVMSession */

/**
 * A weight a LoRA may change (manifest.components[c].lora_targets[path][i]).
 * @typedef {object} LoraTarget
 * @property {string} param  Its tensor-cache name.
 * @property {"rows" | "cols"} layout  rows: [out, in(, kh, kw)] as torch holds it; cols: transposed.
 * @property {number[]} shape  Its shape as torch holds it.
 * @property {string} dtype
 */

/**
 * One changed module: scale * up @ down is added to its weight.
 * @typedef {object} LoraModule
 * @property {string} component
 * @property {string} path  The model's module path.
 * @property {LoraTarget[]} targets
 * @property {Float32Array} down  [rank, in * kh * kw]
 * @property {Float32Array} up  [out, rank]
 * @property {number} rank
 * @property {number} scaling  alpha / rank (1 without an alpha).
 */

/**
 * A LoRA file, read and matched to a build.
 * @typedef {object} Lora
 * @property {string} name
 * @property {LoraModule[]} modules
 * @property {number} bytes  The file's size.
 */

/** The component a diffusers key's prefix names. */
const DIFFUSERS_PREFIX = /^(unet|text_encoder|text_encoder_2)\.(.+)$/;
/** kohya (sd-scripts) keys: lora_unet_<path with _>.lora_down.weight, .lora_up.weight, .alpha
 * (SDXL's UNet paths in SGM's naming: lora_sgm.js). */
const KOHYA = /^(lora_unet|lora_te1|lora_te2|lora_te)_(.+?)\.(lora_down\.weight|lora_up\.weight|alpha)$/;
const KOHYA_COMPONENT = Object.freeze({ lora_unet: "unet", lora_te: "text_encoder", lora_te1: "text_encoder", lora_te2: "text_encoder_2" });
/** The largest rank taken. */
export const MAX_RANK = 1024;

/**
 * @param {string} name
 * @param {string} why
 */
const refuse = (name, why) => new Error(`LoRA ${name}: ${why}`);

/**
 * Which part of which module a key is: [component, path or kohya name, "down" | "up" | "alpha", kohya].
 * @param {string} key
 * @returns {[string, string, "down" | "up" | "alpha", boolean] | null}
 */
function keyPart(key) {
  const kohya = KOHYA.exec(key);
  if (kohya) {
    const part = kohya[3] === "alpha" ? "alpha" : kohya[3].startsWith("lora_down") ? "down" : "up";
    return [KOHYA_COMPONENT[/** @type {keyof KOHYA_COMPONENT} */ (kohya[1])], kohya[2], part, true];
  }
  const prefixed = DIFFUSERS_PREFIX.exec(key);
  const part = prefixed && diffusersPart(prefixed[2].split("."));
  return prefixed && part ? [prefixed[1], part[0], part[1], false] : null;
}

/**
 * A diffusers/PEFT key's module and part, from its dotted parts: <path>.lora_A.weight
 * (or lora_A.<adapter>.weight, lora.down.weight, lora_linear_layer.down.weight), up
 * likewise with lora_B or up, and <path>.alpha.
 * @param {string[]} parts
 * @returns {[string, "down" | "up" | "alpha"] | null}
 */
function diffusersPart(parts) {
  const last = parts.length - 1;
  const path = (/** @type {number} */ end) => parts.slice(0, end).join(".");
  if (parts[last] === "alpha") return [path(last), "alpha"];
  if (parts[last] !== "weight" || last < 2) return null;
  for (const at of [last - 1, last - 2]) {
    if (parts[at] === "lora_A" || parts[at] === "lora_B") return [path(at), parts[at] === "lora_A" ? "down" : "up"];
  }
  const side = parts[last - 1];
  if ((side === "down" || side === "up") && ["lora", "lora_linear_layer"].includes(parts[last - 2])) return [path(last - 2), side];
  return null;
}

/**
 * The scaling diffusers gives a file's modules from its "lora_adapter_metadata"
 * (lora_alpha / r per component), or null where the file has none.
 * @param {Record<string, string>} metadata
 * @param {string} name
 * @returns {Map<string, number> | null}
 */
function metadataScaling(metadata, name) {
  const text = metadata.lora_adapter_metadata;
  if (text === undefined) return null;
  /** @type {Record<string, unknown>} */
  let meta;
  try {
    meta = JSON.parse(text);
  } catch {
    throw refuse(name, "its lora_adapter_metadata is not JSON");
  }
  const scaling = new Map();
  for (const component of ["unet", "text_encoder", "text_encoder_2"]) {
    const r = meta[`${component}.r`];
    const alpha = meta[`${component}.lora_alpha`];
    if (r === undefined && alpha === undefined) continue;
    if (typeof r !== "number" || typeof alpha !== "number" || !(r > 0) || !Number.isFinite(alpha)) {
      throw refuse(name, `its metadata gives ${component} r=${r} and lora_alpha=${alpha}`);
    }
    for (const pattern of ["rank_pattern", "alpha_pattern"]) {
      const given = meta[`${component}.${pattern}`];
      if (given && typeof given === "object" && Object.keys(given).length > 0) {
        throw refuse(name, `per-module ranks or alphas (${pattern}) are not supported`);
      }
    }
    scaling.set(component, meta[`${component}.use_rslora`] ? alpha / Math.sqrt(r) : alpha / r);
  }
  return scaling;
}

/**
 * The module paths of a component's targets by their kohya spelling (dots as underscores).
 * @param {Record<string, LoraTarget[]>} targets
 */
const kohyaNames = (targets) => new Map(Object.keys(targets).map((path) => [path.replaceAll(".", "_"), path]));

/**
 * Check a module's down and up against its weight; the module, or an error.
 * @param {string} name  The LoRA's.
 * @param {string} where  The module, as the file names it.
 * @param {{down?: SafeTensor, up?: SafeTensor, alpha?: SafeTensor}} parts
 * @param {LoraTarget[]} targets
 */
function checkModule(name, where, parts, targets) {
  const { down, up } = parts;
  if (!down || !up) throw refuse(name, `${where} has ${down ? "no up (B)" : "no down (A)"} weight`);
  const weight = targets[0].shape;
  const rank = down.shape[0];
  const inner = weight.slice(1);
  const size = (/** @type {number[]} */ s) => s.reduce((a, b) => a * b, 1);
  const downFits = down.shape.length === weight.length
    ? down.shape.slice(1).every((d, i) => d === inner[i])
    : down.shape.length === 2 && down.shape[1] === size(inner);
  const upFits = up.shape.length >= 2 && up.shape[0] === weight[0] && up.shape[1] === rank && size(up.shape) === weight[0] * rank;
  if (!(rank >= 1 && rank <= MAX_RANK) || !downFits || !upFits) {
    throw refuse(name, `${where}: down ${JSON.stringify(down.shape)} and up ${JSON.stringify(up.shape)} do not fit the weight ` +
      `${JSON.stringify(weight)} (a LoRA for another model?)`);
  }
  let scaling = 1;
  if (parts.alpha) {
    const [alpha] = float32Values(parts.alpha);
    if (parts.alpha.shape.reduce((a, b) => a * b, 1) !== 1 || !Number.isFinite(alpha)) throw refuse(name, `${where} has a bad alpha`);
    scaling = alpha / rank;
  }
  return { rank, scaling, down: float32Values(down), up: float32Values(up) };
}

/**
 * Whether `named` (a module path, or its kohya spelling) is in the text encoder layer
 * after the last one the build has: SDXL conditions on the penultimate layer's states,
 * so its builds leave the last layer out. A LoRA changes it in diffusers too, where it
 * changes nothing the pipeline uses.
 * @param {Manifest} manifest
 * @param {string} component
 * @param {string} named
 */
function unusedLayer(manifest, component, named) {
  if (component === "unet") return false;
  const layer = (/** @type {string} */ path) => Number(/^encoder[._]layers[._](\d+)[._]/.exec(path)?.[1] ?? NaN);
  const present = Object.keys(manifest.components[component]?.lora_targets ?? {}).map(layer).filter(Number.isFinite);
  return present.length > 0 && layer(named) === Math.max(...present) + 1;
}

/**
 * Read a LoRA file and match it to a build's weights.
 * @param {Uint8Array} file
 * @param {string} name  What to call it (the file's name).
 * @param {Manifest} manifest
 * @returns {Lora}
 */
export function readLora(file, name, manifest) {
  if (!manifest.lora) {
    const q = manifest.model.quantize && manifest.model.quantize !== "none" ? ` (its weights are ${manifest.model.quantize})` : "";
    throw refuse(name, `this build cannot take LoRAs${q}: use a build without --quantize (or rebuild it with this wsd-compile)`);
  }
  const { tensors, metadata } = parseSafetensors(file, name);
  /** @type {Map<string, {component: string, path: string | null, named: string, parts: Record<string, SafeTensor>}>} */
  const modules = new Map();
  for (const [key, tensor] of tensors) {
    const found = keyPart(key);
    if (!found) throw refuse(name, `${key} is not a LoRA weight this app reads (diffusers/PEFT lora_A/lora_B or kohya lora_down/lora_up)`);
    const [component, spelled, part, kohya] = found;
    // The build's text encoder paths leave out CLIP's text_model (see wsd_compile.lora).
    const named = spelled.replace(kohya ? /^text_model_/ : /^text_model\./, "");
    const targets = manifest.components[component]?.lora_targets ?? {};
    // kohya's SDXL files name the UNet's modules as SGM's code does (lora_sgm.js).
    const spelledKohya = kohya && component === "unet" && isSgmName(named) ? sgmToDiffusers(named, layersPerBlock(targets)) : named;
    const path = kohya ? (kohyaNames(targets).get(spelledKohya ?? "") ?? null) : Object.hasOwn(targets, named) ? named : null;
    const id = `${component}/${named}`;
    const entry = modules.get(id) ?? { component, path, named, parts: {} };
    entry.parts[part] = tensor;
    modules.set(id, entry);
  }
  if (modules.size === 0) throw refuse(name, "the file holds no tensors");
  for (const [id, m] of modules) {
    if (m.path === null && unusedLayer(manifest, m.component, m.named)) modules.delete(id);
  }
  const unmatched = [...modules.values()].filter((m) => m.path === null);
  if (unmatched.length > 0) {
    const first = unmatched[0];
    throw refuse(name, `${unmatched.length} of its ${modules.size} modules are not weights of this ${manifest.kind} build ` +
      `(first: ${first.component} ${first.named}): a LoRA for another model?`);
  }
  const fromMetadata = metadataScaling(metadata, name);
  return {
    name,
    bytes: file.byteLength,
    modules: [...modules.values()].map(({ component, path, parts }) => {
      const targets = /** @type {Record<string, LoraTarget[]>} */ (manifest.components[component].lora_targets)[/** @type {string} */ (path)];
      const checked = checkModule(name, `${component} ${path}`, parts, targets);
      const scaling = parts.alpha ? checked.scaling : (fromMetadata?.get(component) ?? 1);
      return { component, path: /** @type {string} */ (path), targets, ...checked, scaling };
    }),
  };
}

/**
 * A LoRA in use and its scale.
 * @typedef {object} ActiveLora
 * @property {Lora} lora
 * @property {number} scale
 */

/**
 * A row-major [rows, cols] matrix transposed.
 * @param {Float32Array} values
 * @param {number} rows
 * @param {number} cols
 */
export function transpose(values, rows, cols) {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

/** The most bytes of LoRA tensors on the GPU at once while merging. */
export const MERGE_BATCH_BYTES = 64 * 2 ** 20;

/**
 * Modules in batches of at most MERGE_BATCH_BYTES of float32 down and up (a larger module alone).
 * @param {LoraModule[]} modules
 * @returns {LoraModule[][]}
 */
export function batches(modules) {
  /** @type {LoraModule[][]} */
  const out = [];
  let bytes = Infinity;
  for (const m of modules) {
    const size = 4 * (m.down.length + m.up.length);
    if (bytes + size > MERGE_BATCH_BYTES) {
      out.push([]);
      bytes = 0;
    }
    out[out.length - 1].push(m);
    bytes += size;
  }
  return out;
}

/** The LoRAs merged into a model's weights, kept merged as components come and go. */
export class ModelLoras {
  /**
   * @param {TVMSession} session
   * @param {ModelWeights} weights
   * @param {Manifest} manifest
   */
  constructor(session, weights, manifest) {
    this.session = session;
    this.weights = weights;
    this.manifest = manifest;
    /** @type {ActiveLora[]} */
    this.active = [];
    weights.onAcquired = (components) => this.merge(components);
  }

  /** The tensor-cache names of the weights the active LoRAs change. */
  touched() {
    return new Set(this.active.flatMap(({ lora }) => lora.modules.flatMap((m) => m.targets.map((t) => t.param))));
  }

  /**
   * Use `loras` (in order, each with its scale) instead of those in use: the weights the
   * old ones changed are uploaded again from the build's files, then the new ones merged.
   * @param {ActiveLora[]} loras
   */
  async set(loras) {
    for (const { lora, scale } of loras) {
      if (!Number.isFinite(scale)) throw refuse(lora.name, `the scale ${scale} is not a number`);
    }
    const same = loras.length === this.active.length &&
      loras.every((l, i) => l.lora === this.active[i].lora && l.scale === this.active[i].scale);
    if (same) return;
    const touched = this.touched();
    this.active = [];
    if (touched.size > 0) {
      await this.session.sync();
      await this.weights.reload(touched);
    }
    this.active = loras.filter((l) => l.scale !== 0);
    await this.merge([...this.weights.tuples.keys()]);
  }

  /**
   * Merge the active LoRAs into the weights of `components` (those on the GPU).
   * @param {string[]} components
   */
  async merge(components) {
    const fn = this.manifest.lora?.function;
    if (!fn || this.active.length === 0) return;
    const names = new Map(components.flatMap((c) =>
      (this.manifest.components[c]?.param_names ?? []).map((n, i) => [n, { c, i }])));
    for (const { lora, scale } of this.active) {
      for (const batch of batches(lora.modules.filter((m) => m.targets.some((t) => names.has(t.param))))) {
        await this.session.scoped(async () => {
          for (const m of batch) {
            for (const target of m.targets) {
              const at = names.get(target.param);
              if (!at) continue;
              this.mergeOne(fn, /** @type {import("@mlc-ai/web-runtime").Tensor[]} */ (this.weights.tensors.get(at.c))[at.i], m, target, scale);
            }
          }
          // The batch's tensors are released when the scope ends: after the GPU read them.
          await this.session.sync();
        });
      }
    }
  }

  /**
   * @param {string} fn
   * @param {import("@mlc-ai/web-runtime").Tensor} weight
   * @param {LoraModule} m
   * @param {LoraTarget} target
   * @param {number} scale
   */
  mergeOne(fn, weight, m, target, scale) {
    const out = target.shape[0];
    const inner = target.shape.slice(1).reduce((a, b) => a * b, 1);
    const s = this.session.tensor([1], Float32Array.of(scale * m.scaling));
    if (target.layout === "rows") {
      const [up, down] = [this.session.tensor([out, m.rank], m.up), this.session.tensor([m.rank, inner], m.down)];
      this.session.func(fn)(weight.view([out, inner]), up, down, s);
    } else {
      const left = this.session.tensor([inner, m.rank], transpose(m.down, m.rank, inner));
      const right = this.session.tensor([m.rank, out], transpose(m.up, out, m.rank));
      this.session.func(fn)(weight, left, right, s);
    }
  }

  /** The LoRAs in use, for a generation's parameters. */
  describe() {
    return this.active.map(({ lora, scale }) => ({ name: lora.name, scale }));
  }
}
