// The tiled VAE decode's and encode's pure parts (vae_tiling.js): the plan, the
// blend weights, the crop, the blend itself against a decoder (encoder) whose
// untiled result is known (nearest-neighbour upsampling; mean pooling plus the
// noise), and when the VAE tiles.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  cropLatents, decodeInTiles, encodeInTiles, rampWeights, tilePlan, tileStarts, useTiles,
} from "../../src/wsd_web/static/js/vae_tiling.js";

/** @type {import("../../src/wsd_web/static/js/vae_tiling.js").VaeTiling} */
const TILING = { function: "vae_decode_tile", tile: [4, 4], overlap: [1, 1] };

test("one tile starting at 0 when the tile covers the axis", () => {
  assert.deepEqual(tileStarts(8, 8, 2), [0]);
  assert.deepEqual(tileStarts(5, 8, 0), [0]);
  assert.deepEqual(tileStarts(1, 1, 0), [0]);
});

test("the starts of a few plans", () => {
  assert.deepEqual(tileStarts(64, 32, 8), [0, 16, 32]);
  assert.deepEqual(tileStarts(8, 4, 0), [0, 4]);
  assert.deepEqual(tileStarts(8, 4, 1), [0, 2, 4]);
  assert.deepEqual(tileStarts(10, 4, 2), [0, 2, 4, 6]);
  assert.deepEqual(tileStarts(11, 4, 2), [0, 2, 4, 5, 7]);
  assert.deepEqual(tileStarts(13, 4, 1), [0, 3, 6, 9]);
});

test("tiles run from 0 to size - tile, evenly spread, each overlapping the next by at least the overlap", () => {
  for (let size = 1; size <= 40; size++) {
    for (let tile = 1; tile <= size + 1; tile++) {
      for (let overlap = 0; overlap < tile; overlap++) {
        const starts = tileStarts(size, tile, overlap);
        const where = `size ${size}, tile ${tile}, overlap ${overlap}: ${starts}`;
        assert.equal(starts[0], 0, where);
        if (tile >= size) {
          assert.deepEqual(starts, [0], where);
          continue;
        }
        assert.equal(starts[starts.length - 1], size - tile, where);
        const steps = starts.slice(1).map((s, k) => s - starts[k]);
        for (const step of steps) {
          assert.ok(step > 0, `${where}: starts must increase`);
          assert.ok(tile - step >= overlap, `${where}: neighbours overlap by less than ${overlap}`);
        }
        assert.ok(Math.max(...steps) - Math.min(...steps) <= 1, `${where}: not evenly spread`);
        // The fewest tiles: one fewer, however spread, could not cover the axis with that overlap.
        assert.ok((starts.length - 2) * (tile - overlap) + tile < size, `${where}: more tiles than needed`);
      }
    }
  }
});

test("an overlap of the tile or more, a negative one or an empty tile is refused", () => {
  const message = /the overlap must be 0 or more and less than the tile/;
  assert.throws(() => tileStarts(64, 32, 32), message);
  assert.throws(() => tileStarts(64, 32, 40), message);
  assert.throws(() => tileStarts(64, 32, -1), message);
  assert.throws(() => tileStarts(64, 0, 0), message);
  assert.throws(() => tileStarts(64, 32, Number.NaN), message);
  assert.throws(() => tileStarts(64, 4, 4), /a VAE tile of 4 with an overlap of 4/);
});

test("a plan has the tile starts of each axis, with the manifest's overlap unless given", () => {
  assert.deepEqual(tilePlan(8, 12, TILING), { rows: [0, 2, 4], cols: [0, 3, 5, 8], tile: [4, 4] });
  assert.deepEqual(tilePlan(8, 12, TILING, [0, 2]), { rows: [0, 4], cols: [0, 2, 4, 6, 8], tile: [4, 4] });
  assert.deepEqual(tilePlan(4, 4, TILING), { rows: [0], cols: [0], tile: [4, 4] });
  assert.throws(() => tilePlan(3, 8, TILING), /the VAE tile 4x4 is larger than the latents 3x8/);
  assert.throws(() => tilePlan(8, 8, TILING, [4, 1]), /the overlap must be 0 or more and less than the tile/);
});

test("a tile without neighbours is weighted 1 throughout", () => {
  assert.deepEqual(Array.from(rampWeights([0], 0, 4, 8)), new Array(32).fill(1));
  assert.deepEqual(Array.from(rampWeights([0, 4], 0, 4, 1)), [1, 1, 1, 1]);
});

