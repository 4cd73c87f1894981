// One model library (.wasm) loaded into tvmjs on a WebGPU device, and the one
// place that touches tvmjs beyond its documented API: its WebGPU context (the
// shader factory the dispatch pacing and the kernel profiler wrap, the
// allocation counters) and its auto-release scopes. Everything else (the
// pipelines, the model loader, the check runner, the Node tools) goes through
// TVMSession. The internals used are checked when a session starts, so a
// different tvmjs fails at once with the version this module was written for.
// Ownership: the session owns its VM and every tensor it uploads; dispose()
// releases them all. Per-call results live in the caller's tvm scope.

import { TVMJS_VERSION } from "./build_stamp.js";
import { dispatchWithKeptBindings } from "./kernel_dispatch.js";
import { SUBGROUP_MATRIX_ENABLE, completeShader } from "./wgsl_rewrite.js";

/** @typedef {import("@mlc-ai/web-runtime").Instance} Instance */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */
/** @typedef {import("@mlc-ai/web-runtime").TVMObject} TVMObject */
/** @typedef {import("@mlc-ai/web-runtime").VirtualMachine} VirtualMachine */
/** @typedef {import("@mlc-ai/web-runtime").PackedFunc} PackedFunc */
/** @typedef {typeof import("@mlc-ai/web-runtime")} TVMJS */
/** @typedef {import("./tensor_cache.js").TensorRecord} TensorRecord */

/** A compiled kernel's dispatch function, as tvmjs' WebGPU context makes it. @typedef {(...args: any[]) => void} Dispatch */

/**
 * The parts of tvmjs' WebGPU context (`Instance.lib.webGPUContext`, private in
 * its types) this module uses.
 * @typedef {object} WebGPUContextInternals
 * @property {(finfo: {name: string}, code: string, asyncMode: boolean) => any} createShadeInternal
 *   Makes the dispatch function of one kernel (a promise of it in async mode).
 * @property {() => void} flushCommands  Submits the pending command encoder.
 * @property {GPUDevice} device  The device it records and submits on.
 * @property {number} currAllocatedBytes
 * @property {number} peakAllocatedBytes
 */

/**
 * Dispatches tvmjs records into one command encoder before it submits them
 * (it submits only when something waits for the GPU). A UNet call is about
 * a thousand dispatches: submitted at the end, the GPU would idle while the
 * CPU records them all (about 25 ms per SD 1.5 step on an H200). Submitting
 * every this many dispatches lets the GPU start while the rest is recorded.
 */
export const DISPATCHES_PER_SUBMIT = 32;

/** What the internals checked at start-up must be, by name. */
const CONTEXT_INTERNALS = Object.freeze({
  createShadeInternal: "function",
  flushCommands: "function",
  device: "object",
  currAllocatedBytes: "number",
  peakAllocatedBytes: "number",
});

/**
 * The WebGPU context of a tvmjs instance on which initWebGPU ran, once its
 * internals are those this module was written for (tvmjs exposes no version
 * at run time, so their presence and types stand for it).
 * @param {Instance} tvm
 * @returns {WebGPUContextInternals}
 */
export function webGPUContext(tvm) {
  const context = /** @type {any} */ (tvm).lib?.webGPUContext;
  const absent = context
    ? Object.entries(CONTEXT_INTERNALS).filter(([name, type]) => typeof context[name] !== type).map(([name]) => name)
    : ["lib.webGPUContext"];
  if (absent.length > 0) {
    throw new Error(
      `the tvmjs runtime lacks ${absent.join(", ")}: this app was written for @mlc-ai/web-runtime ` +
        `${TVMJS_VERSION}; vendor that version (npm ci, then npm run vendor)`,
    );
  }
  return context;
}

/**
 * Wrap the dispatch function of every kernel a tvmjs WebGPU context creates
 * from now on (on the instance; call before its shaders are created).
 * @param {Pick<WebGPUContextInternals, "createShadeInternal">} context
 * @param {(kernel: string, dispatch: Dispatch) => Dispatch} wrap  Given the kernel's name.
 */
