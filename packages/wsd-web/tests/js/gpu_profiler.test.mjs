import assert from "node:assert/strict";
import { test } from "node:test";

import { KernelProfiler, kernelTimes } from "../../src/wsd_web/node/gpu_profiler.mjs";

test("pass times are summed per kernel, largest first", () => {
  const names = ["conv", "norm", "conv", "add"];
  const stamps = [0n, 3_000_000n, 3_000_000n, 3_500_000n, 4_000_000n, 6_000_000n, 6_000_000n, 6_000_000n];
  assert.deepEqual(kernelTimes(names, stamps), [
    { name: "conv", calls: 2, ms: 5 },
    { name: "norm", calls: 1, ms: 0.5 },
    { name: "add", calls: 1, ms: 0 },
  ]);
});

test("a pass whose end stamp precedes its start counts as zero time", () => {
  assert.deepEqual(kernelTimes(["k"], [10n, 5n]), [{ name: "k", calls: 1, ms: 0 }]);
});

test("a device without timestamp-query is refused with what is missing", () => {
  const device = /** @type {any} */ ({ features: new Set() });
  assert.throws(() => new KernelProfiler(device, { wrapDispatches() {} }), /no timestamp-query feature/);
});
