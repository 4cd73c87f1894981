// Seeded Gaussian noise that is bit-identical to PyTorch on the CPU.
//
//   const g = new TorchGenerator(seed);   // torch.Generator().manual_seed(seed)
//   const latents = g.randn([1, 4, 64, 64]);  // torch.randn(shape, generator=g)
//   const noise = g.randn([1, 4, 64, 64]);    // the next draw, as torch would make it
//
// What is reproduced (read from the ATen 2.13 sources and headers:
// core/MT19937RNGEngine.h, core/DistributionsHelper.h,
// core/TransformationHelper.h, native/cpu/DistributionTemplates.h,
// native/cpu/avx_mathfun.h), for the default dtype float32:
//
// * The engine is mt19937 (32-bit). `manual_seed(s)` seeds it with the low
//   32 bits of the 64-bit seed (`state[0] = s & 0xffffffff`, then the usual
//   Knuth recurrence), so seeds equal modulo 2**32 give the same stream, and
//   it clears the cached normal sample (below).
// * A float uniform is `(u32 & (2**24-1)) * 2**-24`; a double uniform takes
//   `random64() = (u32_first << 32) | u32_second` and keeps its low 53 bits,
//   times 2**-53.
// * numel >= 16 (contiguous float tensor): `normal_fill`. All numel uniforms
//   are drawn first; then each whole block of 16 becomes 8 Box-Muller pairs,
//   lane j in (j, j+8): u1 = 1 - d[j], u2 = d[j+8], r = sqrt(-2 log u1),
//   t = 2pi u2, d[j] = r cos t, d[j+8] = r sin t. If numel % 16 != 0 the last
//   16 positions (overlapping the last whole block) are refilled with 16 fresh
//   uniforms and transformed again, so those 16 extra draws are consumed too.
//   On x86-64 the kernel torch runs is the AVX2 `NormalFill16<float>` (the
//   AVX512 capability gives the very same values: checked with
//   ATEN_CPU_CAPABILITY=avx512/avx2), whose log and sincos are NOT libm and
//   NOT SLEEF: they are Julien Pommier's Cephes-derived polynomials
//   `log256_ps` / `sincos256_ps` from avx_mathfun.h, evaluated in float32
//   and, because Linux wheels build that code with GCC, -mfma and GCC's
//   default -ffp-contract=fast, with every "multiply whose only use is an
//   add/sub" fused into one FMA. Both facts change last bits (a variant
//   without the FMAs differs from torch in ~1% of values), so below every
//   float32 step is emulated exactly: Math.fround after each rounding
//   operation, and a correctly rounded float32 fma (`fma32`) exactly where
//   GCC fuses.
// * numel < 16 (or 0): per element `normal_distribution<double>`:
//   u1, u2 = two double uniforms, r = sqrt(-2 log1p(-u2)), t = 2pi u1,
//   return r cos t and cache r sin t in the generator; the next scalar-path
//   element (in this call or a later small call) returns the cached value
//   first. The large path neither reads nor clears that cache. The double
//   result is rounded to float32. V8's Math.log1p/sin/cos are fdlibm, like
//   glibc's log1p; glibc's sin/cos can differ from fdlibm in the last bit of a
//   double very rarely, which survives the rounding to float32 with
//   probability ~2**-29 per value, i.e. never seen in practice.
//
// Verified bit for bit against torch 2.13.0+cpu (Linux x86-64 wheel, glibc
// 2.36), torch.backends.cpu.get_cpu_capability() == "AVX512" (and forced
// "AVX2"): ~25M values over random seeds below 2**64, sizes 1..2**22 with and
// without 16-tails, long mixed sequences of small and large draws from one
// generator, and 3.4M values of the small path (1..15 per draw, with its
// cache); see packages/wsd-web/tests/test_torch_random.py.
//
// Bit identity is therefore guaranteed only where torch runs that AVX2
// kernel with the same fusion: GCC-built x86-64 torch with CPU capability
// AVX2 or AVX512. Elsewhere torch itself computes the large path differently
// (DEFAULT capability and ARM: libm logf/cosf/sinf in a scalar loop; VSX:
// SLEEF; MSVC builds: no fusion), so these values follow the same stream and
// the same formula but differ from that torch's in the last bits: against
// ATEN_CPU_CAPABILITY=default, 38% of 4M values differed, by at most 2.3e-6
// absolute. The small (< 16) path is the same everywhere up to libm.