export function wrapDispatches(context, wrap) {
  const createShader = context.createShadeInternal.bind(context);
  context.createShadeInternal = (finfo, code, asyncMode) => {
    const made = createShader(finfo, code, asyncMode);
    const wrapped = (/** @type {Dispatch} */ dispatch) => wrap(finfo.name, dispatch);
    return asyncMode ? made.then(wrapped) : wrapped(made);
  };
}

export { SUBGROUP_MATRIX_ENABLE };

/**
 * Complete the WGSL TVM writes as each shader is created (on the instance;
 * call before its shaders are created): the enable directive of the
 * subgroup-matrix kernels, and the vector loads of their workgroup tiles
 * (completeShader in wgsl_rewrite.js).
 * @param {Pick<WebGPUContextInternals, "createShadeInternal">} context
 */
export function addEnableDirectives(context) {
  const createShader = context.createShadeInternal.bind(context);
  context.createShadeInternal = (finfo, code, asyncMode) => createShader(finfo, completeShader(code), asyncMode);
}

/**
 * Make a tvmjs WebGPU context submit its pending commands every `every`
 * dispatches (on the instance; call before its shaders are created).
 * @param {Pick<WebGPUContextInternals, "createShadeInternal" | "flushCommands">} context
 * @param {number} every
 */
export function paceSubmissions(context, every = DISPATCHES_PER_SUBMIT) {
  if (!(every >= 1)) throw new Error(`dispatches per submit must be at least 1, got ${every}`);
  let pending = 0;
  wrapDispatches(context, (_kernel, dispatch) => (...args) => {
    dispatch(...args);
    if (++pending >= every) {
      pending = 0;
      context.flushCommands();
    }
  });
}

export class TVMSession {
  /**
   * Whether sessions created from now on dispatch with kept bindings
   * (kernel_dispatch.js) rather than with tvmjs' own dispatch (a bind group
   * made and the scalars written at every dispatch, a compute pass each): a
   * switch for benchmarks.
   */
  static keepBindings = true;

  /**
   * @param {Instance} tvm  On which initWebGPU ran.
   * @param {VirtualMachine} vm
   * @param {string[]} log  Messages the runtime printed (C++ errors land here).
   * @param {import("./kernel_dispatch.js").KeptDispatch | null} [dispatch]  How its kernels are dispatched.
   */
  constructor(tvm, vm, log, dispatch = null) {
    this.tvm = tvm;
    this.vm = vm;
    this.log = log;
    this.dispatch = dispatch;
    this.context = webGPUContext(tvm);
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
    let dispatch = null;
    try {
      if (TVMSession.keepBindings) dispatch = dispatchWithKeptBindings(/** @type {any} */ (webGPUContext(tvm)));
      addEnableDirectives(webGPUContext(tvm));
      paceSubmissions(webGPUContext(tvm));
    } catch (e) {
      tvm.dispose();
      throw e;
    }
    const vm = tvm.withNewScope(() => tvm.detachFromCurrentScope(tvm.createVirtualMachine(tvm.webgpu())));
    return new TVMSession(tvm, vm, log, dispatch);
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
    const t = this.persist(() => this.tvm.empty(record.shape, record.dtype, this.tvm.webgpu()));
    t.copyFromRawBytes(bytes);
    this.owned.push(t);
    return t;
  }

  /**
   * A GPU tensor of `values` in the current tvm scope.
   * @param {number[]} shape
   * @param {Float32Array | Int32Array} values
   * @param {string} [dtype]
   * @returns {Tensor}
   */
  tensor(shape, values, dtype = "float32") {
    return this.tvm.empty(shape, dtype, this.tvm.webgpu()).copyFrom(values);
  }

