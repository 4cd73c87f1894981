// The GPU memory a generation needs in each memory mode, reckoned from what
// the build states per kernel path (`memory`: each component's weights as
// uploaded, each function's planned storage for its intermediates), and the
// mode a memory budget allows.
//
// Without offload the weights of every component stay on the GPU, and the
// VM's pooled allocator keeps the storage of every function it has run, so
// the need is their sum. With sequential offload only the UNet's weights stay,
// and each stage's pool is released after it: the need is the UNet's weights
// and the largest stage (its components' weights and its functions' storage).
// Tiles swap the whole decoder's storage for the tile decoder's (and the whole
// encoder's for the tile encoder's, where the build has one).
// The glue functions (guidance, scheduler updates, RGBA) count in every stage.
// A task that encodes an image (image to image) adds the VAE encoder's stage;
// other tasks never upload its weights.

/** @typedef {import("./sd_model.js").Manifest} Manifest */
/** @typedef {import("./sd_model.js").KernelPath} KernelPath */

/** The function that encodes an image, and the component of its weights. */
const ENCODER = "vae_encode";

/**
 * @typedef {object} MemoryMode
 * @property {boolean} offload  Sequential offload.
 * @property {boolean} tiles  The VAE in tiles: decode, and encode where the build can.
 */

/** The modes in the order a budget tries them: the cheapest in time first. */
export const MEMORY_MODES = Object.freeze(/** @type {MemoryMode[]} */ ([
  { offload: false, tiles: false },
  { offload: false, tiles: true },
  { offload: true, tiles: false },
  { offload: true, tiles: true },
]));

/**
 * The functions each stage of a generation runs with weights: the text encoders,
 * the image's encoder (when the task encodes one), the UNet, and the decoder
 * (the encoder and the decoder whole or their tile functions).
 * @param {Manifest} manifest
 * @param {boolean} tiles
 * @param {boolean} encode
 * @returns {{text: string[], encode: string[], denoise: string[], decode: string[]}}
 */
function stageFunctions(manifest, tiles, encode) {
  const withWeights = Object.entries(manifest.functions).filter(([, f]) => f.params);
  const text = withWeights.filter(([, f]) => f.params?.startsWith("text_encoder")).map(([n]) => n);
  const decode = tiles && manifest.vae_tiling ? manifest.vae_tiling.function : "vae_decode";
  const encoder = (tiles && manifest.vae_tiling?.encode_function) || ENCODER;
  return { text, encode: encode && manifest.functions[ENCODER] ? [encoder] : [], denoise: ["unet"], decode: [decode] };
}

/**
 * The GPU bytes a generation of `manifest`'s build needs on kernel path `path` in `mode`,
 * or null when the build does not state its memory.
 * @param {Manifest} manifest
 * @param {KernelPath} path
 * @param {MemoryMode} mode
 * @param {{encode?: boolean}} [task]  encode: the task encodes an image (image to image).
 * @returns {number | null}
 */
export function memoryNeed(manifest, path, { offload, tiles }, { encode = false } = {}) {
  const memory = path.memory;
  if (!memory) return null;
  const workspace = (/** @type {string} */ fn) => memory.workspace[fn] ?? 0;
  const weights = (/** @type {string[]} */ fns) =>
    [...new Set(fns.map((f) => manifest.functions[f]?.params).filter((c) => typeof c === "string"))]
      .reduce((sum, c) => sum + (memory.weights[c] ?? 0), 0);
  const stages = stageFunctions(manifest, tiles, encode);
  const modelFunctions = new Set(Object.entries(manifest.functions).filter(([, f]) => f.params).map(([n]) => n));
  const glue = Object.keys(memory.workspace).filter((f) => !modelFunctions.has(f)).reduce((s, f) => s + workspace(f), 0);
  if (!offload) {
    const all = [...stages.text, ...stages.encode, ...stages.denoise, ...stages.decode];
    const weightSum = Object.entries(memory.weights)
      .filter(([c]) => encode || c !== ENCODER).reduce((sum, [, bytes]) => sum + bytes, 0);
    return weightSum + all.reduce((s, f) => s + workspace(f), 0) + glue;
  }
  const stage = (/** @type {string[]} */ fns) => weights(fns.filter((f) => f !== "unet")) + fns.reduce((s, f) => s + workspace(f), 0);
  const largest = Math.max(stage(stages.text), stage(stages.encode), stage(stages.denoise), stage(stages.decode));
  return weights(["unet"]) + largest + glue;
}

/**
 * The first memory mode (MEMORY_MODES' order) whose need fits `budget` bytes; the
 * user's choices (`offload`, `tiles`: true or false fixes them, null leaves them
 * to the budget) are kept. Throws one line when none fits.
 * @param {Manifest} manifest
 * @param {KernelPath} path
 * @param {number} budget  Bytes; Infinity: no budget.
 * @param {{offload?: boolean | null, tiles?: boolean | null, encode?: boolean}} [fixed]
 *   encode: the task encodes an image (memoryNeed).
 * @returns {MemoryMode & {need: number | null}}
 */
export function chooseMemoryMode(manifest, path, budget, { offload = null, tiles = null, encode = false } = {}) {
  const canTile = Boolean(manifest.vae_tiling);
  const modes = MEMORY_MODES.filter((m) =>
    (offload === null || m.offload === offload) && (tiles === null || m.tiles === tiles) && (canTile || !m.tiles));
  const needs = modes.map((mode) => ({ ...mode, need: memoryNeed(manifest, path, mode, { encode }) }));
  const fits = needs.find((m) => m.need === null || m.need <= budget);
  if (fits) return fits;
  // On a tie the later mode (which saves more) is the one to name.
  const least = needs.reduce((a, b) => (/** @type {number} */ (b.need) <= /** @type {number} */ (a.need) ? b : a));
  const gib = (/** @type {number} */ b) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);
  const how = [least.offload ? "sequential offload" : "", least.tiles ? "tiled VAE decode" : ""].filter(Boolean).join(" and ");
  throw new Error(
    `this build needs ${gib(/** @type {number} */ (least.need))} of GPU memory${how ? ` even with ${how}` : ""}, ` +
      `over the budget of ${gib(budget)}: raise the budget, or use a smaller build (fp16, a smaller image)`,
  );
}
