import assert from "node:assert/strict";
import { test } from "node:test";

import { randomShard } from "../../src/wsd_web/node/load_build.mjs";

/** A shard of one record per dtype, 16 bytes each. */
const shard = {
  nbytes: 64,
  records: [
    { name: "w.packed", dtype: "uint32", shape: [4], byteOffset: 0, nbytes: 16 },
    { name: "w.scales", dtype: "float16", shape: [8], byteOffset: 16, nbytes: 16 },
    { name: "bias", dtype: "float32", shape: [4], byteOffset: 32, nbytes: 16 },
    { name: "ids", dtype: "int32", shape: [4], byteOffset: 48, nbytes: 16 },
  ],
};

test("random weights are seeded, small floats, random packed words, zero other integers", () => {
  const a = randomShard(/** @type {any} */ (shard), 1);
  assert.deepEqual(a, randomShard(/** @type {any} */ (shard), 1));
  assert.notDeepEqual(a, randomShard(/** @type {any} */ (shard), 2));
  const words = new Uint32Array(a.buffer, 0, 4);
  assert.equal(new Set(words).size, 4);
  const floats = new Float32Array(a.buffer, 32, 4);
  assert.ok(floats.every((x) => Math.abs(x) < 0.05 && x !== 0));
  assert.deepEqual([...new Int32Array(a.buffer, 48, 4)], [0, 0, 0, 0]);
});
