import assert from "node:assert/strict";
import { test } from "node:test";

import { float32Values, parseTensorCacheIndex, readTensors } from "../../src/wsd_web/static/js/tensor_cache.js";

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
