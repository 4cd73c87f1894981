// TensorOps on the CPU for scheduler tests: float32 tensors, sums accumulated
// in float64 (as the GPU kernel does in float32, give or take). It keeps the
// books on ownership: releasing a tensor it did not make, or twice, throws,
// and a released tensor is filled with NaN so that any later use shows.

/**
 * @typedef {object} CountingOps
 * @property {import("../../src/wsd_web/static/js/schedulers/common.js").TensorOps<Float32Array>} ops
 * @property {() => number} live  Tensors made by combine and not yet released.
 * @property {() => number} made  Tensors made by combine so far.
 */

/** @returns {CountingOps} */
export function cpuTensorOps() {
  /** @type {Set<Float32Array>} */
  const alive = new Set();
  let made = 0;
  return {
    ops: {
      combine(terms) {
        if (terms.length < 1 || terms.length > 4) throw new Error(`combine takes 1..4 terms, got ${terms.length}`);
        const size = terms[0][1].length;
        const out = new Float32Array(size);
        for (let j = 0; j < size; j++) {
          let sum = 0;
          for (const [coef, x] of terms) sum += coef * x[j];
          out[j] = sum;
        }
        alive.add(out);
        made++;
        return out;
      },
      release(t) {
        if (!alive.delete(t)) throw new Error("released a tensor that is not alive (double release, or not made by combine)");
        t.fill(NaN);
      },
    },
    live: () => alive.size,
    made: () => made,
  };
}