test("the ramps rise across the overlap with the tile before and fall across the one with the tile after", () => {
  // Tiles at 0, 2, 4 of 4 latent pixels, 2 image pixels each: 4 image pixels shared with each neighbour.
  const starts = [0, 2, 4];
  assert.deepEqual(Array.from(rampWeights(starts, 0, 4, 2)), [1, 1, 1, 1, 0.875, 0.625, 0.375, 0.125]);
  assert.deepEqual(Array.from(rampWeights(starts, 1, 4, 2)), [0.125, 0.375, 0.625, 0.875, 0.875, 0.625, 0.375, 0.125]);
  assert.deepEqual(Array.from(rampWeights(starts, 2, 4, 2)), [0.125, 0.375, 0.625, 0.875, 1, 1, 1, 1]);
});

/**
 * Per image pixel of an axis: the sum of the weights of the tiles covering it, and how many do.
 * @param {number} size  Latent pixels.
 * @param {number} tile
 * @param {number} overlap
 * @param {number} factor
 */
function axisWeights(size, tile, overlap, factor) {
  const starts = tileStarts(size, tile, overlap);
  const sum = new Float64Array(size * factor);
  const cover = new Uint8Array(size * factor);
  for (const [index, start] of starts.entries()) {
    const weights = rampWeights(starts, index, Math.min(tile, size), factor);
    for (const [x, w] of weights.entries()) {
      sum[start * factor + x] += w;
      cover[start * factor + x] += 1;
    }
  }
  return { starts, sum, cover };
}

test("neighbours' weights sum to 1 across each overlap, and every pixel's weights to 1", () => {
  // Plans where at most two tiles cover a pixel (the overlap at most half the tile), as builds make them.
  const plans = [
    [64, 32, 8, 8], [128, 32, 8, 8], [96, 32, 8, 8], [8, 4, 1, 8], [12, 4, 1, 8], [13, 4, 1, 2],
    [10, 4, 2, 3], [37, 8, 3, 1], [100, 16, 4, 8], [64, 64, 16, 8], [9, 4, 0, 8],
  ];
  for (const [size, tile, overlap, factor] of plans) {
    const { starts, sum, cover } = axisWeights(size, tile, overlap, factor);
    const where = `size ${size}, tile ${tile}, overlap ${overlap}, factor ${factor}: ${starts}`;
    assert.ok(Math.max(...cover) <= 2, `${where}: the plan should have at most two tiles over a pixel`);
    if (starts.length > 1 && overlap > 0) assert.ok(cover.includes(2), `${where}: no overlap`);
    for (const [p, s] of sum.entries()) assert.ok(Math.abs(s - 1) < 1e-12, `${where}: pixel ${p} weighs ${s}`);
  }
});

/**
 * Latents [1, C, H, W] whose every value says where it is.
 * @param {number[]} shape
 */
function numbered([, channels, height, width]) {
  const out = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) out[(c * height + y) * width + x] = c * 10000 + y * 100 + x;
    }
  }
  return out;
}

test("cropLatents takes the tile's rows and columns of every channel", () => {
  const shape = [1, 2, 5, 6];
  const latents = numbered(shape);
  assert.deepEqual(Array.from(cropLatents(latents, shape, 1, 2, [2, 3])), [
    102, 103, 104, 202, 203, 204,
    10102, 10103, 10104, 10202, 10203, 10204,
  ]);
  assert.deepEqual(Array.from(cropLatents(latents, shape, 3, 3, [2, 3])), [
    303, 304, 305, 403, 404, 405,
    10303, 10304, 10305, 10403, 10404, 10405,
  ]);
  assert.deepEqual(cropLatents(latents, shape, 0, 0, [5, 6]), latents);
});

/**
 * A stand-in decoder: the first three channels of [1, C, h, w] latents upsampled
 * `factor` times by nearest neighbour, [1, 3, h * factor, w * factor].
 * @param {Float32Array} latents
 * @param {number[]} shape
 * @param {number} factor
 */
function upsample(latents, [, , height, width], factor) {
  const [outH, outW] = [height * factor, width * factor];
  const out = new Float32Array(3 * outH * outW);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        out[(c * outH + y) * outW + x] = latents[(c * height + Math.floor(y / factor)) * width + Math.floor(x / factor)];
      }
    }
  }
  return out;
}

