// Tiled VAE decode: the latents decoded in overlapping tiles by the build's
// `vae_decode_tile` (the decoder compiled at the tile shape, with the whole
// decoder's weights), the tiles' images blended into one. The decoder's
// activations then stay those of one tile at any image size: what lets a
// large image decode within a small memory budget or a device's buffer limits.
// Tiled VAE encode, likewise: the image encoded in the same overlapping tiles
// (in image pixels) by `vae_encode_tile`, each tile's latents sampled with the
// noise of its own latent pixels, and the tiles' latents blended into one.
//
// The plan: along each axis, the fewest tiles that overlap their neighbours by
// at least the overlap asked for, spread evenly from the first row (column) to
// the last. The blend: each tile's pixels are weighted by ramps that rise
// linearly across the part it shares with a neighbour (and are flat at the
// image's edges), and every pixel is the weighted mean of the tiles covering
// it. The weights of two neighbours sum to one across their overlap, so where
// tiles agree the blend is exactly what they agree on.

/**
 * @typedef {object} VaeTiling  The manifest's vae_tiling.
 * @property {string} function  The library function decoding one tile.
 * @property {string} [encode_function]  The library function encoding one tile's image
 *   (absent: the build encodes whole images only).
 * @property {[number, number]} tile  Its latent height and width.
 * @property {[number, number]} overlap  The default overlap, in latent rows and columns.
 */

/**
 * Where the tiles along one axis start: the fewest tiles of `tile` that cover
 * `size` with neighbours overlapping by at least `overlap`, spread evenly.
 * @param {number} size
 * @param {number} tile
 * @param {number} overlap
 * @returns {number[]}
 */
export function tileStarts(size, tile, overlap) {
  if (!(tile > 0) || !(overlap >= 0) || overlap >= tile) {
    throw new Error(`a VAE tile of ${tile} with an overlap of ${overlap}: the overlap must be 0 or more and less than the tile`);
  }
  if (tile >= size) return [0];
  const count = Math.ceil((size - overlap) / (tile - overlap));
  return Array.from({ length: count }, (_, k) => Math.round((k * (size - tile)) / (count - 1)));
}

/**
 * The blend weights of tile `index` along one axis, per image pixel of the tile:
 * a linear ramp across the overlap with each neighbour, 1 elsewhere.
 * @param {number[]} starts  tileStarts, in latent pixels.
 * @param {number} index
 * @param {number} tile  In latent pixels.
 * @param {number} factor  Image pixels per latent pixel.
 * @returns {Float64Array}
 */
export function rampWeights(starts, index, tile, factor) {
  const length = tile * factor;
  const before = index > 0 ? (starts[index - 1] + tile - starts[index]) * factor : 0;
  const after = index + 1 < starts.length ? (starts[index] + tile - starts[index + 1]) * factor : 0;
  const weights = new Float64Array(length);
  for (let x = 0; x < length; x++) {
    const rise = before > 0 ? (x + 0.5) / before : 1;
    const fall = after > 0 ? (length - x - 0.5) / after : 1;
    weights[x] = Math.min(1, rise, fall);
  }
  return weights;
}

/**
 * @typedef {object} TilePlan
 * @property {number[]} rows  The latent row each tile row starts at.
 * @property {number[]} cols  The latent column each tile column starts at.
 * @property {[number, number]} tile  Latent height and width of a tile.
 */

/**
 * The tiles that decode latents of `height` x `width`.
 * @param {number} height  Latent rows.
 * @param {number} width  Latent columns.
 * @param {VaeTiling} tiling
 * @param {[number, number]} [overlap]  Default: the manifest's.
 * @returns {TilePlan}
 */
export function tilePlan(height, width, tiling, overlap = tiling.overlap) {
  const [th, tw] = tiling.tile;
  if (th > height || tw > width) {
    throw new Error(`the VAE tile ${th}x${tw} is larger than the latents ${height}x${width}`);
  }
  return { rows: tileStarts(height, th, overlap[0]), cols: tileStarts(width, tw, overlap[1]), tile: [th, tw] };
}

/**
 * The latents of one tile: rows `top`.. and columns `left`.. of [1, C, H, W] latents.
 * @param {Float32Array} latents
 * @param {number[]} shape  [1, C, H, W].
 * @param {number} top
 * @param {number} left
 * @param {[number, number]} tile
 * @returns {Float32Array}
 */
export function cropLatents(latents, shape, top, left, [th, tw]) {
  const [, channels, height, width] = shape;
  const out = new Float32Array(channels * th * tw);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < th; y++) {
      const from = (c * height + top + y) * width + left;
      out.set(latents.subarray(from, from + tw), (c * th + y) * tw);
    }
  }
  return out;
}

/**
 * Decode latents in tiles and blend them: the image [1, 3, H, W] as float32.
 * `decodeTile` decodes the latents of one tile ([1, C, th, tw]) to its image
 * ([1, 3, th * factor, tw * factor]); tiles are decoded one at a time.
 * @param {object} job
 * @param {Float32Array} job.latents  [1, C, H, W].
 * @param {number[]} job.shape
 * @param {TilePlan} job.plan
 * @param {number} job.factor  Image pixels per latent pixel (the VAE's scale factor).
 * @param {(latents: Float32Array) => Promise<Float32Array>} job.decodeTile
 * @returns {Promise<Float32Array>}
 */
