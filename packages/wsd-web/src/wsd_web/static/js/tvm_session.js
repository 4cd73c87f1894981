// One model library (.wasm) loaded into tvmjs on a WebGPU device.
// Ownership: the session owns its VM and every tensor it uploads; dispose()
// releases them all. Per-call results live in the caller's tvm scope.

/** @typedef {import("@mlc-ai/web-runtime").Instance} Instance */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */
/** @typedef {import("@mlc-ai/web-runtime").VirtualMachine} VirtualMachine */
/** @typedef {import("@mlc-ai/web-runtime").PackedFunc} PackedFunc */
/** @typedef {typeof import("@mlc-ai/web-runtime")} TVMJS */
/** @typedef {import("./tensor_cache.js").TensorRecord} TensorRecord */

/**
 * Dispatches tvmjs records into one command encoder before it submits them
 * (it submits only when something waits for the GPU). A UNet call is about
 * a thousand dispatches: submitted at the end, the GPU would idle while the
 * CPU records them all (about 25 ms per SD 1.5 step on an H200). Submitting
 * every this many dispatches lets the GPU start while the rest is recorded.
 */
export const DISPATCHES_PER_SUBMIT = 32;

/**
 * Make a tvmjs WebGPU context submit its pending commands every `every`
 * dispatches (on the instance; call before its shaders are created).
 * @param {{createShadeInternal: Function, flushCommands(): void}} context
 * @param {number} every
 */
export function paceSubmissions(context, every = DISPATCHES_PER_SUBMIT) {
  if (!(every >= 1)) throw new Error(`dispatches per submit must be at least 1, got ${every}`);
  const createShader = context.createShadeInternal.bind(context);
  let pending = 0;
  /** @param {(...args: any[]) => void} submit */
  const paced = (submit) => (/** @type {any[]} */ ...args) => {
    submit(...args);
    if (++pending >= every) {
      pending = 0;
      context.flushCommands();
    }
  };
  /**
   * @param {unknown} finfo
   * @param {string} code
   * @param {boolean} asyncMode
   */
  context.createShadeInternal = (finfo, code, asyncMode) => {
    const made = createShader(finfo, code, asyncMode);
    return asyncMode ? made.then(paced) : paced(made);
  };
}

export class TVMSession {
  /**
   * @param {Instance} tvm
   * @param {VirtualMachine} vm
   * @param {string[]} log  Messages the runtime printed (C++ errors land here).
   */
  constructor(tvm, vm, log) {
    this.tvm = tvm;
    this.vm = vm;
    this.log = log;
    /** @type {Tensor[]} */
    this.owned = [];
  }

  /**
   * Instantiate a model library on `device`.
   * @param {TVMJS} tvmjs  The tvmjs module (global `tvmjs` in a page).
   * @param {ArrayBuffer} wasm  The linked model library.
   * @param {GPUDevice} device
   * @returns {Promise<TVMSession>}
   */
  static async create(tvmjs, wasm, device) {
    /** @type {string[]} */
    const log = [];
    const tvm = await tvmjs.instantiate(wasm, tvmjs.createPolyfillWASI(), (msg) => log.push(msg));
    tvm.initWebGPU(device);
    paceSubmissions(/** @type {any} */ (tvm).lib.webGPUContext);
    tvm.beginScope();
    const vm = tvm.detachFromCurrentScope(tvm.createVirtualMachine(tvm.webgpu()));
    tvm.endScope();
    return new TVMSession(tvm, vm, log);
  }

  /**
   * Compile every GPU pipeline of the library now, in parallel where the
   * implementation can, instead of one by one at each kernel's first dispatch.
   * @returns {Promise<void>}
   */
  async compileShaders() {
    await this.tvm.asyncLoadWebGPUPipelines(this.vm.getInternalModule());
  }

  /**
   * A compiled function of the library, or a clear error naming what exists.
   * @param {string} name
   * @returns {PackedFunc}
   */
  func(name) {
    try {
      return this.vm.getFunction(name);
    } catch (e) {
      throw new Error(`the model library has no function ${name} (${this.log.join(" ") || e})`, { cause: e });
    }
  }

  /**
   * Upload raw tensor bytes to a new GPU tensor owned by the session.
   * @param {TensorRecord} record
   * @param {Uint8Array} bytes
   * @returns {Tensor}
   */
  upload(record, bytes) {
    const t = this.tvm.withNewScope(() =>
      this.tvm.detachFromCurrentScope(this.tvm.empty(record.shape, record.dtype, this.tvm.webgpu())),
    );
    t.copyFromRawBytes(bytes);
    this.owned.push(t);
    return t;
  }

  /**
   * Run `make` in a new tvm scope and keep its result beyond it; the caller disposes it.
   * @template {{dispose(): void}} R
   * @param {() => R} make
   * @returns {R}
   */
  persist(make) {
    return this.tvm.withNewScope(() => this.tvm.detachFromCurrentScope(/** @type {any} */ (make())));
  }

  /**
   * Copy a GPU tensor to the CPU and return its raw bytes.
   * @param {Tensor} gpuTensor
   * @returns {Promise<Uint8Array>}
   */
  async downloadBytes(gpuTensor) {
    this.tvm.beginScope();
    try {
      const host = this.tvm.empty(gpuTensor.shape, gpuTensor.dtype, this.tvm.cpu());
      host.copyFrom(gpuTensor);
      await this.tvm.webgpu().sync();
      return host.toRawBytes();
    } finally {
      this.tvm.endScope();
    }
  }

  /**
   * Copy a float32 GPU tensor to the CPU and return its values.
   * @param {Tensor} gpuTensor
   * @returns {Promise<Float32Array>}
   */
  async download(gpuTensor) {
    this.tvm.beginScope();
    try {
      const host = this.tvm.empty(gpuTensor.shape, gpuTensor.dtype, this.tvm.cpu());
      host.copyFrom(gpuTensor);
      await this.tvm.webgpu().sync();
      return Float32Array.from(/** @type {Float32Array} */ (host.toArray()));
    } finally {
      this.tvm.endScope();
    }
  }

  /** Release every GPU tensor the session owns, the VM and the runtime. */
  dispose() {
    for (const t of this.owned) t.dispose();
    this.owned = [];
    this.vm.dispose();
    this.tvm.dispose();
  }
}