const MT_N = 624;
const MT_M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** The mt19937 engine exactly as ATen's `at::mt19937` runs it. */
export class MT19937 {
  /** @param {number} seed32  an unsigned 32-bit seed */
  constructor(seed32) {
    /** @type {Uint32Array} */
    this.state = new Uint32Array(MT_N);
    const s = this.state;
    s[0] = seed32 >>> 0;
    for (let j = 1; j < MT_N; j++) {
      const prev = s[j - 1];
      s[j] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + j) >>> 0;
    }
    /** @type {number} */
    this.left = 1;
    /** @type {number} */
    this.next = 0;
  }

  /** Regenerates the 624-word state (the "twist"). */
  twist() {
    const s = this.state;
    let k = 0;
    for (; k < MT_N - MT_M; k++) {
      const y = (s[k] & UPPER_MASK) | (s[k + 1] & LOWER_MASK);
      s[k] = s[k + MT_M] ^ (y >>> 1) ^ (s[k + 1] & 1 ? MATRIX_A : 0);
    }
    for (; k < MT_N - 1; k++) {
      const y = (s[k] & UPPER_MASK) | (s[k + 1] & LOWER_MASK);
      s[k] = s[k + MT_M - MT_N] ^ (y >>> 1) ^ (s[k + 1] & 1 ? MATRIX_A : 0);
    }
    const y = (s[MT_N - 1] & UPPER_MASK) | (s[0] & LOWER_MASK);
    s[MT_N - 1] = s[MT_M - 1] ^ (y >>> 1) ^ (s[0] & 1 ? MATRIX_A : 0);
    this.left = MT_N;
    this.next = 0;
  }

  /** @returns {number} the next output, an unsigned 32-bit integer */
  nextUint32() {
    if (--this.left === 0) this.twist();
    let y = this.state[this.next++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

const TWO_POW_M24 = 2 ** -24;
const TWO_POW_32 = 2 ** 32;
const TWO_POW_M53 = 2 ** -53;
const MAX_U64 = (1n << 64n) - 1n;

/**
 * Checks a seed the way the caller's torch would accept it and returns it as
 * a bigint: a non-negative integer number (at most 2**53) or bigint (at most
 * 2**64 - 1).
 * @param {unknown} seed
 * @returns {bigint}
 */
export function checkSeed(seed) {
  if (typeof seed === "bigint") {
    if (seed < 0n || seed > MAX_U64) {
      throw new Error(`seed must be in [0, 2**64 - 1], got ${seed}`);
    }
    return seed;
  }
  if (typeof seed === "number") {
    if (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 53) {
      throw new Error(
        `seed must be a non-negative integer of at most 2**53 (use a bigint for larger seeds), got ${seed}`,
      );
    }
    return BigInt(seed);
  }
  throw new Error(`seed must be a number or a bigint, got ${typeof seed}`);
}

/**
 * The element count of a shape, checked.
 * @param {readonly number[]} shape
 * @returns {number}
 */
export function numelOf(shape) {
  if (!Array.isArray(shape)) throw new Error("shape must be an array of non-negative integers");
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`shape must be an array of non-negative integers, got [${shape.join(", ")}]`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n) || n > 2 ** 31) {
    throw new Error(`shape [${shape.join(", ")}] has too many elements`);
  }
  return n;
}

// ---------------------------------------------------------------------------
// float32 arithmetic helpers

const fround = Math.fround;

/**
 * fma(a, b, c) rounded once to float32, for float32 inputs.
 *
 * a*b is exact in a double (24+24 bits), so `a * b + c` in doubles rounds
 * once, to 53 bits, and rounding that to float32 is already the correctly
 * rounded fma, except when the double lands exactly halfway between two
 * float32 values while the exact sum was not: then `fmaTie` breaks the tie
 * from the exact residual.
 * @param {number} a
 * @param {number} b
 * @param {number} c
 * @returns {number}
 */
export function fma32(a, b, c) {
  const hi = a * b + c;
  const r = fround(hi);
  const d = hi - r; // exact
  const o = r + 2 * d; // r's neighbour if hi is a midpoint
  if (d !== 0 && fround(o) === o) return fmaTie(a * b, c, hi, r, o);
  return r;
}

/**
 * The rare tie of `fma32`: hi = p + c rounded to double sits exactly between
 * the float32 values r and o; the exact residual of that rounding decides.
 * @param {number} p  a * b (exact)
 * @param {number} c
 * @param {number} hi  p + c rounded to double
 * @param {number} r  fround(hi)
 * @param {number} o  the other float32 neighbour of hi
 * @returns {number}
 */
export function fmaTie(p, c, hi, r, o) {
  const bv = hi - p;
  const lo = p - (hi - bv) + (c - bv); // TwoSum: p + c = hi + lo exactly
  if (lo === 0) return r; // a true tie: fround already rounded it to even
  return lo > 0 === o > r ? o : r;
}