export async function decodeInTiles({ latents, shape, plan, factor, decodeTile }) {
  const [, , height, width] = shape;
  const [th, tw] = plan.tile;
  const imageH = height * factor;
  const imageW = width * factor;
  const tileH = th * factor;
  const tileW = tw * factor;
  const sum = new Float64Array(3 * imageH * imageW);
  const weightSum = new Float64Array(imageH * imageW);
  for (const [i, top] of plan.rows.entries()) {
    const wy = rampWeights(plan.rows, i, th, factor);
    for (const [j, left] of plan.cols.entries()) {
      const wx = rampWeights(plan.cols, j, tw, factor);
      const pixels = await decodeTile(cropLatents(latents, shape, top, left, plan.tile));
      if (pixels.length !== 3 * tileH * tileW) {
        throw new Error(`a decoded VAE tile has ${pixels.length} values; expected 3 x ${tileH} x ${tileW}`);
      }
      for (let y = 0; y < tileH; y++) {
        const row = (top * factor + y) * imageW + left * factor;
        for (let x = 0; x < tileW; x++) {
          const w = wy[y] * wx[x];
          weightSum[row + x] += w;
          for (let c = 0; c < 3; c++) sum[c * imageH * imageW + row + x] += w * pixels[(c * tileH + y) * tileW + x];
        }
      }
    }
  }
  const image = new Float32Array(sum.length);
  for (let p = 0; p < image.length; p++) image[p] = sum[p] / weightSum[p % (imageH * imageW)];
  return image;
}

/**
 * Encode an image in tiles and blend their latents: the latents [1, C, h, w]
 * as float32. `encodeTile` encodes the image of one tile ([1, 3, th * factor,
 * tw * factor]) with the noise of its latent pixels ([1, C, th, tw]) to its
 * latents ([1, C, th, tw]); tiles are encoded one at a time.
 * @param {object} job
 * @param {Float32Array} job.pixels  The image, [1, 3, h * factor, w * factor].
 * @param {Float32Array} job.noise  [1, C, h, w]: what the whole encoder would sample with.
 * @param {number[]} job.shape  The latents' [1, C, h, w].
 * @param {TilePlan} job.plan
 * @param {number} job.factor  Image pixels per latent pixel.
 * @param {(pixels: Float32Array, noise: Float32Array) => Promise<Float32Array>} job.encodeTile
 * @returns {Promise<Float32Array>}
 */
export async function encodeInTiles({ pixels, noise, shape, plan, factor, encodeTile }) {
  const [, channels, height, width] = shape;
  const [th, tw] = plan.tile;
  const imageShape = [1, pixels.length / (height * factor * width * factor), height * factor, width * factor];
  if (imageShape[1] !== 3 || noise.length !== channels * height * width) {
    throw new Error(`an image of ${pixels.length} values and noise of ${noise.length} do not encode to latents of ${shape.join("x")}`);
  }
  const sum = new Float64Array(channels * height * width);
  const weightSum = new Float64Array(height * width);
  for (const [i, top] of plan.rows.entries()) {
    const wy = rampWeights(plan.rows, i, th, 1);
    for (const [j, left] of plan.cols.entries()) {
      const wx = rampWeights(plan.cols, j, tw, 1);
      const latents = await encodeTile(
        cropLatents(pixels, imageShape, top * factor, left * factor, [th * factor, tw * factor]),
        cropLatents(noise, shape, top, left, plan.tile),
      );
      if (latents.length !== channels * th * tw) {
        throw new Error(`an encoded VAE tile has ${latents.length} values; expected ${channels} x ${th} x ${tw}`);
      }
      for (let y = 0; y < th; y++) {
        for (let x = 0; x < tw; x++) {
          const w = wy[y] * wx[x];
          const at = (top + y) * width + left + x;
          weightSum[at] += w;
          for (let c = 0; c < channels; c++) sum[c * height * width + at] += w * latents[(c * th + y) * tw + x];
        }
      }
    }
  }
  const out = new Float32Array(sum.length);
  for (let p = 0; p < out.length; p++) out[p] = sum[p] / weightSum[p % (height * width)];
  return out;
}

/**
 * Whether to run the VAE in tiles: "on" and "off" as said; "auto" when the
 * build can and the device cannot bind the untiled decoder's largest buffer,
 * or (`untiledEncodeBytes` given: the generation encodes an image, and the
 * build can encode in tiles) the untiled encoder's.
 * @param {"auto" | "on" | "off"} mode
 * @param {VaeTiling | undefined} tiling  The manifest's (absent: the build cannot tile).
 * @param {number | undefined} untiledBytes  The kernel path's vae_decode_buffer_bytes.
 * @param {{maxStorageBufferBindingSize: number, maxBufferSize: number}} limits
 * @param {number} [untiledEncodeBytes]  The kernel path's vae_encode_buffer_bytes, where it counts.
 * @returns {boolean}
 */
export function useTiles(mode, tiling, untiledBytes, limits, untiledEncodeBytes = 0) {
  if (mode !== "auto" && mode !== "on" && mode !== "off") {
    throw new Error(`VAE tiling ${JSON.stringify(mode)}: choose auto, on or off`);
  }
  if (mode === "on" && !tiling) {
    throw new Error("this build cannot decode in tiles (its manifest has no vae_tiling): rebuild it with the current wsd-compile");
  }
  if (mode !== "auto" || !tiling) return mode === "on";
  const largest = Math.max(untiledBytes ?? 0, tiling.encode_function ? untiledEncodeBytes : 0);
  return largest > Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
}