  /**
   * A tuple of tensors (what a compiled function takes as its weights), kept
   * beyond the current scope; the caller disposes it.
   * @param {Tensor[]} tensors
   * @returns {TVMObject}
   */
  tensorArray(tensors) {
    return this.persist(() => this.tvm.makeTVMArray(tensors));
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
   * `persist` for several results: each is kept beyond the scope; the caller disposes them.
   * @template {{dispose(): void}} R
   * @param {() => R[]} make
   * @returns {R[]}
   */
  persistAll(make) {
    return this.tvm.withNewScope(() => make().map((r) => this.tvm.detachFromCurrentScope(/** @type {any} */ (r))));
  }

  /**
   * Run `run` in a new tvm scope that closes when it settles: what it makes and
   * does not persist is released then.
   * @template R
   * @param {() => Promise<R>} run
   * @returns {Promise<R>}
   */
  async scoped(run) {
    this.tvm.beginScope();
    try {
      return await run();
    } finally {
      this.tvm.endScope();
    }
  }

  /** Wait until the GPU has finished what was submitted. */
  async sync() {
    await this.tvm.webgpu().sync();
  }

  /**
   * Submit what is recorded, and a promise that the GPU has finished it
   * (and all before it), not awaited: the caller records more work meanwhile.
   * @returns {Promise<unknown>}
   */
  submitted() {
    this.context.flushCommands();
    return this.context.device.queue.onSubmittedWorkDone();
  }

  /**
   * A CPU copy of a GPU tensor, in the current scope.
   * @param {Tensor} gpuTensor
   */
  async toHost(gpuTensor) {
    const host = this.tvm.empty(gpuTensor.shape, gpuTensor.dtype, this.tvm.cpu());
    host.copyFrom(gpuTensor);
    await this.sync();
    return host;
  }

  /**
   * Copy a GPU tensor to the CPU and return its raw bytes.
   * @param {Tensor} gpuTensor
   * @returns {Promise<Uint8Array>}
   */
  async downloadBytes(gpuTensor) {
    return this.scoped(async () => (await this.toHost(gpuTensor)).toRawBytes());
  }

  /**
   * Copy a float32 GPU tensor to the CPU and return its values.
   * @param {Tensor} gpuTensor
   * @returns {Promise<Float32Array>}
   */
  async download(gpuTensor) {
    return this.scoped(async () => Float32Array.from(/** @type {Float32Array} */ ((await this.toHost(gpuTensor)).toArray())));
  }

  /**
   * Dispose tensors the session owns (uploaded weights) before it ends.
   * @param {Tensor[]} tensors
   */
  release(tensors) {
    const gone = new Set(tensors);
    for (const t of tensors) t.dispose();
    this.owned = this.owned.filter((t) => !gone.has(t));
  }

  /**
   * Free the GPU buffers the VM's pooled allocator keeps for reuse (those of
   * finished calls); tensors still alive stay. The next call allocates again.
   */
  releasePooledMemory() {
    this.dispatch?.bindings.clear();
    this.tvm.withNewScope(() => this.tvm.getGlobalFunc("vm.builtin.memory_manager.clear")());
  }

  /**
   * Run `run` and measure the most GPU bytes held while it ran; the session's
   * peak (peakAllocatedBytes) still covers it afterwards.
   * @template R
   * @param {() => Promise<R>} run
   * @returns {Promise<{result: R, peakBytes: number}>}
   */
  async peakDuring(run) {
    const before = this.context.peakAllocatedBytes;
    this.resetPeakAllocatedBytes();
    try {
      const result = await run();
      return { result, peakBytes: this.context.peakAllocatedBytes };
    } finally {
      this.context.peakAllocatedBytes = Math.max(before, this.context.peakAllocatedBytes);
    }
  }

  /** GPU bytes the runtime holds now (tvmjs' own accounting). */
  allocatedBytes() {
    return this.context.currAllocatedBytes;
  }

  /** The most GPU bytes the runtime has held at once since the session started, or since the last reset. */
  peakAllocatedBytes() {
    return this.context.peakAllocatedBytes;
  }

  /** Start measuring the peak again from what is held now. */
  resetPeakAllocatedBytes() {
    this.context.peakAllocatedBytes = this.context.currAllocatedBytes;
  }

  /**
   * Wrap the dispatch function of every kernel the library creates from now on
   * (see wrapDispatches; call before the shaders are created, e.g. before compileShaders).
   * @param {(kernel: string, dispatch: Dispatch) => Dispatch} wrap
   */
  wrapDispatches(wrap) {
    wrapDispatches(this.context, wrap);
  }

  /** Release every GPU tensor the session owns, the VM and the runtime. */
  dispose() {
    for (const t of this.owned) t.dispose();
    this.owned = [];
    this.vm.dispose();
    this.tvm.dispose();
  }
}
