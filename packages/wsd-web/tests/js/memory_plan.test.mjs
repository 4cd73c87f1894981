// What a generation needs of the GPU in each memory mode, from the build's
// stated memory, and the mode a budget allows.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MEMORY_MODES, chooseMemoryMode, memoryNeed } from "../../src/wsd_web/static/js/memory_plan.js";

const MiB = 2 ** 20;

const MANIFEST = /** @type {any} */ ({
  functions: {
    text_encoder: { params: "text_encoder" },
    unet: { params: "unet" },
    vae_decode: { params: "vae_decode" },
    vae_decode_tile: { params: "vae_decode" },
    cfg_combine: { params: null },
  },
  vae_tiling: { function: "vae_decode_tile", tile: [32, 32], overlap: [8, 8] },
});

const PATH = /** @type {any} */ ({
  name: "shader-f16",
  memory: {
    weights: { text_encoder: 250 * MiB, unet: 1700 * MiB, vae_decode: 100 * MiB },
    workspace: { text_encoder: 20 * MiB, unet: 400 * MiB, vae_decode: 900 * MiB, vae_decode_tile: 100 * MiB, cfg_combine: 1 * MiB },
  },
});

test("resident: every weight and every stage's storage; offload: the UNet and the largest stage", () => {
  const need = (/** @type {boolean} */ offload, /** @type {boolean} */ tiles) =>
    /** @type {number} */ (memoryNeed(MANIFEST, PATH, { offload, tiles })) / MiB;
  assert.equal(need(false, false), 2050 + 20 + 400 + 900 + 1);
  assert.equal(need(false, true), 2050 + 20 + 400 + 100 + 1);
  // Offload: the decode stage (100 + 900) is the largest; with tiles the denoising loop (400).
  assert.equal(need(true, false), 1700 + 1000 + 1);
  assert.equal(need(true, true), 1700 + 400 + 1);
  assert.equal(memoryNeed(MANIFEST, { ...PATH, memory: undefined }, MEMORY_MODES[0]), null);
});

test("a budget gets the first mode that fits, keeping what the user fixed", () => {
  const pick = (/** @type {number} */ budget, /** @type {any} */ fixed = {}) => {
    const { offload, tiles } = chooseMemoryMode(MANIFEST, PATH, budget * MiB, fixed);
    return { offload, tiles };
  };
  assert.deepEqual(pick(Infinity), { offload: false, tiles: false });
  assert.deepEqual(pick(2600), { offload: false, tiles: true });
  assert.deepEqual(pick(2200), { offload: true, tiles: true });
  assert.deepEqual(pick(2800, { tiles: false }), { offload: true, tiles: false });
  assert.throws(() => pick(2600, { tiles: false }), /needs 2\.64 GiB of GPU memory even with sequential offload, over the budget of 2\.54 GiB/);
  assert.throws(
    () => pick(2000),
    { message: "this build needs 2.05 GiB of GPU memory even with sequential offload and tiled VAE decode, over the budget of 1.95 GiB: " +
      "raise the budget, or use a smaller build (fp16, a smaller image)" },
  );
  // A build that cannot tile is not given tiles; one that states no memory fits any budget.
  const untiled = { ...MANIFEST, vae_tiling: undefined };
  assert.deepEqual(chooseMemoryMode(untiled, PATH, 2800 * MiB), { offload: true, tiles: false, need: 2701 * MiB });
  assert.deepEqual(chooseMemoryMode(MANIFEST, { ...PATH, memory: undefined }, 1), { offload: false, tiles: false, need: null });
});

test("the VAE encoder counts only for a task that encodes an image", () => {
  const manifest = { ...MANIFEST, functions: { ...MANIFEST.functions, vae_encode: { params: "vae_encode" } } };
  const path = { ...PATH, memory: {
    weights: { ...PATH.memory.weights, vae_encode: 70 * MiB },
    workspace: { ...PATH.memory.workspace, vae_encode: 1500 * MiB },
  } };
  const need = (/** @type {boolean} */ offload, /** @type {boolean} */ encode) =>
    /** @type {number} */ (memoryNeed(manifest, path, { offload, tiles: true }, { encode })) / MiB;
  assert.equal(need(false, false), 2050 + 20 + 400 + 100 + 1);
  assert.equal(need(false, true), 2050 + 70 + 20 + 1500 + 400 + 100 + 1);
  // Offload: the encode stage (70 + 1500) is the largest.
  assert.equal(need(true, false), 1700 + 400 + 1);
  assert.equal(need(true, true), 1700 + 1570 + 1);
  const { offload } = chooseMemoryMode(manifest, path, 4000 * MiB, { encode: true });
  assert.equal(offload, true);
  assert.equal(chooseMemoryMode(manifest, path, 4000 * MiB).offload, false);
});

test("tiles swap the whole encoder's storage for the tile encoder's, where the build has one", () => {
  const manifest = {
    ...MANIFEST,
    functions: { ...MANIFEST.functions, vae_encode: { params: "vae_encode" }, vae_encode_tile: { params: "vae_encode" } },
    vae_tiling: { ...MANIFEST.vae_tiling, encode_function: "vae_encode_tile" },
  };
  const path = { ...PATH, memory: {
    weights: { ...PATH.memory.weights, vae_encode: 70 * MiB },
    workspace: { ...PATH.memory.workspace, vae_encode: 1500 * MiB, vae_encode_tile: 90 * MiB },
  } };
  const need = (/** @type {boolean} */ offload, /** @type {boolean} */ tiles) =>
    /** @type {number} */ (memoryNeed(manifest, path, { offload, tiles }, { encode: true })) / MiB;
  assert.equal(need(false, false), 2050 + 70 + 20 + 1500 + 400 + 900 + 1);
  assert.equal(need(false, true), 2050 + 70 + 20 + 90 + 400 + 100 + 1);
  // Offload with tiles: the denoising loop (400) is the largest stage again, not the encoder (70 + 90).
  assert.equal(need(true, true), 1700 + 400 + 1);
  assert.equal(need(true, false), 1700 + 1570 + 1);
  // The tile encoder counts only for a task that encodes an image.
  assert.equal(/** @type {number} */ (memoryNeed(manifest, path, { offload: false, tiles: true })) / MiB, 2050 + 20 + 400 + 100 + 1);
  assert.deepEqual(chooseMemoryMode(manifest, path, 2800 * MiB, { encode: true }), { offload: false, tiles: true, need: 2731 * MiB });
});
