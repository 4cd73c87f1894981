// How a compiled kernel is dispatched on tvmjs' WebGPU context, made cheap on
// the CPU. A UNet step is about 1,300 dispatches. tvmjs makes a new bind group
// and writes the scalar arguments into a pooled uniform buffer for every one of
// them; on an H200 a step's recording then takes longer than its GPU work, so
// the GPU waits on the CPU (SD 1.5 512 on tensor cores: 72 ms a step for 59 ms
// of kernels). The same call site of a model binds the same buffers and the
// same scalars at every step (the VM's pooled allocator hands the same buffers
// back), so here each distinct binding is made once: its bind group and a
// uniform buffer holding its scalars, written when it is made, are kept and
// used again. Consecutive dispatches share one compute pass in tvmjs' pending
// encoder (WebGPU orders each after what the ones before it wrote), ended
// before anything else is recorded or submitted. What a kernel computes is
// unchanged: the same pipeline and the same launch grid.
//
// The launch protocol is TVM's WebGPU codegen's (tvmjs follows it too): the
// storage buffers are bound first, in argument order, read-only unless the
// kernel's `paramWriteAccess` tag says it writes them; the scalar arguments,
// then the grid's x extent (`packGridDimX`), are 32-bit words of a uniform
// buffer bound last; a grid of 65,536 or more workgroups along x is spread over
// z, which the kernel folds back.

/** Bind groups kept per context before the cache starts over (a SD 1.5 or SDXL step makes 1-3 thousand). */
export const BINDING_CACHE_LIMIT = 16384;
/** The most workgroups WebGPU dispatches along one dimension, plus one. */
const MAX_GRID_EXTENT = 65536;

/**
 * What a kernel's launch takes, from its function info.
 * @typedef {object} LaunchPlan
 * @property {number[]} buffers  The arguments bound as storage buffers, in binding order.
 * @property {boolean[]} writable  Per buffer: whether the kernel writes it.
 * @property {{index: number, kind: "int" | "uint" | "float"}[]} scalars  The scalar arguments, in uniform order.
 * @property {number[]} grid  Per launch extent after the arguments: the dimension it sets,
 *   0-2 for blockIdx.x-z, 3-5 for threadIdx.x-z.
 */

/**
 * The parts of tvmjs' WebGPU context a dispatch uses.
 * @typedef {object} DispatchContext
 * @property {GPUDevice} device
 * @property {GPUCommandEncoder | null} pendingEncoder  Commands recorded since the last submit.
 * @property {(ptr: number) => GPUBuffer} gpuBufferFromPtr
 * @property {() => void} flushCommands
 * @property {number} shaderSubmitCounter
 * @property {(finfo: KernelInfo, code: string, asyncMode: boolean) => any} createShadeInternal
 */

/**
 * A kernel's function info, as the library records it.
 * @typedef {{name: string, arg_types: string[], launch_param_tags: string[]}} KernelInfo
 */

/** @param {string} tag @param {string} kernel */
function gridDimension(tag, kernel) {
  const match = /^(blockIdx|threadIdx)\.([xyz])$/.exec(tag);
  if (!match) throw new Error(`kernel ${kernel}: cannot launch with thread axis ${tag}`);
  return (match[1] === "threadIdx" ? 3 : 0) + "xyz".indexOf(match[2]);
}

/**
 * @param {KernelInfo} finfo
 * @returns {LaunchPlan}
 */
export function launchPlan(finfo) {
  /** @type {LaunchPlan} */
  const plan = { buffers: [], writable: [], scalars: [], grid: [] };
  /** @type {boolean[] | null} */
  let writes = null;
  for (const tag of finfo.launch_param_tags) {
    if (tag.startsWith("paramWriteAccess:")) writes = JSON.parse(tag.slice("paramWriteAccess:".length)).map(Boolean);
    else plan.grid.push(gridDimension(tag, finfo.name));
  }
  finfo.arg_types.forEach((dtype, index) => {
    const kind = /^(uint|int|float)\d+$/.exec(dtype)?.[1];
    if (dtype === "handle") plan.buffers.push(index);
    else if (kind) plan.scalars.push({ index, kind: /** @type {"int" | "uint" | "float"} */ (kind) });
    else throw new Error(`kernel ${finfo.name}: cannot pass an argument of type ${dtype} to a WebGPU shader`);
  });
  if (!writes || writes.length !== plan.buffers.length) {
    throw new Error(`kernel ${finfo.name}: its paramWriteAccess tag must name each of its ${plan.buffers.length} buffers`);
  }
  plan.writable = writes;
  return plan;
}

/**
 * The workgroups to dispatch along x and z for `x` along x: halved (rounding
 * up) into z until WebGPU takes it; the kernel skips the surplus it rounded up to.
 * @param {number} x
 * @returns {[number, number]}
 */
export function spreadGrid(x) {
  let z = 1;
  while (x >= MAX_GRID_EXTENT) {
    x = Math.ceil(x / 2);
    z *= 2;
  }
  return [x, z];
}

