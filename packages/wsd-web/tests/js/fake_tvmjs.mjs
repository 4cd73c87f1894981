// A stand-in for the tvmjs module, as far as TVMSession.create and the model
// loader use it, for SDModel.load tests without a GPU: it records which
// libraries were instantiated, every tensor uploaded (shape, dtype, bytes)
// and whether the runtime was released.

/**
 * @typedef {object} UploadedTensor
 * @property {number[]} shape
 * @property {string} dtype
 * @property {Uint8Array | null} bytes
 */

export function fakeTvmjs() {
  const books = {
    /** @type {Uint8Array[]} */
    instantiated: [],
    /** @type {UploadedTensor[]} */
    uploads: [],
    /** @type {unknown[][]} */
    tuples: [],
    disposed: false,
  };
  const instance = {
    lib: {
      webGPUContext: {
        createShadeInternal() {}, flushCommands() {}, currAllocatedBytes: 0, peakAllocatedBytes: 0,
        device: {}, pendingEncoder: null, gpuBufferFromPtr() {}, shaderSubmitCounter: 0,
      },
    },
    initWebGPU() {},
    webgpu: () => "webgpu",
    withNewScope: (/** @type {() => any} */ run) => run(),
    detachFromCurrentScope: (/** @type {any} */ x) => x,
    createVirtualMachine: () => ({ dispose() {} }),
    /** @param {number[]} shape @param {string} dtype */
    empty(shape, dtype) {
      /** @type {UploadedTensor & {copyFromRawBytes(b: Uint8Array): void, dispose(): void}} */
      const t = {
        shape,
        dtype,
        bytes: null,
        copyFromRawBytes(b) {
          t.bytes = b.slice();
        },
        dispose() {},
      };
      books.uploads.push(t);
      return t;
    },
    makeTVMArray(/** @type {unknown[]} */ list) {
      books.tuples.push(list);
      return { dispose() {} };
    },
    dispose() {
      books.disposed = true;
    },
  };
  const tvmjs = /** @type {any} */ ({
    createPolyfillWASI: () => ({}),
    /** @param {ArrayBuffer} wasm */
    instantiate: async (wasm) => {
      books.instantiated.push(new Uint8Array(wasm));
      return instance;
    },
  });
  return { tvmjs, books };
}

/**
 * A WebAssembly module (no code) stamped with a build, as wsd-compile stamps libraries.
 * @param {string} buildId
 * @param {string} [tvm]  The runtime version in the stamp.
 * @returns {Uint8Array}
 */
export function stampedLibrary(buildId, tvm = "0.27.0") {
  const name = new TextEncoder().encode("wsd.build");
  const content = new TextEncoder().encode(JSON.stringify({ build_id: buildId, runtime: { tvm } }));
  const body = [name.length, ...name, ...content];
  if (body.length > 127) throw new Error("a stamp this long needs a longer LEB128 size");
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0, body.length, ...body]);
}