// avx_mathfun.h constants, as float32 (`_PS256_CONST` stores floats).
// eslint-disable-next-line no-loss-of-precision -- avx_mathfun.h's digits; fround() keeps a float32 of them
const SQRTHF = fround(0.707106781186547524);
const LOG_P0 = fround(7.0376836292e-2);
const LOG_P1 = fround(-1.151461031e-1);
const LOG_P2 = fround(1.167699874e-1);
const LOG_P3 = fround(-1.2420140846e-1);
const LOG_P4 = fround(1.4249322787e-1);
const LOG_P5 = fround(-1.6668057665e-1);
const LOG_P6 = fround(2.0000714765e-1);
const LOG_P7 = fround(-2.4999993993e-1);
const LOG_P8 = fround(3.3333331174e-1);
const LOG_Q1 = fround(-2.1219444e-4);
const LOG_Q2 = fround(0.693359375);
const MINUS_DP1 = fround(-0.78515625);
const MINUS_DP2 = fround(-2.4187564849853515625e-4);
// eslint-disable-next-line no-loss-of-precision -- avx_mathfun.h's digits; fround() keeps a float32 of them
const MINUS_DP3 = fround(-3.77489497744594108e-8);
const SINCOF_P0 = fround(-1.9515295891e-4);
const SINCOF_P1 = fround(8.3321608736e-3);
const SINCOF_P2 = fround(-1.6666654611e-1);
const COSCOF_P0 = fround(2.443315711809948e-5);
const COSCOF_P1 = fround(-1.388731625493765e-3);
const COSCOF_P2 = fround(4.166664568298827e-2);
const FOPI = fround(1.27323954473516);
const TWO_PI_F = fround(2 * Math.PI); // _mm256_set1_ps(2.0f * c10::pi<double>)

/** POW2_NEG[k] = 2**-k, for splitting x = m * 2**-24 into frexp form. */
const POW2_NEG = Array.from({ length: 26 }, (_, k) => 2 ** -k);

/**
 * `log256_ps` for one lane, for x = k * 2**-24 with 1 <= k <= 2**24 (what
 * 1 - uniform can be).
 * @param {number} x
 * @returns {number}
 */
export function cephesLogf(x) {
  // frexp: x = m * 2**e with m in [0.5, 1), as the bit twiddling does.
  const k = x * 16777216;
  const bitlen = 32 - Math.clz32(k);
  let e = bitlen - 24;
  let m = k * POW2_NEG[bitlen];
  const small = m < SQRTHF;
  const tmp = small ? m : 0;
  m = m - 1; // exact
  if (small) e -= 1;
  m = fround(m + tmp);
  const z = fround(m * m);
  let y = fma32(LOG_P0, m, LOG_P1);
  y = fma32(y, m, LOG_P2);
  y = fma32(y, m, LOG_P3);
  y = fma32(y, m, LOG_P4);
  y = fma32(y, m, LOG_P5);
  y = fma32(y, m, LOG_P6);
  y = fma32(y, m, LOG_P7);
  y = fma32(y, m, LOG_P8);
  y = fround(y * m);
  // y * z + e * q1: GCC fuses the first multiply into the add.
  y = fma32(y, z, fround(e * LOG_Q1));
  y = fround(y - z * 0.5); // z * 0.5 is exact; fused or not, one rounding
  const s = fround(m + y);
  return fround(s + e * LOG_Q2); // e * q2 is exact (q2 has 9 bits)
}

/**
 * `sincos256_ps` for one lane.
 * @param {number} theta  a float32 value, |theta| < 8192
 * @param {Float64Array} out  receives [sin, cos]
 */
export function cephesSincosf(theta, out) {
  let x = Math.abs(theta);
  const signSin = theta < 0 || Object.is(theta, -0);
  let j = Math.trunc(fround(x * FOPI)) | 0;
  j = (j + 1) & ~1;
  const yj = j; // exact in float32 for the range used
  const swapSin = (j & 4) !== 0;
  const polyMask = (j & 2) === 0;
  const swapCos = (~(j - 2) & 4) !== 0;
  x = fma32(yj, MINUS_DP1, x);
  x = fma32(yj, MINUS_DP2, x);
  x = fma32(yj, MINUS_DP3, x);
  const z = fround(x * x);
  let c = fma32(COSCOF_P0, z, COSCOF_P1);
  c = fma32(c, z, COSCOF_P2);
  c = fround(c * z);
  c = fma32(c, z, -fround(z * 0.5));
  c = fround(c + 1);
  let s = fma32(SINCOF_P0, z, SINCOF_P1);
  s = fma32(s, z, SINCOF_P2);
  s = fround(s * z);
  s = fma32(s, x, x);
  // The blend, done with the same (exact) additions as the intrinsics.
  const ysin2 = polyMask ? s : 0;
  const ysin1 = polyMask ? 0 : c;
  let sinv = ysin1 + ysin2;
  let cosv = c - ysin1 + (s - ysin2);
  if (signSin !== swapSin) sinv = -sinv;
  if (swapCos) cosv = -cosv;
  out[0] = sinv;
  out[1] = cosv;
}

