// A .safetensors file, read as untrusted input: an 8-byte little-endian header
// length, a JSON header (each tensor's dtype, shape and byte range in the data
// that follows, and an optional "__metadata__" of strings), then the data.
// Every length, range and shape is checked against the file before a byte of
// tensor data is read; what does not add up is refused with one line that says
// what is wrong.

import { widenFloat16 } from "./tensor_cache.js";

/** The largest file read (browsers cap an ArrayBuffer at about 2 GiB). */
export const MAX_FILE_BYTES = 2 ** 31 - 1;
/** The largest header: a LoRA's is tens of KiB; more is not a LoRA. */
export const MAX_HEADER_BYTES = 16 * 2 ** 20;

/** Bytes per element of the dtypes read. */
const ITEM_BYTES = Object.freeze({ F32: 4, F16: 2, BF16: 2 });

/**
 * @typedef {object} SafeTensor
 * @property {"F32" | "F16" | "BF16"} dtype
 * @property {number[]} shape
 * @property {Uint8Array} bytes  Its data (a view into the file).
 */

/**
 * @typedef {object} SafeTensors
 * @property {Map<string, SafeTensor>} tensors
 * @property {Record<string, string>} metadata  The header's "__metadata__" (empty when absent).
 */

/**
 * @param {string} what  The file's name, for messages.
 * @param {string} why
 */
const refuse = (what, why) => new Error(`${what} is not a usable .safetensors file: ${why}`);

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
const isRecord = (value) => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Check one header entry and return the tensor it describes.
 * @param {string} what
 * @param {string} name
 * @param {unknown} entry
 * @param {Uint8Array} data  The bytes after the header.
 * @returns {SafeTensor}
 */
function tensorOf(what, name, entry, data) {
  if (!isRecord(entry)) throw refuse(what, `the header entry of ${name} is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== "string" || !Object.hasOwn(ITEM_BYTES, dtype)) {
    throw refuse(what, `${name} is ${JSON.stringify(dtype)}; LoRA weights must be F32, F16 or BF16`);
  }
  if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw refuse(what, `${name} has the shape ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw refuse(what, `${name} has the data offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets;
  const size = shape.reduce((n, d) => n * d, 1) * ITEM_BYTES[/** @type {"F32" | "F16" | "BF16"} */ (dtype)];
  if (end < begin || end > data.byteLength) {
    throw refuse(what, `${name}'s bytes [${begin}, ${end}) lie beyond the file's ${data.byteLength} bytes of data (truncated?)`);
  }
  if (end - begin !== size) throw refuse(what, `${name} holds ${end - begin} bytes, its shape needs ${size}`);
  return { dtype: /** @type {"F32" | "F16" | "BF16"} */ (dtype), shape, bytes: data.subarray(begin, end) };
}

/**
 * Parse a .safetensors file.
 * @param {Uint8Array} file
 * @param {string} [what]  The file's name, for messages.
 * @returns {SafeTensors}
 */
export function parseSafetensors(file, what = "the file") {
  if (file.byteLength > MAX_FILE_BYTES) throw refuse(what, `it has ${file.byteLength} bytes, more than the ${MAX_FILE_BYTES} read`);
  if (file.byteLength < 8) throw refuse(what, `it has ${file.byteLength} bytes, fewer than a header needs`);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const headerBytes = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerBytes > MAX_HEADER_BYTES) throw refuse(what, `its header claims ${headerBytes} bytes (at most ${MAX_HEADER_BYTES})`);
  if (8 + headerBytes > file.byteLength) throw refuse(what, `its header claims ${headerBytes} bytes, the file has ${file.byteLength} (truncated?)`);
  /** @type {unknown} */
  let header;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(file.subarray(8, 8 + headerBytes)));
  } catch (e) {
    throw refuse(what, `its header is not JSON (${e instanceof Error ? e.message : e})`);
  }
  if (!isRecord(header)) throw refuse(what, "its header is not a JSON object");
  const data = file.subarray(8 + headerBytes);
  /** @type {Map<string, SafeTensor>} */
  const tensors = new Map();
  /** @type {Record<string, string>} */
  let metadata = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isRecord(entry) || !Object.values(entry).every((v) => typeof v === "string")) {
        throw refuse(what, "its __metadata__ is not an object of strings");
      }
      metadata = /** @type {Record<string, string>} */ (entry);
    } else {
      tensors.set(name, tensorOf(what, name, entry, data));
    }
  }
  return { tensors, metadata };
}

/**
 * A tensor's values as float32 (F16 and BF16 widened exactly).
 * @param {SafeTensor} tensor
 * @returns {Float32Array}
 */
export function float32Values({ bytes, dtype }) {
  if (dtype === "F16") return new Float32Array(widenFloat16(bytes).buffer);
  const n = bytes.byteLength / ITEM_BYTES[dtype];
  if (dtype === "F32") return new Float32Array(bytes.slice().buffer, 0, n);
  // bfloat16: the upper half of a float32.
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16;
  return new Float32Array(out.buffer);
}