/**
 * A kernel's uniform words, written in place for each launch: its scalars, then
 * the grid's x extent (one array a kernel: a bind group's uniform is written
 * from it when made, and a kept one is found by its values).
 * @param {LaunchPlan} plan
 */
function uniformWords(plan) {
  const words = new Uint32Array(plan.scalars.length + 1);
  const ints = new Int32Array(words.buffer);
  const floats = new Float32Array(words.buffer);
  const { scalars } = plan;
  return {
    words,
    /** @param {any[]} args @param {number} gridX */
    fill(args, gridX) {
      for (let i = 0; i < scalars.length; i++) {
        const { index, kind } = scalars[i];
        if (kind === "float") floats[i] = args[index];
        else if (kind === "int") ints[i] = args[index];
        else words[i] = args[index];
      }
      words[scalars.length] = gridX;
      return words;
    },
  };
}

/**
 * Bind groups (with their uniform buffers) made once per distinct binding and
 * kept, up to a limit; past it they are all released and made again as needed.
 * A binding is found through a tree of maps, one level per buffer (by a number
 * given to each buffer) and per uniform word: no key is built, and finding a
 * kept one allocates nothing.
 */
export class BindingCache {
  /**
   * @param {GPUDevice} device
   * @param {() => void} flush  Submits what is recorded (before uniforms it may use are destroyed).
   * @param {number} [limit]  The bindings kept at most (a positive integer); past it all are released.
   */
  constructor(device, flush, limit = BINDING_CACHE_LIMIT) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`BindingCache: the limit must be a positive integer (the bindings kept at most), not ${limit}`);
    }
    this.device = device;
    this.flush = flush;
    this.limit = limit;
    /** Per kernel, the tree its bindings are found by. @type {Map<number, any>[]} */
    this.roots = [];
    /** @type {GPUBuffer[]} */
    this.uniforms = [];
    /** @type {WeakMap<GPUBuffer, number>} */
    this.ids = new WeakMap();
    this.nextId = 0;
    this.made = 0;
    this.reused = 0;
  }

  /** The bindings kept. */
  get size() {
    return this.uniforms.length;
  }

  /** @param {GPUBuffer} buffer */
  id(buffer) {
    let id = this.ids.get(buffer);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(buffer, id);
    }
    return id;
  }

  /**
   * The bind group of `buffers` and a uniform of `words` for a kernel's layout
   * (neither array is kept: the caller may fill them anew for its next launch).
   * @param {number} kernel  The kernel's number (one layout each).
   * @param {GPUBindGroupLayout} layout
   * @param {GPUBuffer[]} buffers
   * @param {Uint32Array<ArrayBuffer>} words  At least one (the grid's x extent).
   * @returns {GPUBindGroup}
   */
  bindGroup(kernel, layout, buffers, words) {
    let node = this.roots[kernel];
    if (node === undefined) node = this.roots[kernel] = new Map();
    for (let i = 0; i < buffers.length; i++) node = branch(node, this.id(buffers[i]));
    const last = words.length - 1;
    for (let i = 0; i < last; i++) node = branch(node, words[i]);
    const kept = node.get(words[last]);
    if (kept !== undefined) {
      this.reused++;
      return kept;
    }
    if (this.uniforms.length >= this.limit) {
      this.clear();
      return this.bindGroup(kernel, layout, buffers, words);
    }
    const uniform = this.device.createBuffer({ size: words.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(uniform, 0, words);
    const entries = buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
    entries.push({ binding: buffers.length, resource: { buffer: uniform } });
    const group = this.device.createBindGroup({ layout, entries });
    node.set(words[last], group);
    this.uniforms.push(uniform);
    this.made++;
    return group;
  }

  /** Release every kept binding (what is recorded is submitted first: it may use them). */
  clear() {
    if (this.uniforms.length === 0) return;
    this.flush();
    for (const uniform of this.uniforms) uniform.destroy();
    this.uniforms = [];
    this.roots = [];
  }
}

/**
 * The map under `key` in `node`, made if absent.
 * @param {Map<number, any>} node @param {number} key
 * @returns {Map<number, any>}
 */
function branch(node, key) {
  let next = node.get(key);
  if (next === undefined) {
    next = new Map();
    node.set(key, next);
  }
  return next;
}

/** @param {LaunchPlan} plan @returns {GPUBindGroupLayoutEntry[]} */
function layoutEntries(plan) {
  /** @type {GPUBindGroupLayoutEntry[]} */
  const entries = plan.writable.map((writes, binding) => ({
    binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: writes ? "storage" : "read-only-storage" },
  }));
  entries.push({ binding: plan.buffers.length, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } });
  return entries;
}

/** What dispatchWithKeptBindings needs of the context, by name. */
const DISPATCH_INTERNALS = Object.freeze({
  device: "object", gpuBufferFromPtr: "function", flushCommands: "function", shaderSubmitCounter: "number",
});

