// How long taking a LoRA in and out of a loaded build takes, on WebGPU in Node
// through Dawn, with the page's modules (lora.js, the build's merge functions).
// Prints one JSON object: the LoRA file's size, rank and modules, and the
// median (and every sample) of reading it ("readMs": parse and match),
// merging it ("mergeMs": set, GPU work finished) and taking it out again
// ("restoreMs": the touched weights uploaded again from the build's files).
//   node lora_bench.mjs DIR [OPTIONS_JSON]
// OPTIONS_JSON: {"rank": 32, "repeats": 5, "randomWeights": null | SEED, "kernelPath": null | NAME}
// The LoRA is made here: a diffusers/PEFT file (float16 lora_A/lora_B, random
// values) for every attention projection of the UNet (to_q, to_k, to_v,
// to_out.0) and the text encoders (q_proj, k_proj, v_proj, out_proj) the
// build's lora_targets list: what diffusers' LoRA training changes.
// "randomWeights": SEED, the build's weights made from a seed (DIR needs no shards).
import { resolve } from "node:path";
import { globals } from "webgpu";

import { SDModel, parseManifest, sequentialSource } from "../static/js/sd_model.js";
import { requestGPU } from "../static/js/webgpu_device.js";
import { createDawn } from "./dawn.mjs";
import { buildSource, vendoredModules } from "./load_build.mjs";
import { runnerArgsOrExit } from "./runner_args.mjs";

const args = runnerArgsOrExit("lora_bench.mjs");
const { rank = 32, repeats = 5, randomWeights = null, kernelPath = null } = args.options;
const ATTENTION = /\.(to_q|to_k|to_v|to_out\.0|q_proj|k_proj|v_proj|out_proj)$/;

/**
 * A PEFT LoRA file of `rank` for the build's attention projections.
 * @param {import("../static/js/sd_model.js").Manifest} manifest
 * @returns {{file: Uint8Array, modules: number}}
 */
function makeLora(manifest) {
  /** @type {Record<string, unknown>} */
  const header = { __metadata__: { format: "pt" } };
  /** @type {Uint16Array[]} */
  const chunks = [];
  let offset = 0;
  let state = 12345;
  const half = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    // Small halves of either sign (exponent 2^-8 .. 2^-5).
    return ((state >>> 31) << 15) | ((7 + ((state >>> 8) & 3)) << 10) | (state & 0x3ff);
  };
  const add = (/** @type {string} */ name, /** @type {number[]} */ shape) => {
    const values = new Uint16Array(shape.reduce((a, b) => a * b, 1)).map(half);
    header[name] = { dtype: "F16", shape, data_offsets: [offset, offset + values.byteLength] };
    chunks.push(values);
    offset += values.byteLength;
  };
  let modules = 0;
  for (const [component, { lora_targets: targets = {} }] of Object.entries(manifest.components)) {
    for (const [path, [target]] of Object.entries(targets).filter(([p]) => ATTENTION.test(p))) {
      add(`${component}.${path}.lora_A.weight`, [rank, target.shape.slice(1).reduce((a, b) => a * b, 1)]);
      add(`${component}.${path}.lora_B.weight`, [target.shape[0], rank]);
      modules += 1;
    }
  }
  const text = new TextEncoder().encode(JSON.stringify(header));
  const file = new Uint8Array(8 + text.byteLength + offset);
  new DataView(file.buffer).setUint32(0, text.byteLength, true);
  file.set(text, 8);
  let at = 8 + text.byteLength;
  for (const c of chunks) {
    file.set(new Uint8Array(c.buffer), at);
    at += c.byteLength;
  }
  return { file, modules };
}

/** @param {number[]} samples */
function median(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

Object.assign(globalThis, globals);
const { tvmjs } = vendoredModules();
const dawn = createDawn();
const gpu = await requestGPU(dawn.gpu);
const get = await buildSource(resolve(args.dir), { randomWeights, keep: true });
let status = 0;
/** @type {SDModel | null} */
let model = null;
try {
  const manifest = parseManifest(JSON.parse(new TextDecoder().decode(await get("manifest.json"))));
  const loaded = await SDModel.load({ tvmjs, gpu, manifest, files: sequentialSource(get), kernelPath });
  model = loaded;
  const { file, modules } = makeLora(manifest);
  /** @type {{readMs: number[], mergeMs: number[], restoreMs: number[]}} */
  const times = { readMs: [], mergeMs: [], restoreMs: [] };
  const timed = async (/** @type {number[]} */ into, /** @type {() => Promise<unknown>} */ run) => {
    const start = performance.now();
    const out = await run();
    await loaded.session.sync();
    into.push(performance.now() - start);
    return out;
  };
  for (let i = 0; i < repeats; i++) {
    const lora = /** @type {import("../static/js/lora.js").Lora} */ (
      await timed(times.readMs, async () => loaded.readLora(file, "bench.safetensors")));
    await timed(times.mergeMs, () => loaded.loras.set([{ lora, scale: 1 }]));
    await timed(times.restoreMs, () => loaded.loras.set([]));
  }
  const report = {
    adapter: gpu.adapter, features: gpu.features, kernelPath: loaded.kernelPath.name,
    width: manifest.image.width, height: manifest.image.height, precision: manifest.model.precision,
    rank, modules, fileBytes: file.byteLength, repeats,
    ...Object.fromEntries(Object.entries(times).map(([k, v]) => [k, { median: median(v), samples: v }])),
  };
  await new Promise((done) => process.stdout.write(`${JSON.stringify(report)}\n`, done));
} catch (error) {
  process.stderr.write(`lora_bench failed: ${error instanceof Error ? error.stack : error}\n`);
  status = 1;
} finally {
  model?.dispose();
  gpu.device.destroy();
}
process.exit(status);
