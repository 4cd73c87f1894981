// ModelWeights: components' weights uploaded from the shards that hold them,
// and with sequential offload released after use and uploaded again.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ModelWeights, ON_DEMAND, OFFLOADABLE, componentTensors, filesHolding } from "../../src/wsd_web/static/js/weights.js";

/** Three shards: the UNet's, the text encoder's, and one shared by the UNet and the VAE decoder. */
const INDEX = /** @type {any} */ ({
  shards: [
    { dataPath: "a.bin", nbytes: 8, records: [{ name: "unet.0", shape: [2], dtype: "float32", format: "raw", nbytes: 8, byteOffset: 0 }] },
    { dataPath: "b.bin", nbytes: 4, records: [{ name: "text_encoder.0", shape: [1], dtype: "float32", format: "raw", nbytes: 4, byteOffset: 0 }] },
    {
      dataPath: "c.bin", nbytes: 8, records: [
        { name: "unet.1", shape: [1], dtype: "float32", format: "raw", nbytes: 4, byteOffset: 0 },
        { name: "vae_decode.0", shape: [1], dtype: "float32", format: "raw", nbytes: 4, byteOffset: 4 },
      ],
    },
  ],
});

const MANIFEST = /** @type {any} */ ({
  weights: "w/tensor-cache.json",
  components: {
    text_encoder: { param_names: ["text_encoder.0"] },
    unet: { param_names: ["unet.0", "unet.1"] },
    vae_decode: { param_names: ["vae_decode.0"] },
  },
});

/** A session that keeps books: tensors on the GPU by name, tuples made. */
function fakeSession() {
  /** @type {Map<string, number>} */
  const onGpu = new Map();
  const uploads = /** @type {string[]} */ ([]);
  const pools = /** @type {string[]} */ ([]);
  const session = {
    /** @param {{name: string}} record */
    upload(record) {
      uploads.push(record.name);
      onGpu.set(record.name, (onGpu.get(record.name) ?? 0) + 1);
      return { name: record.name };
    },
    tensorArray: (/** @type {{name: string}[]} */ list) => ({ names: list.map((t) => t.name), dispose() {} }),
    releasePooledMemory() {
      pools.push("cleared");
    },
    /** @param {{name: string}[]} tensors */
    release(tensors) {
      for (const t of tensors) onGpu.set(t.name, /** @type {number} */ (onGpu.get(t.name)) - 1);
    },
  };
  const resident = () => [...onGpu].filter(([, n]) => n > 0).map(([name]) => name).sort();
  return { session: /** @type {any} */ (session), uploads, resident, pools };
}

function files() {
  const fetched = /** @type {string[]} */ ([]);
  return {
    fetched,
    get: async () => new Uint8Array(0),
    /** @param {string[]} paths @param {(path: string, bytes: Uint8Array) => void} consume */
    async getAll(paths, consume) {
      for (const path of paths) {
        fetched.push(path);
        consume(path, new Uint8Array(path === "w/b.bin" ? 4 : 8));
      }
    },
  };
}

const PATH = /** @type {any} */ ({ widen_f16_weights: false });

test("the shard files holding a component's tensors", () => {
  assert.deepEqual(filesHolding(MANIFEST, INDEX, componentTensors(MANIFEST, ["vae_decode"])), ["w/c.bin"]);
  assert.deepEqual(filesHolding(MANIFEST, INDEX, componentTensors(MANIFEST, ["unet"])), ["w/a.bin", "w/c.bin"]);
  assert.deepEqual(OFFLOADABLE, ["text_encoder", "text_encoder_2", "vae_decode"]);
});

test("without offload every component is uploaded once and stays", async () => {
  const { session, uploads, resident } = fakeSession();
  const source = files();
  const weights = new ModelWeights(session, { manifest: MANIFEST, index: INDEX, files: source, path: PATH });
  assert.deepEqual(weights.initialComponents(), ["text_encoder", "unet", "vae_decode"]);
  await weights.acquire(weights.initialComponents());
  weights.release(["text_encoder", "vae_decode"]);
  await weights.acquire(["vae_decode"]);
  assert.deepEqual(uploads.sort(), ["text_encoder.0", "unet.0", "unet.1", "vae_decode.0"]);
  assert.deepEqual(resident(), ["text_encoder.0", "unet.0", "unet.1", "vae_decode.0"]);
  assert.deepEqual(/** @type {any} */ (weights.tuple("unet")).names, ["unet.0", "unet.1"]);
});

