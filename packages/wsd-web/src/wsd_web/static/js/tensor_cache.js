// The tvmjs tensor-cache format, as wsd-artifacts writes it: an index
// (tensor-cache.json) whose records are shards, each listing the raw tensors
// packed into it. This module parses and checks the index and reads tensors
// out of shard bytes; fetching the bytes is the caller's business.

/**
 * @typedef {object} TensorRecord
 * @property {string} name
 * @property {number[]} shape
 * @property {string} dtype
 * @property {number} nbytes
 * @property {number} byteOffset
 */

/**
 * @typedef {object} ShardRecord
 * @property {string} dataPath
 * @property {number} nbytes
 * @property {string} integrity  sha384 SRI of the shard ("" when not recorded)
 * @property {TensorRecord[]} records
 */

/**
 * @typedef {object} TensorCacheIndex
 * @property {Record<string, unknown>} metadata
 * @property {ShardRecord[]} shards
 */

/** Bytes per element of every dtype the cache may hold. */
export const DTYPE_BYTES = Object.freeze({
  float32: 4, float16: 2, int32: 4, uint32: 4, int8: 1, uint8: 1,
});

/**
 * @param {string} what
 * @returns {never}
 */
function bad(what) {
  throw new Error(`tensor-cache.json is malformed: ${what}; rebuild the weights`);
}

/**
 * Parse and validate a tensor-cache index.
 * @param {unknown} json  The parsed JSON of tensor-cache.json.
 * @returns {TensorCacheIndex}
 */
export function parseTensorCacheIndex(json) {
  if (typeof json !== "object" || json === null || !Array.isArray(/** @type {any} */ (json).records)) {
    bad("no records array");
  }
  const doc = /** @type {{metadata?: Record<string, unknown>, records: any[]}} */ (json);
  const shards = doc.records.map((shard, i) => {
    if (typeof shard.dataPath !== "string" || !Array.isArray(shard.records)) {
      bad(`shard ${i} has no dataPath or records`);
    }
    /** @type {TensorRecord[]} */
    const records = shard.records.map((/** @type {any} */ r) => {
      if (r.format !== undefined && r.format !== "raw") {
        bad(`tensor ${r.name} uses encoding ${r.format}; only raw is supported`);
      }
      const itemBytes = DTYPE_BYTES[/** @type {keyof typeof DTYPE_BYTES} */ (r.dtype)];
      if (itemBytes === undefined) bad(`tensor ${r.name} has unsupported dtype ${r.dtype}`);
      const expected = r.shape.reduce((/** @type {number} */ a, /** @type {number} */ b) => a * b, 1) * itemBytes;
      if (r.nbytes !== expected) bad(`tensor ${r.name} has nbytes ${r.nbytes}, its shape needs ${expected}`);
      if (r.byteOffset + r.nbytes > shard.nbytes) bad(`tensor ${r.name} lies beyond the end of ${shard.dataPath}`);
      return { name: r.name, shape: r.shape, dtype: r.dtype, nbytes: r.nbytes, byteOffset: r.byteOffset };
    });
    return { dataPath: shard.dataPath, nbytes: shard.nbytes, integrity: shard.integrity ?? "", records };
  });
  return { metadata: doc.metadata ?? {}, shards };
}

/**
 * Read every tensor of a cache: fetch each shard once and slice it.
 * @param {TensorCacheIndex} index
 * @param {(path: string) => Promise<Uint8Array>} fetchBytes  Fetches a file relative to the cache.
 * @returns {Promise<Map<string, {record: TensorRecord, bytes: Uint8Array}>>}
 */
export async function readTensors(index, fetchBytes) {
  /** @type {Map<string, {record: TensorRecord, bytes: Uint8Array}>} */
  const out = new Map();
  for (const shard of index.shards) {
    const data = await fetchBytes(shard.dataPath);
    if (data.byteLength !== shard.nbytes) {
      throw new Error(
        `${shard.dataPath} has ${data.byteLength} bytes, the index says ${shard.nbytes}: ` +
        "the file is truncated or from another build",
      );
    }
    for (const record of shard.records) {
      out.set(record.name, { record, bytes: data.subarray(record.byteOffset, record.byteOffset + record.nbytes) });
    }
  }
  return out;
}

/**
 * The values of a float32 tensor as a Float32Array (copied, so alignment never matters).
 * @param {{record: TensorRecord, bytes: Uint8Array}} tensor
 * @returns {Float32Array}
 */
export function float32Values(tensor) {
  if (tensor.record.dtype !== "float32") {
    throw new Error(`tensor ${tensor.record.name} is ${tensor.record.dtype}, not float32`);
  }
  return new Float32Array(tensor.bytes.slice().buffer);
}

/**
 * The float32 bit pattern of a float16 bit pattern: the same value, exactly
 * (NaN payloads too: the half's 10 fraction bits are the top ones of the float's).
 * @param {number} h
 * @returns {number}
 */
function halfToFloatBits(h) {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >> 10) & 0x1f;
  let fraction = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (fraction << 13)) >>> 0; // ±inf, NaN
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (fraction << 13)) >>> 0;
  if (fraction === 0) return sign >>> 0; // ±0
  // Subnormal (fraction * 2^-24): shift the leading one into the implicit bit.
  let biased = 113;
  while (!(fraction & 0x400)) {
    fraction <<= 1;
    biased -= 1;
  }
  return (sign | (biased << 23) | ((fraction & 0x3ff) << 13)) >>> 0;
}

/** The float32 bits of every float16 bits, made on first use (256 KiB). @type {Uint32Array | null} */
let widenTable = null;

/**
 * Float16 values as float32 ones: little-endian IEEE half floats in, little-endian
 * floats out (twice the bytes), every value exact (normal, subnormal, ±0, ±inf, NaN).
 * @param {Uint8Array} bytes  Any offset; an even length.
 * @returns {Uint8Array}
 */
export function widenFloat16(bytes) {
  if (bytes.byteLength % 2 !== 0) throw new Error(`float16 data of ${bytes.byteLength} bytes: not a whole number of values`);
  if (!widenTable) {
    widenTable = new Uint32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) widenTable[h] = halfToFloatBits(h);
  }
  const table = widenTable;
  const n = bytes.byteLength / 2;
  // Typed arrays use the platform's byte order, little-endian wherever WebGPU runs (tvmjs assumes it too).
  const out = new Uint32Array(n);
  if (bytes.byteOffset % 2 === 0) {
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = table[halves[i]];
  } else {
    for (let i = 0; i < n; i++) out[i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
  }
  return new Uint8Array(out.buffer);
}
