// What the Node runners that load a build share (bench.mjs, soak.mjs): the
// vendored tvmjs and tokenizers bundles, and the build's files, read from disk
// or, for a build whose weight shards were not shipped, with every shard made
// of seeded pseudo-random values (a benchmark machine need not receive GBs).
import { createRequire } from "node:module";

import { parseManifest } from "../static/js/sd_model.js";
import { parseTensorCacheIndex } from "../static/js/tensor_cache.js";
import { buildFiles } from "./files.mjs";

const require = createRequire(import.meta.url);

/**
 * The vendored UMD bundles the page uses, loaded as CommonJS (see scripts/vendor.mjs);
 * a computed path keeps tsc from type-checking third-party code.
 * @returns {{tvmjs: any, tokenizers: any}}
 */
export function vendoredModules() {
  // eslint-disable-next-line security/detect-non-literal-require -- one of our two vendored bundles, by name
  const vendored = (/** @type {string} */ name) => require(`../static/vendor/${name}/index.js`);
  return { tvmjs: vendored("tvmjs"), tokenizers: vendored("tokenizers") };
}

/**
 * Bytes of seeded pseudo-random weights for a shard: floats uniform in
 * [-0.05, 0.05) (float32 or float16 records), random words for uint32 records
 * (quantized weights: every level equally likely), zeros for other integers.
 * @param {import("../static/js/tensor_cache.js").ShardRecord} shard
 * @param {number} seed
 */
export function randomShard(shard, seed) {
  const bytes = new Uint8Array(shard.nbytes);
  let state = (seed ^ Math.imul(shard.nbytes, 0x9e3779b1) ^ 0x6d2b79f5) >>> 0 || 1;
  const next = () => {
    // xorshift32: fast and good enough for weights whose values do not matter.
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return state / 4294967296 - 0.5;
  };
  for (const record of shard.records) {
    if (record.dtype === "float32") {
      const values = new Float32Array(bytes.buffer, record.byteOffset, record.nbytes / 4);
      for (let i = 0; i < values.length; i++) values[i] = next() * 0.1;
    } else if (record.dtype === "uint32") {
      const words = new Uint32Array(bytes.buffer, record.byteOffset, record.nbytes / 4);
      for (let i = 0; i < words.length; i++) words[i] = Math.floor((next() + 0.5) * 4294967296) >>> 0;
    } else if (record.dtype === "float16") {
      const values = new Uint16Array(bytes.buffer, record.byteOffset, record.nbytes / 2);
      // |x| < 0.05 as half: sign, exponent 2^-5 .. 2^-9, random mantissa.
      for (let i = 0; i < values.length; i++) {
        const r = next() + 0.5;
        values[i] = ((r < 0.5 ? 0x8000 : 0) | ((10 + Math.floor(r * 8) % 5) << 10) | ((r * 1e6) & 0x3ff)) & 0xffff;
      }
    }
  }
  return bytes;
}

/**
 * A reader of the build's files: from disk, or with `randomWeights` (a seed, null: none)
 * every shard of seeded random bytes.
 * @param {string} root  The build directory.
 * @param {{randomWeights?: number | null, keep?: boolean}} [options]  keep: make each shard
 *   once and keep it (weights fetched again every generation, as with offload, then cost
 *   their upload, as a page's would, not making them).
 * @returns {Promise<(path: string) => Promise<Uint8Array>>}
 */
export async function buildSource(root, { randomWeights = null, keep = false } = {}) {
  const disk = buildFiles(root);
  if (randomWeights === null) return disk;
  const manifest = parseManifest(JSON.parse(new TextDecoder().decode(await disk("manifest.json"))));
  const index = parseTensorCacheIndex(JSON.parse(new TextDecoder().decode(await disk(manifest.weights))));
  const prefix = manifest.weights.slice(0, manifest.weights.lastIndexOf("/") + 1);
  const shards = new Map(index.shards.map((s, i) => [prefix + s.dataPath, { shard: s, i }]));
  /** @type {Map<string, Uint8Array>} */
  const made = new Map();
  return async (/** @type {string} */ path) => {
    const entry = shards.get(path);
    if (!entry) return disk(path);
    const bytes = made.get(path) ?? randomShard(entry.shard, Number(randomWeights) + entry.i);
    if (keep) made.set(path, bytes);
    return bytes;
  };
}
