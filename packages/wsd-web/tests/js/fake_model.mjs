// A stand-in for a loaded SDModel for pipeline tests without a GPU: every
// compiled function makes a new tensor (and records its name), tensors live
// in tvm-like scopes (released when the scope closes unless persisted), and
// the books say which tensors are still alive. The build's VAE tile decoder
// (vae_tiling) makes an image of its tile, its tile encoder the latents of
// its tile; the VAE tiles as the manifest and the mode say, on a device without
// buffer limits.

import { useTiles } from "../../src/wsd_web/static/js/vae_tiling.js";

/**
 * @typedef {object} FakeTensor
 * @property {number[]} shape
 * @property {boolean} disposed
 * @property {() => void} dispose
 * @property {(i: number) => FakeTensor} get  Items of a function's tuple result.
 */

/**
 * @param {any} manifest
 */
export function fakeModel(manifest) {
  /** @type {Set<FakeTensor>} */
  const live = new Set();
  /** @type {FakeTensor[][]} */
  const scopes = [];
  /** @type {string[]} */
  const calls = [];
  /** @param {number[]} shape @returns {FakeTensor} */
  const make = (shape) => {
    /** @type {FakeTensor} */
    const t = {
      shape,
      disposed: false,
      dispose() {
        if (t.disposed) throw new Error("a tensor was released twice");
        t.disposed = true;
        live.delete(t);
      },
      get: () => make(shape),
    };
    live.add(t);
    scopes[scopes.length - 1]?.push(t);
    return t;
  };
  /** @template R @param {() => R} run @param {(r: R) => FakeTensor[]} kept */
  const inScope = (run, kept) => {
    scopes.push([]);
    try {
      const result = run();
      const keep = new Set(kept(result));
      for (const t of /** @type {FakeTensor[]} */ (scopes[scopes.length - 1])) if (!keep.has(t) && !t.disposed) t.dispose();
      return result;
    } finally {
      scopes.pop();
    }
  };
  const [height, width] = [manifest.image.height, manifest.image.width];
  const session = {
    tensor: (/** @type {number[]} */ shape) => make(shape),
    persist: (/** @type {() => FakeTensor} */ run) => inScope(run, (r) => [r]),
    persistAll: (/** @type {() => FakeTensor[]} */ run) => inScope(run, (r) => r),
    sync: async () => {}, submitted: () => Promise.resolve(),
    peakDuring: async (/** @type {() => Promise<any>} */ run) => ({ result: await run(), peakBytes: 0 }),
    downloadBytes: async () => new Uint8Array(height * width * 4),
    download: async (/** @type {FakeTensor} */ t) => new Float32Array(t.shape.reduce((a, b) => a * b, 1)),
  };
  return {
    model: /** @type {any} */ ({
      manifest,
      session,
      call: (/** @type {string} */ name, /** @type {FakeTensor} */ first, /** @type {FakeTensor[]} */ ...rest) => {
        calls.push(name);
        if (name === manifest.vae_tiling?.encode_function) return make(rest[0].shape); // the noise's
        if (name === manifest.vae_tiling?.function) {
          const factor = manifest.latent.vae_scale_factor;
          return make([1, 3, first.shape[2] * factor, first.shape[3] * factor]);
        }
        return make(first?.shape ?? [1]);
      },
      weights: { offload: false, setOffload(/** @type {boolean} */ on) { this.offload = on; } },
      /** Records the weights each stage holds (as "+name" and "-name" in calls), as SDModel.withWeights. */
      async withWeights(/** @type {ReadonlyArray<string>} */ names, /** @type {() => Promise<any>} */ run) {
        calls.push(...names.map((n) => `+${n}`));
        try {
          return await run();
        } finally {
          calls.push(...names.map((n) => `-${n}`));
        }
      },
      /** As SDModel.memoryMode without a budget (the build states no memory). */
      memoryMode(/** @type {{vaeTiling?: "auto" | "on" | "off", offload?: boolean}} */ { vaeTiling = "auto", offload }) {
        return { tiles: this.decodesInTiles(vaeTiling), offload: offload ?? this.weights.offload, need: null };
      },
      decodesInTiles: (/** @type {"auto" | "on" | "off"} */ mode) =>
        useTiles(mode, manifest.vae_tiling, undefined, { maxStorageBufferBindingSize: Infinity, maxBufferSize: Infinity }),
    }),
    live,
    calls,
  };
}
