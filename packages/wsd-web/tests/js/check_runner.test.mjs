import assert from "node:assert/strict";
import { test } from "node:test";

import { maxAbsDifference } from "../../src/wsd_web/static/js/check_runner.js";

test("max abs difference", () => {
  assert.equal(maxAbsDifference(new Float32Array([1, 2, 3]), new Float32Array([1, 2.5, 2])), 1);
  assert.equal(maxAbsDifference(new Float32Array([]), new Float32Array([])), 0);
});

test("a NaN anywhere is the worst error", () => {
  assert.ok(Number.isNaN(maxAbsDifference(new Float32Array([0, NaN, 5]), new Float32Array([0, 0, 0]))));
});

test("lengths must agree", () => {
  assert.throws(() => maxAbsDifference(new Float32Array(2), new Float32Array(3)), /length 2 != 3/);
});