const sincosOut = new Float64Array(2);

/**
 * torch's AVX2 `NormalFill16<float>` (mean 0, std 1) on data[off .. off+16),
 * in place. The inputs are float32 uniforms in [0, 1).
 * @param {Float32Array} data
 * @param {number} off
 */
function normalFill16(data, off) {
  for (let j = 0; j < 8; j++) {
    const u1 = 1 - data[off + j]; // exact
    const u2 = data[off + j + 8];
    const radius = fround(Math.sqrt(-2 * cephesLogf(u1))); // -2*log exact
    cephesSincosf(fround(TWO_PI_F * u2), sincosOut);
    // fmadd(n, std=1, mean=0) is n + 0: only a -0 changes (to +0).
    data[off + j] = fround(radius * sincosOut[1]) + 0;
    data[off + j + 8] = fround(radius * sincosOut[0]) + 0;
  }
}

/**
 * A CPU `torch.Generator` seeded with `manual_seed(seed)`; successive draws
 * consume its stream exactly as successive torch calls do.
 */
export class TorchGenerator {
  /** @type {MT19937} */
  #engine;
  /** @type {number | null} the cached second sample of the double Box-Muller */
  #nextNormal = null;
  /** @type {bigint} */
  #seed;

  /** @param {number | bigint} seed  0 <= seed <= 2**53 (number) or 2**64 - 1 (bigint) */
  constructor(seed) {
    this.#seed = checkSeed(seed);
    this.#engine = new MT19937(Number(BigInt.asUintN(32, this.#seed)));
  }

  /** @returns {bigint} the seed, as `torch.Generator.initial_seed()` gives it */
  initialSeed() {
    return this.#seed;
  }

  /**
   * Re-seeds, like `g.manual_seed(seed)`, and returns this generator.
   * @param {number | bigint} seed
   * @returns {TorchGenerator}
   */
  manualSeed(seed) {
    this.#seed = checkSeed(seed);
    this.#engine = new MT19937(Number(BigInt.asUintN(32, this.#seed)));
    this.#nextNormal = null;
    return this;
  }

  /** @returns {number} `random()`: the next raw 32-bit engine output */
  random() {
    return this.#engine.nextUint32();
  }

  /** @returns {number} a float32 uniform in [0, 1), torch's `uniform_real_distribution<float>` */
  #uniformFloat() {
    return (this.#engine.nextUint32() & 0xffffff) * TWO_POW_M24;
  }

  /** @returns {number} a double uniform in [0, 1) from `random64()`, 53 bits */
  #uniformDouble() {
    const hi = this.#engine.nextUint32();
    const lo = this.#engine.nextUint32();
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) * TWO_POW_M53;
  }

  /** @returns {number} one sample of torch's `normal_distribution<double>(0, 1)` */
  #normalDouble() {
    if (this.#nextNormal !== null) {
      const cached = this.#nextNormal;
      this.#nextNormal = null;
      return cached;
    }
    const u1 = this.#uniformDouble();
    const u2 = this.#uniformDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    this.#nextNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /**
   * `torch.randn(shape, generator=g)` for dtype float32 on the CPU.
   * @param {readonly number[]} shape
   * @returns {Float32Array}
   */
  randn(shape) {
    const n = numelOf(shape);
    const out = new Float32Array(n);
    if (n < 16) {
      // `val * std + mean` with std 1, mean 0: only a -0 changes (to +0).
      for (let i = 0; i < n; i++) out[i] = this.#normalDouble() + 0;
      return out;
    }
    for (let i = 0; i < n; i++) out[i] = this.#uniformFloat();
    const whole = n - (n % 16);
    for (let i = 0; i < whole; i += 16) normalFill16(out, i);
    if (whole !== n) {
      const off = n - 16;
      for (let i = 0; i < 16; i++) out[off + i] = this.#uniformFloat();
      normalFill16(out, off);
    }
    return out;
  }
}

/**
 * `torch.randn(shape, generator=torch.Generator().manual_seed(seed))`.
 * @param {number | bigint} seed
 * @param {readonly number[]} shape
 * @returns {Float32Array}
 */
export function randn(seed, shape) {
  return new TorchGenerator(seed).randn(shape);
}
