import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MT19937,
  TorchGenerator,
  cephesLogf,
  cephesSincosf,
  checkSeed,
  fma32,
  fmaTie,
  numelOf,
  randn,
} from "../../src/wsd_web/static/js/torch_random.js";

/** @param {Float32Array} a */
function bits(a) {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length), (b) => `0x${b.toString(16).padStart(8, "0")}`);
}

test("mt19937 matches the published reference stream for seed 5489", () => {
  const mt = new MT19937(5489);
  assert.equal(mt.nextUint32(), 3499211612);
  for (let i = 2; i < 10000; i++) mt.nextUint32();
  assert.equal(mt.nextUint32(), 4123659995); // the 10000th output
});

test("TorchGenerator.random() is the raw engine stream of the low 32 seed bits", () => {
  const g = new TorchGenerator(5489);
  assert.equal(g.random(), 3499211612);
  const a = new TorchGenerator(2n ** 32n + 5489n);
  assert.equal(a.random(), 3499211612);
  assert.equal(a.initialSeed(), 2n ** 32n + 5489n);
});

test("seeds: non-negative integers up to 2**53 or bigints up to 2**64-1", () => {
  assert.equal(checkSeed(0), 0n);
  assert.equal(checkSeed(2 ** 53), 2n ** 53n);
  assert.equal(checkSeed(2n ** 64n - 1n), 2n ** 64n - 1n);
  for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 53 + 2, -0.5]) {
    assert.throws(() => new TorchGenerator(bad), /seed must be a non-negative integer/);
  }
  assert.throws(() => new TorchGenerator(-1n), /seed must be in \[0, 2\*\*64 - 1\]/);
  assert.throws(() => new TorchGenerator(2n ** 64n), /seed must be in/);
  assert.throws(() => new TorchGenerator(/** @type {any} */ ("42")), /number or a bigint/);
  assert.throws(() => randn(/** @type {any} */ (null), [4]), /number or a bigint/);
});

test("shapes: sizes, scalars, empties and rejects", () => {
  assert.equal(numelOf([2, 4, 9, 7]), 504);
  assert.equal(numelOf([]), 1);
  assert.equal(randn(0, []).length, 1);
  assert.equal(randn(0, [1, 4, 8, 8]).length, 256);
  assert.equal(randn(0, [3, 0, 2]).length, 0);
  for (const bad of [[-1], [1.5], [Number.NaN], [2 ** 20, 2 ** 20]]) {
    assert.throws(() => randn(0, bad), /shape/);
  }
  assert.throws(() => randn(0, /** @type {any} */ (16)), /shape must be an array/);
});

test("known torch values (torch 2.13 CPU, x86-64)", () => {
  // torch.randn(5, generator=torch.Generator().manual_seed(0)): the scalar path
  assert.deepEqual(bits(randn(0, [5])), ["0x3fc53f5c", "0xbe963c50", "0xc00b7149", "0x3f1184b6", "0xbf8ad1a1"]);
  // torch.randn(20, generator=torch.Generator().manual_seed(42))[[0, 1, 3, 4, 15, 16, 19]]
  const a = randn(42, [20]);
  assert.deepEqual(bits(Float32Array.from([0, 1, 3, 4, 15, 16, 19], (i) => a[i])), [
    "0x3ff6a529", "0x3fbe5f53", "0xc006c0db", "0xbf4214e2", "0x3f5c1fb0", "0xbe9e9482", "0xbf1f20e0",
  ]);
});

test("deterministic, and seeds equal modulo 2**32 agree", () => {
  assert.deepEqual(randn(7, [1, 4, 9, 9]), randn(7, [1, 4, 9, 9]));
  assert.deepEqual(randn(7, [300]), randn(2n ** 32n + 7n, [300]));
  assert.notDeepEqual(randn(7, [300]), randn(8, [300]));
});

test("a tail redraws the last 16 values from fresh uniforms", () => {
  const a = randn(3, [17]);
  const b = randn(3, [16]);
  assert.equal(a[0], b[0]); // block 0 is the same, positions 1..16 are redrawn
  assert.notEqual(a[1], b[1]);
  // 17 values consume 33 uniforms, so a following draw starts at uniform 33.
  const g = new TorchGenerator(3);
  g.randn([17]);
  const next = g.randn([16]);
  const h = new TorchGenerator(3);
  for (let i = 0; i < 33; i++) h.random();
  assert.deepEqual(next, h.randn([16]));
});

test("the small path caches the second Box-Muller sample across calls", () => {
  const two = randn(11, [2]);
  const g = new TorchGenerator(11);
  assert.equal(g.randn([1])[0], two[0]);
  assert.equal(g.randn([1])[0], two[1]);
  // A large draw in between neither uses nor clears the cache.
  const h = new TorchGenerator(11);
  h.randn([1]);
  h.randn([32]);
  assert.equal(h.randn([1])[0], two[1]);
  // manualSeed clears it and restarts the stream.
  h.randn([1]);
  h.manualSeed(11);
  assert.deepEqual(h.randn([2]), two);
});