test("tiles decoded by a nearest-neighbour upsampler blend into the untiled upsampling", async () => {
  const cases = [
    { size: [8, 8], tile: [4, 4], overlap: [1, 1], factor: 8 },
    { size: [8, 12], tile: [4, 4], overlap: [2, 1], factor: 2 },
    { size: [9, 7], tile: [4, 3], overlap: [1, 0], factor: 3 },
    { size: [16, 16], tile: [8, 8], overlap: [2, 2], factor: 8 },
    { size: [6, 10], tile: [6, 4], overlap: [2, 3], factor: 1 },
    { size: [5, 5], tile: [5, 5], overlap: [1, 1], factor: 4 },
    { size: [13, 11], tile: [5, 6], overlap: [3, 2], factor: 2 },
  ];
  for (const { size, tile, overlap, factor } of cases) {
    const shape = [1, 4, ...size];
    const latents = numbered(shape).map((v) => Math.sin(v) * 3);
    const plan = tilePlan(size[0], size[1], { function: "vae_decode_tile", tile: /** @type {[number, number]} */ (tile), overlap: [0, 0] }, /** @type {[number, number]} */ (overlap));
    /** @type {Float32Array[]} */
    const seen = [];
    const image = await decodeInTiles({
      latents, shape, plan, factor,
      decodeTile: async (values) => {
        seen.push(values);
        return upsample(values, [1, 4, ...tile], factor);
      },
    });
    const expected = upsample(latents, shape, factor);
    const where = `${size} in ${tile} tiles overlapping ${overlap}, factor ${factor}`;
    assert.equal(seen.length, plan.rows.length * plan.cols.length, where);
    assert.ok(seen.every((v) => v.length === 4 * tile[0] * tile[1]), where);
    assert.equal(image.length, expected.length, where);
    for (const [i, v] of expected.entries()) assert.ok(Math.abs(image[i] - v) <= 1e-6, `${where}: value ${i} is ${image[i]}, not ${v}`);
  }
});

test("the tiles are decoded one at a time, in rows", async () => {
  const shape = [1, 3, 4, 6];
  const plan = tilePlan(4, 6, { function: "f", tile: [2, 4], overlap: [0, 2] });
  /** @type {number[]} */
  const firsts = [];
  let running = 0;
  await decodeInTiles({
    latents: numbered(shape), shape, plan, factor: 1,
    decodeTile: async (values) => {
      assert.equal(running++, 0);
      await new Promise((done) => setTimeout(done, 1));
      running--;
      firsts.push(values[0]);
      return upsample(values, [1, 3, 2, 4], 1);
    },
  });
  assert.deepEqual(firsts, [0, 2, 200, 202]);
});

test("a decoded tile of the wrong size is refused", async () => {
  const shape = [1, 4, 8, 8];
  const plan = tilePlan(8, 8, TILING);
  await assert.rejects(
    decodeInTiles({ latents: numbered(shape), shape, plan, factor: 8, decodeTile: async () => new Float32Array(3 * 32 * 31) }),
    /a decoded VAE tile has 2976 values; expected 3 x 32 x 32/,
  );
  await assert.rejects(
    decodeInTiles({ latents: numbered(shape), shape, plan, factor: 2, decodeTile: async (v) => upsample(v, [1, 4, 4, 4], 8) }),
    /a decoded VAE tile has 3072 values; expected 3 x 8 x 8/,
  );
});

/**
 * A stand-in encoder: [1, 3, h * factor, w * factor] pixels mean-pooled to
 * [1, 4, h, w] (the fourth channel the sum of the other three) plus a tenth of the noise.
 * @param {Float32Array} pixels
 * @param {Float32Array} noise
 * @param {number[]} shape  The latents' [1, 4, h, w].
 * @param {number} factor
 */
function pool(pixels, noise, [, , height, width], factor) {
  const [imageH, imageW] = [height * factor, width * factor];
  const out = new Float32Array(4 * height * width);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < imageH; y++) {
      for (let x = 0; x < imageW; x++) {
        const v = pixels[(c * imageH + y) * imageW + x] / (factor * factor);
        const at = Math.floor(y / factor) * width + Math.floor(x / factor);
        out[c * height * width + at] += v;
        out[3 * height * width + at] += v;
      }
    }
  }
  return out.map((v, i) => v + 0.1 * noise[i]);
}

test("tiles encoded by a mean pooler blend into the untiled pooling, each tile with its own pixels' noise", async () => {
  const cases = [
    { size: [8, 8], tile: [4, 4], overlap: [1, 1], factor: 8 },
    { size: [9, 7], tile: [4, 3], overlap: [1, 0], factor: 3 },
    { size: [13, 11], tile: [5, 6], overlap: [3, 2], factor: 2 },
    { size: [5, 5], tile: [5, 5], overlap: [1, 1], factor: 4 },
  ];
  for (const { size, tile, overlap, factor } of cases) {
    const shape = [1, 4, ...size];
    const imageShape = [1, 3, size[0] * factor, size[1] * factor];
    const pixels = numbered(imageShape).map((v) => Math.cos(v));
    const noise = numbered(shape).map((v) => Math.sin(v) * 2);
    const plan = tilePlan(size[0], size[1], { function: "f", tile: /** @type {[number, number]} */ (tile), overlap: [0, 0] }, /** @type {[number, number]} */ (overlap));
    let calls = 0;
    const latents = await encodeInTiles({
      pixels, noise, shape, plan, factor,
      encodeTile: async (tilePixels, tileNoise) => {
        calls += 1;
        assert.equal(tilePixels.length, 3 * tile[0] * factor * tile[1] * factor);
        return pool(tilePixels, tileNoise, [1, 4, ...tile], factor);
      },
    });
    const expected = pool(pixels, noise, shape, factor);
    const where = `${size} in ${tile} tiles overlapping ${overlap}, factor ${factor}`;
    assert.equal(calls, plan.rows.length * plan.cols.length, where);
    assert.equal(latents.length, expected.length, where);
    for (const [i, v] of expected.entries()) assert.ok(Math.abs(latents[i] - v) <= 1e-5, `${where}: value ${i} is ${latents[i]}, not ${v}`);
  }
});

