import assert from "node:assert/strict";
import { test } from "node:test";

import {
  float32Values, parseTensorCacheIndex, readTensors, widenFloat16,
} from "../../src/wsd_web/static/js/tensor_cache.js";

/** A two-tensor shard: a float32[2] then an int32[1], as wsd-artifacts writes it. */
function fixture() {
  const bytes = new Uint8Array(12);
  new DataView(bytes.buffer).setFloat32(0, 1.5, true);
  new DataView(bytes.buffer).setFloat32(4, -2, true);
  new DataView(bytes.buffer).setInt32(8, 7, true);
  const index = {
    metadata: { kind: "test" },
    records: [{
      dataPath: "shard-a.bin", format: "raw-shard", nbytes: 12, integrity: "sha384-x",
      records: [
        { name: "w", shape: [2], dtype: "float32", format: "raw", nbytes: 8, byteOffset: 0 },
        { name: "n", shape: [1], dtype: "int32", format: "raw", nbytes: 4, byteOffset: 8 },
      ],
    }],
  };
  return { index, bytes };
}

test("parses shards and records", () => {
  const parsed = parseTensorCacheIndex(fixture().index);
  assert.deepEqual(parsed.metadata, { kind: "test" });
  assert.equal(parsed.shards[0].integrity, "sha384-x");
  assert.deepEqual(parsed.shards[0].records.map((r) => r.name), ["w", "n"]);
});

test("reads tensors out of their shard", async () => {
  const { index, bytes } = fixture();
  /** @type {string[]} */
  const fetched = [];
  const tensors = await readTensors(parseTensorCacheIndex(index), async (path) => {
    fetched.push(path);
    return bytes;
  });
  assert.deepEqual(fetched, ["shard-a.bin"]);
  assert.deepEqual(Array.from(float32Values(/** @type {any} */ (tensors.get("w")))), [1.5, -2]);
  assert.throws(() => float32Values(/** @type {any} */ (tensors.get("n"))), /is int32, not float32/);
});

test("a truncated shard is named", async () => {
  const { index, bytes } = fixture();
  await assert.rejects(
    readTensors(parseTensorCacheIndex(index), async () => bytes.subarray(0, 11)),
    /shard-a.bin has 11 bytes, the index says 12/,
  );
});

test("malformed indexes are refused with the reason", () => {
  /** @type {Array<[unknown, RegExp]>} */
  const cases = [
    [null, /no records array/],
    [{ records: [{}] }, /shard 0 has no dataPath/],
    [{ records: [{ dataPath: "s", nbytes: 4, records: [{ name: "a", shape: [1], dtype: "float32", format: "f32-to-bf16", nbytes: 4, byteOffset: 0 }] }] }, /encoding f32-to-bf16/],
    [{ records: [{ dataPath: "s", nbytes: 8, records: [{ name: "a", shape: [1], dtype: "float64", nbytes: 8, byteOffset: 0 }] }] }, /unsupported dtype float64/],
    [{ records: [{ dataPath: "s", nbytes: 8, records: [{ name: "a", shape: [3], dtype: "float32", nbytes: 8, byteOffset: 0 }] }] }, /its shape needs 12/],
    [{ records: [{ dataPath: "s", nbytes: 4, records: [{ name: "a", shape: [2], dtype: "float32", nbytes: 8, byteOffset: 0 }] }] }, /beyond the end of s/],
  ];
  for (const [doc, message] of cases) assert.throws(() => parseTensorCacheIndex(doc), message);
});

/**
 * The value of a float16 bit pattern, decoded independently of the module:
 * (-1)^s * 2^(e-15) * (1 + m/1024), subnormals (-1)^s * 2^-14 * (m/1024).
 * @param {number} h
 */
function halfValue(h) {
  const s = h >> 15;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const sign = s ? -1 : 1;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * 2 ** -14 * (m / 1024);
  return sign * 2 ** (e - 15) * (1 + m / 1024);
}

/** @param {number[]} halves  Bit patterns. */
function halfBytes(halves) {
  const bytes = new Uint8Array(halves.length * 2);
  halves.forEach((h, i) => new DataView(bytes.buffer).setUint16(2 * i, h, true));
  return bytes;
}

/** @param {Uint8Array} bytes  Little-endian float32s. */
function floats(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(4 * i, true));
}

test("every float16 value widens to the same float32 value", () => {
  const all = Array.from({ length: 0x10000 }, (_, h) => h);
  const widened = widenFloat16(halfBytes(all));
  assert.equal(widened.byteLength, 4 * 0x10000);
  const values = floats(widened);
  for (const h of all) {
    const expected = halfValue(h);
    if (Number.isNaN(expected)) assert.ok(Number.isNaN(values[h]), `0x${h.toString(16)}`);
    else assert.ok(Object.is(values[h], expected), `0x${h.toString(16)}: ${values[h]} != ${expected}`);
  }
});

test("each class of value widens exactly: normals, subnormals, zeros, infinities, NaN", () => {
  const cases = [
    [0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x7bff, 65504], [0x0400, 2 ** -14], // normals
    [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x8001, -(2 ** -24)], // subnormals
    [0x0000, 0], [0x8000, -0], [0x7c00, Infinity], [0xfc00, -Infinity],
  ];
  const values = floats(widenFloat16(halfBytes(cases.map(([h]) => h))));
  cases.forEach(([h, v], i) => assert.ok(Object.is(values[i], v), `0x${h.toString(16)}: ${values[i]} != ${v}`));
  // NaNs stay NaN, quiet or signalling, with their payload in the top fraction bits.
  const nans = widenFloat16(halfBytes([0x7e00, 0x7c01, 0xfe5a]));
  const bits = new DataView(nans.buffer);
  assert.deepEqual([0, 1, 2].map((i) => bits.getUint32(4 * i, true)), [0x7fc00000, 0x7f802000, 0xffcb4000]);
});

test("float16 bytes at an odd offset widen the same, and an odd length is refused", () => {
  const halves = [0x3c00, 0x0001, 0xfc00, 0x7bff];
  const shifted = new Uint8Array(9);
  shifted.set(halfBytes(halves), 1);
  assert.deepEqual(floats(widenFloat16(shifted.subarray(1))), floats(widenFloat16(halfBytes(halves))));
  assert.deepEqual(floats(widenFloat16(shifted.subarray(1))), [1, 2 ** -24, -Infinity, 65504]);
  assert.throws(() => widenFloat16(new Uint8Array(3)), /3 bytes: not a whole number of values/);
});
