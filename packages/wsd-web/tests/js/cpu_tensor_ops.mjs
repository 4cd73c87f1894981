// TensorOps on the CPU for scheduler tests: float32 tensors, sums accumulated
// in float64 (as the GPU kernel does in float32, give or take). It keeps the
// books on ownership: releasing a tensor it did not make, or twice, throws,
// and a released tensor is filled with NaN so that any later use shows.
// `noise()` draws from a torch-compatible generator (torch_random.js), as the
// app does, once `useGenerator` has given it one and the latent shape.
// `maxTerms` stands for the number of compiled combine kernels (4 unless told).

/** @typedef {import("../../src/wsd_web/static/js/torch_random.js").TorchGenerator} TorchGenerator */

/**
 * @typedef {object} CountingOps
 * @property {import("../../src/wsd_web/static/js/schedulers/common.js").TensorOps<Float32Array>} ops
 * @property {() => number} live  Tensors made by ops and not yet released.
 * @property {() => number} made  Tensors made by combine so far.
 * @property {() => number} noises  Tensors made by noise so far.
 * @property {(generator: TorchGenerator, shape: number[]) => void} useGenerator
 *   Where noise() draws from, like diffusers' `generator` argument of step().
 */

/**
 * @param {{maxTerms?: number}} [options]
 * @returns {CountingOps}
 */
export function cpuTensorOps({ maxTerms = 4 } = {}) {
  /** @type {Set<Float32Array>} */
  const alive = new Set();
  let made = 0;
  let noises = 0;
  /** @type {{generator: TorchGenerator, shape: number[]} | null} */
  let source = null;
  /** @param {Float32Array} t */
  const own = (t) => {
    alive.add(t);
    return t;
  };
  return {
    ops: {
      maxTerms,
      combine(terms) {
        if (terms.length < 1 || terms.length > maxTerms) {
          throw new Error(`combine takes 1..${maxTerms} terms, got ${terms.length}`);
        }
        const size = terms[0][1].length;
        const out = new Float32Array(size);
        for (let j = 0; j < size; j++) {
          let sum = 0;
          for (const [coef, x] of terms) sum += coef * x[j];
          out[j] = sum;
        }
        made++;
        return own(out);
      },
      release(t) {
        if (!alive.delete(t)) throw new Error("released a tensor that is not alive (double release, or not made by ops)");
        t.fill(NaN);
      },
      noise() {
        if (source === null) throw new Error("noise() called but no generator was given (useGenerator)");
        noises++;
        return own(source.generator.randn(source.shape));
      },
      clamp(t, limit) {
        return own(t.map((v) => Math.min(Math.max(v, -limit), limit)));
      },
    },
    live: () => alive.size,
    made: () => made,
    noises: () => noises,
    useGenerator(generator, shape) {
      source = { generator, shape };
    },
  };
}