/**
 * The compute pass consecutive dispatches share, on tvmjs' pending encoder:
 * kept open between dispatches and ended whenever anything else reads or
 * replaces the encoder (tvmjs' copies and submits), through an accessor put
 * on the context in place of its `pendingEncoder` field.
 * @param {DispatchContext} context
 */
function sharedPasses(context) {
  let encoder = context.pendingEncoder;
  /** @type {GPUComputePassEncoder | null} */
  let pass = null;
  /** The pipeline the open pass has set. @type {GPUComputePipeline | null} */
  let current = null;
  const end = () => {
    pass?.end();
    pass = null;
  };
  Object.defineProperty(context, "pendingEncoder", {
    configurable: true,
    enumerable: true,
    get() {
      end();
      return encoder;
    },
    set(value) {
      end();
      encoder = value;
    },
  });
  return {
    end,
    /**
     * The open pass, begun (on a new encoder if none is pending) if none is,
     * with `pipeline` set (unless it is the one the pass's last dispatch used).
     * @param {GPUComputePipeline} pipeline
     */
    open(pipeline) {
      if (!pass) {
        encoder ??= context.device.createCommandEncoder();
        pass = encoder.beginComputePass();
        current = null;
      }
      if (pipeline !== current) {
        pass.setPipeline(pipeline);
        current = pipeline;
      }
      return pass;
    },
  };
}

/** How a context's kernels are dispatched: with kept bindings, in shared passes. */
export class KeptDispatch {
  /**
   * @param {BindingCache} bindings
   * @param {{end: () => void}} passes  The shared compute pass (sharedPasses).
   */
  constructor(bindings, passes) {
    this.bindings = bindings;
    this.passes = passes;
    this.shared = true;
  }

  /**
   * Whether consecutive dispatches share one compute pass (each dispatch
   * still sees what the ones before it wrote); off while a profiler times
   * each kernel by its pass. Turned off, the open pass ends.
   */
  get sharePasses() {
    return this.shared;
  }

  set sharePasses(share) {
    if (!share) this.passes.end();
    this.shared = share;
  }
}

/**
 * Make every kernel a tvmjs WebGPU context creates from now on dispatch with
 * kept bindings, consecutive dispatches in one compute pass (on the instance;
 * call before its shaders are created, and before anything that wraps
 * createShadeInternal).
 * @param {DispatchContext} context
 * @param {number} [limit]  Bind groups kept before the cache starts over.
 * @returns {KeptDispatch}
 */
export function dispatchWithKeptBindings(context, limit) {
  const absent = Object.entries(DISPATCH_INTERNALS)
    .filter(([name, type]) => typeof (/** @type {any} */ (context))[name] !== type)
    .map(([name]) => name)
    .concat("pendingEncoder" in context ? [] : ["pendingEncoder"]);
  if (absent.length > 0) throw new Error(`the tvmjs WebGPU context lacks ${absent.join(", ")}`);
  const device = context.device;
  const passes = sharedPasses(context);
  const state = new KeptDispatch(new BindingCache(device, () => context.flushCommands(), limit), passes);
  let kernels = 0;
  context.createShadeInternal = (finfo, code, asyncMode) => {
    const plan = launchPlan(finfo);
    const kernel = kernels++;
    const layout = device.createBindGroupLayout({ entries: layoutEntries(plan) });
    const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [layout] });
    const module = device.createShaderModule({ code, compilationHints: [{ entryPoint: finfo.name, layout: pipelineLayout }] });
    const descriptor = { layout: pipelineLayout, compute: { module, entryPoint: finfo.name } };
    const first = plan.buffers.length + plan.scalars.length;
    // Filled anew for each launch (the cache keeps neither).
    const uniform = uniformWords(plan);
    /** @type {GPUBuffer[]} */
    const bound = new Array(plan.buffers.length);
    const dims = [1, 1, 1, 1, 1, 1];
    const dispatcher = (/** @type {GPUComputePipeline} */ pipeline) => (/** @type {any[]} */ ...args) => {
      if (args.length !== first + plan.grid.length) {
        throw new Error(`kernel ${finfo.name} takes ${first + plan.grid.length} arguments, got ${args.length}`);
      }
      dims.fill(1);
      for (let i = 0; i < plan.grid.length; i++) dims[plan.grid[i]] = args[first + i];
      if (dims[2] !== 1) throw new Error(`kernel ${finfo.name}: blockIdx.z is reserved for spreading large grids`);
      const [x, z] = spreadGrid(dims[0]);
      for (let i = 0; i < bound.length; i++) bound[i] = context.gpuBufferFromPtr(args[plan.buffers[i]]);
      // (Made before the pass is opened: a full cache submits what is recorded.)
      const group = state.bindings.bindGroup(kernel, layout, bound, uniform.fill(args, dims[0]));
      const pass = passes.open(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(x, dims[1], z);
      if (!state.sharePasses) passes.end();
      context.shaderSubmitCounter += 1;
    };
    return asyncMode
      ? device.createComputePipelineAsync(descriptor).then(dispatcher)
      : dispatcher(device.createComputePipeline(descriptor));
  };
  return state;
}
