// The generation's parameters in the PNG the page saves, as other Stable
// Diffusion tools write them: an iTXt chunk (UTF-8) with the keyword
// "parameters" and the text "PROMPT\nNegative prompt: ...\nSteps: N, Sampler:
// ..., CFG scale: G, Seed: S, Size: WxH, ...", so that tools that read
// AUTOMATIC1111-style parameters read ours.

/** @typedef {import("./sd_pipeline.js").Generation} Generation */
/** @typedef {import("./sd_model.js").Manifest} Manifest */

/**
 * The parameters text of a generation.
 * @param {Generation} generation
 * @param {Manifest} manifest
 * @param {string} task
 * @param {{name: string, scale: number}[]} [loras]  The LoRAs merged, with their scales.
 * @returns {string}
 */
export function parametersText(generation, manifest, task, loras = []) {
  const s = generation.settings;
  const fields = [
    ["Steps", s.steps],
    ["Sampler", generation.scheduler],
    ["CFG scale", s.guidance],
    ["Seed", s.seed],
    ["Size", `${generation.width}x${generation.height}`],
    ["Model", manifest.model.source],
    ["Model build", manifest.build_id],
    ["Precision", manifest.model.precision],
    ["Task", task],
    ...(s.strength === null ? [] : [["Denoising strength", s.strength]]),
    ...(loras.length === 0 ? [] : [["LoRAs", `"${loras.map((l) => `${l.name}:${l.scale}`).join(", ")}"`]]),
  ];
  const negative = s.negativePrompt ? `\nNegative prompt: ${s.negativePrompt}` : "";
  return `${s.prompt}${negative}\n${fields.map(([k, v]) => `${k}: ${v}`).join(", ")}`;
}

/** @type {Uint32Array | null} */
let crcTable = null;

/**
 * CRC-32 (ISO-HDLC, as PNG's chunks carry it) of `bytes`.
 * @param {Uint8Array} bytes
 */
function crc32(bytes) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of bytes) crc = crcTable[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * `png` with an uncompressed iTXt chunk (keyword, UTF-8 text) before its IEND.
 * @param {Uint8Array} png
 * @param {string} keyword  Latin-1, 1 to 79 characters.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function withTextChunk(png, keyword, text) {
  const iend = png.length - 12;
  if (iend < 8 || String.fromCharCode(...png.subarray(iend + 4, iend + 8)) !== "IEND") {
    throw new Error("not a PNG that ends in IEND");
  }
  const encoder = new TextEncoder();
  // keyword, NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL, text.
  const data = new Uint8Array([...encoder.encode(keyword), 0, 0, 0, 0, 0, ...encoder.encode(text)]);
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set(encoder.encode("iTXt"), 4);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  const out = new Uint8Array(png.length + chunk.length);
  out.set(png.subarray(0, iend));
  out.set(chunk, iend);
  out.set(png.subarray(iend), iend + chunk.length);
  return out;
}