test("an encoded tile of the wrong size, or an image that is not the latents', is refused", async () => {
  const shape = [1, 4, 8, 8];
  const plan = tilePlan(8, 8, TILING);
  const pixels = new Float32Array(3 * 64 * 64);
  const noise = new Float32Array(4 * 8 * 8);
  await assert.rejects(
    encodeInTiles({ pixels, noise, shape, plan, factor: 8, encodeTile: async () => new Float32Array(4 * 4 * 3) }),
    /an encoded VAE tile has 48 values; expected 4 x 4 x 4/,
  );
  await assert.rejects(
    encodeInTiles({ pixels: pixels.subarray(64), noise, shape, plan, factor: 8, encodeTile: async () => noise }),
    /do not encode to latents of 1x4x8x8/,
  );
  await assert.rejects(
    encodeInTiles({ pixels, noise: noise.subarray(1), shape, plan, factor: 8, encodeTile: async () => noise }),
    /noise of 255 do not encode/,
  );
});

test("auto tiles where the untiled encoder's buffer is too large, if the build can encode in tiles", () => {
  const limits = { maxStorageBufferBindingSize: 128 << 20, maxBufferSize: 256 << 20 };
  const encoding = { ...TILING, encode_function: "vae_encode_tile" };
  assert.equal(useTiles("auto", encoding, 64 << 20, limits, 512 << 20), true);
  assert.equal(useTiles("auto", encoding, 64 << 20, limits, 128 << 20), false);
  assert.equal(useTiles("auto", encoding, 64 << 20, limits), false);
  // A build whose tiles only decode: tiling would not shrink the encoder.
  assert.equal(useTiles("auto", TILING, 64 << 20, limits, 512 << 20), false);
});

test("auto tiles only where the build can and the device cannot bind the untiled decoder's largest buffer", () => {
  const limits = { maxStorageBufferBindingSize: 128 << 20, maxBufferSize: 256 << 20 };
  assert.equal(useTiles("auto", TILING, (128 << 20) + 1, limits), true);
  assert.equal(useTiles("auto", TILING, 128 << 20, limits), false);
  assert.equal(useTiles("auto", TILING, 64 << 20, limits), false);
  // The smaller of the two limits counts.
  const small = { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 64 << 20 };
  assert.equal(useTiles("auto", TILING, 100 << 20, small), true);
  assert.equal(useTiles("auto", TILING, 32 << 20, small), false);
  // A path without vae_decode_buffer_bytes, or a build without vae_tiling, decodes whole.
  assert.equal(useTiles("auto", TILING, undefined, limits), false);
  assert.equal(useTiles("auto", undefined, 1 << 30, limits), false);
  assert.equal(useTiles("auto", undefined, undefined, limits), false);
});

test("on and off do as they say, whatever the limits", () => {
  const below = { maxStorageBufferBindingSize: 1 << 20, maxBufferSize: 1 << 20 };
  const above = { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 1 << 30 };
  for (const limits of [below, above]) {
    assert.equal(useTiles("on", TILING, 64 << 20, limits), true);
    assert.equal(useTiles("on", TILING, undefined, limits), true);
    assert.equal(useTiles("off", TILING, 64 << 20, limits), false);
    assert.equal(useTiles("off", undefined, 64 << 20, limits), false);
  }
});

test("on without a build that can tile, and a mode other than auto, on or off, are one-line errors", () => {
  const limits = { maxStorageBufferBindingSize: 1 << 30, maxBufferSize: 1 << 30 };
  assert.throws(() => useTiles("on", undefined, 64 << 20, limits), (e) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, /^this build cannot decode in tiles \(its manifest has no vae_tiling\): rebuild/);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  for (const mode of ["tiles", "whole", "", "ON", "true"]) {
    assert.throws(
      () => useTiles(/** @type {any} */ (mode), TILING, 64 << 20, limits),
      { message: `VAE tiling ${JSON.stringify(mode)}: choose auto, on or off` },
    );
  }
  assert.throws(() => useTiles(/** @type {any} */ (undefined), TILING, 0, limits), /VAE tiling undefined: choose auto, on or off/);
});