test("successive large draws continue the stream", () => {
  const g = new TorchGenerator(5);
  const first = g.randn([64]);
  const second = g.randn([64]);
  assert.deepEqual(first, randn(5, [64]));
  const whole = randn(5, [128]);
  assert.deepEqual(Array.from(second), Array.from(whole.subarray(64)));
});

test("values look standard normal", () => {
  const a = randn(1234, [1, 4, 128, 128]);
  let sum = 0;
  let sq = 0;
  for (const v of a) {
    assert.ok(Number.isFinite(v));
    sum += v;
    sq += v * v;
  }
  const mean = sum / a.length;
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(sq / a.length - mean * mean - 1) < 0.03, "variance");
});

test("a [1,4,128,128] draw is fast", () => {
  randn(1, [1, 4, 128, 128]); // warm up the JIT
  const t0 = performance.now();
  randn(2, [1, 4, 128, 128]);
  const ms = performance.now() - t0;
  assert.ok(ms < 100, `65536 values took ${ms.toFixed(1)} ms`);
});

/**
 * The exact float32 fma, via BigInt: every float32 is an integer times 2**-149.
 * @param {number} a
 * @param {number} b
 * @param {number} c
 */
function exactFma32(a, b, c) {
  /** @param {number} x */
  const scaled = (x) => BigInt(x * 2 ** 149); // exact for float32 values < 2**24
  const sum = scaled(a) * scaled(b) + scaled(c) * 2n ** 149n; // units of 2**-298
  if (sum === 0n) return 0;
  const neg = sum < 0n;
  const mag = neg ? -sum : sum;
  const len = mag.toString(2).length;
  const drop = BigInt(Math.max(len - 24, 0));
  let q = mag >> drop;
  const rem = mag - (q << drop);
  const half = drop > 0n ? 1n << (drop - 1n) : 0n;
  if (drop > 0n && (rem > half || (rem === half && (q & 1n) === 1n))) q += 1n;
  const v = Number(q) * 2 ** (Number(drop) - 298);
  return neg ? -v : v;
}

test("fma32 is the correctly rounded float32 fma, ties included", () => {
  const f = Math.fround;
  // Crafted double-rounding cases: a*b + c lands on a float32 midpoint only
  // after rounding to double.
  const a = f(2 ** -16 * (1 + 2 ** -23));
  const b = f(1 - 2 ** -23);
  assert.equal(fma32(a, b, f(257 + 2 ** -15)), 257 + 2 ** -15);
  assert.equal(f(a * b + f(257 + 2 ** -15)), 257 + 2 ** -14); // naive double rounding
  assert.equal(fma32(a, b, 257), 257);
  assert.equal(fma32(-a, b, -257), -257);
  assert.equal(fma32(2 ** -16, 1, 257), 257); // a true tie: to even
  assert.equal(fma32(2 ** -16, 1, f(257 + 2 ** -15)), 257 + 2 ** -14);
  assert.equal(fmaTie(2 ** -16, 257, 257 + 2 ** -16, 257, 257 + 2 ** -15), 257);
  for (const [x, y, z] of [[a, b, f(257 + 2 ** -15)], [a, b, 257], [3, 5, 7], [0.1, 0.2, 0.3]]) {
    assert.equal(fma32(f(x), f(y), f(z)), exactFma32(f(x), f(y), f(z)));
  }
  // Random moderate operands, like the polynomial steps.
  let state = 12345;
  const rnd = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  for (let i = 0; i < 3000; i++) {
    const x = f((rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
    const y = f((rnd() - 0.5) * 2 ** Math.floor(rnd() * 20 - 10));
    const z = f((rnd() - 0.5) * 2 ** Math.floor(rnd() * 40 - 20));
    assert.equal(fma32(x, y, z), exactFma32(x, y, z), `fma32(${x}, ${y}, ${z})`);
  }
});

test("Cephes log and sincos are float32-accurate approximations", () => {
  assert.equal(cephesLogf(1), 0);
  assert.ok(Math.abs(cephesLogf(0.5) - Math.log(0.5)) < 1e-7);
  assert.ok(Math.abs(cephesLogf(2 ** -24) - Math.log(2 ** -24)) < 1e-5);
  for (let k = 1; k <= 2 ** 24; k += 99991) {
    const x = k * 2 ** -24;
    assert.ok(Math.abs(cephesLogf(x) - Math.log(x)) <= 2e-7 * Math.max(1, Math.abs(Math.log(x))), `log ${x}`);
  }
  const out = new Float64Array(2);
  for (let t = 0; t < 6.3; t += 0.01) {
    const theta = Math.fround(t);
    cephesSincosf(theta, out);
    assert.ok(Math.abs(out[0] - Math.sin(theta)) < 2e-7 && Math.abs(out[1] - Math.cos(theta)) < 2e-7, `sincos ${theta}`);
    const [s, c] = out;
    cephesSincosf(-theta, out);
    assert.equal(out[0], -s); // odd
    assert.equal(out[1], c); // even
  }
});