test("with offload a component is on the GPU from acquire to release, from only its shards", async () => {
  const { session, uploads, resident, pools } = fakeSession();
  const source = files();
  const weights = new ModelWeights(session, { manifest: MANIFEST, index: INDEX, files: source, path: PATH }, { offload: true });
  assert.deepEqual(weights.initialComponents(), ["unet"]);
  await weights.acquire(weights.initialComponents());
  assert.deepEqual(resident(), ["unet.0", "unet.1"]);
  assert.throws(() => weights.tuple("vae_decode"), /the weights of vae_decode are not on the GPU: acquire them first/);
  source.fetched.length = 0;
  await weights.acquire(["vae_decode"]);
  assert.deepEqual(source.fetched, ["w/c.bin"]);
  assert.deepEqual(resident(), ["unet.0", "unet.1", "vae_decode.0"]);
  weights.release(["vae_decode", "unet"]);  // the UNet is never offloaded
  assert.deepEqual(resident(), ["unet.0", "unet.1"]);
  await weights.acquire(["vae_decode"]);
  assert.equal(uploads.filter((n) => n === "vae_decode.0").length, 2);
  // Turning offload off keeps what is used from then on; on again releases it now.
  weights.setOffload(false);
  await weights.acquire(["text_encoder"]);
  weights.release(["text_encoder"]);
  assert.deepEqual(resident(), ["text_encoder.0", "unet.0", "unet.1", "vae_decode.0"]);
  pools.length = 0;
  weights.setOffload(true);
  assert.deepEqual(resident(), ["unet.0", "unet.1"]);
  weights.setOffload(true);
  assert.deepEqual(pools, ["cleared"]);  // once, when offload turns on
});

test("offload needs the build's files, and a shard of the wrong size is refused", async () => {
  const { session } = fakeSession();
  assert.throws(() => new ModelWeights(session, null, { offload: true }), /sequential offload needs the build's files/);
  const short = { ...files(), async getAll(/** @type {string[]} */ paths, /** @type {any} */ consume) {
    for (const path of paths) consume(path, new Uint8Array(1));
  } };
  const weights = new ModelWeights(session, { manifest: MANIFEST, index: INDEX, files: short, path: PATH });
  await assert.rejects(weights.acquire(["unet"]), /w\/a\.bin has 1 bytes, the index says 8: reload/);
});

test("the VAE encoder is uploaded only when asked for, and leaves with offload", async () => {
  const index = { shards: [...INDEX.shards, {
    dataPath: "d.bin", nbytes: 4, records: [{ name: "vae_encode.0", shape: [1], dtype: "float32", format: "raw", nbytes: 4, byteOffset: 0 }],
  }] };
  const manifest = { ...MANIFEST, components: { ...MANIFEST.components, vae_encode: { param_names: ["vae_encode.0"] } } };
  assert.deepEqual(ON_DEMAND, ["vae_encode"]);
  for (const offload of [false, true]) {
    const { session, resident } = fakeSession();
    const source = { ...files(), async getAll(/** @type {string[]} */ paths, /** @type {any} */ consume) {
      for (const path of paths) consume(path, new Uint8Array(path === "w/b.bin" || path === "w/d.bin" ? 4 : 8));
    } };
    const weights = new ModelWeights(session, { manifest, index: /** @type {any} */ (index), files: source, path: PATH }, { offload });
    assert.ok(!weights.initialComponents().includes("vae_encode"));
    await weights.acquire(weights.initialComponents());
    assert.ok(!resident().includes("vae_encode.0"));
    await weights.acquire(["vae_encode"]);
    assert.ok(resident().includes("vae_encode.0"));
    weights.release(["vae_encode"]);
    assert.equal(resident().includes("vae_encode.0"), !offload);
  }
});
