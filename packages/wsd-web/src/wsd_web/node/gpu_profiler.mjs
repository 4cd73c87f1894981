// GPU time of every kernel a tvmjs session dispatches, from WebGPU timestamp
// queries: each compute pass tvmjs begins gets a timestamp at its start and
// end, and the pass is attributed to the compiled kernel that set it up.
// Used by the benchmark (bench.mjs); it needs a device created with the
// `timestamp-query` feature. Dawn quantizes timestamps unless its
// `timestamp_quantization` toggle is disabled, which the benchmark does.
//
// It hooks two things, both on the instances it is given (no prototypes):
// the session's WebGPU context, so that every shader function it creates
// records its kernel name when called, and the device's command encoders, so
// that compute passes begun while the profiler is recording carry
// `timestampWrites`. Install it before the shaders are created.

/* global GPUBufferUsage, GPUMapMode -- WebGPU's flags: Node has none; bench.mjs installs Dawn's */

/** Timestamps per query set: the WebGPU maximum query count is 4096. */
const QUERIES_PER_SET = 4096;

/**
 * @typedef {object} KernelTime
 * @property {string} name  The compiled kernel (a TIR function of the library).
 * @property {number} calls  Dispatches while recording.
 * @property {number} ms  Their summed GPU time.
 */

/**
 * Sum pass durations by kernel name, largest first.
 * @param {string[]} names  The kernel of each pass, in dispatch order.
 * @param {BigUint64Array | bigint[]} stamps  Begin and end timestamp (ns) of each pass.
 * @returns {KernelTime[]}
 */
export function kernelTimes(names, stamps) {
  /** @type {Map<string, KernelTime>} */
  const byName = new Map();
  for (let i = 0; i < names.length; i++) {
    const begin = stamps[2 * i];
    const end = stamps[2 * i + 1];
    // A pass the GPU reordered or whose stamps wrapped reads as zero time.
    const ns = end > begin ? Number(end - begin) : 0;
    const entry = byName.get(names[i]) ?? { name: names[i], calls: 0, ms: 0 };
    entry.calls += 1;
    entry.ms += ns / 1e6;
    byName.set(names[i], entry);
  }
  return [...byName.values()].sort((a, b) => b.ms - a.ms || a.name.localeCompare(b.name));
}

export class KernelProfiler {
  /**
   * @param {GPUDevice} device  Created with the `timestamp-query` feature.
   * @param {Pick<import("../static/js/tvm_session.js").TVMSession, "wrapDispatches"> &
   *   {dispatch?: import("../static/js/kernel_dispatch.js").KeptDispatch | null}} session
   *   The model's session: each kernel's dispatches are named for its timestamps
   *   (and, while recording, each is dispatched in a pass of its own).
   */
  constructor(device, session) {
    if (!device.features.has("timestamp-query")) {
      throw new Error("the GPU device has no timestamp-query feature: per-kernel GPU times are unavailable");
    }
    this.device = device;
    this.dispatch = session.dispatch ?? null;
    this.recording = false;
    /** @type {string} */
    this.current = "";
    /** @type {string[]} */
    this.names = [];
    /** @type {GPUQuerySet[]} */
    this.sets = [];
    this.createEncoder = device.createCommandEncoder.bind(device);
    const profiler = this;
    session.wrapDispatches((kernel, dispatch) => (...args) => {
      profiler.current = kernel;
      dispatch(...args);
    });
    device.createCommandEncoder = (/** @type {GPUCommandEncoderDescriptor | undefined} */ descriptor) => {
      const encoder = profiler.createEncoder(descriptor);
      const beginComputePass = encoder.beginComputePass.bind(encoder);
      encoder.beginComputePass = (/** @type {GPUComputePassDescriptor | undefined} */ pass) =>
        beginComputePass(profiler.recording ? { ...pass, timestampWrites: profiler.nextSlot() } : pass);
      return encoder;
    };
  }

  /** @returns {GPUComputePassTimestampWrites} */
  nextSlot() {
    const index = this.names.length;
    const set = Math.floor((2 * index) / QUERIES_PER_SET);
    while (this.sets.length <= set) {
      this.sets.push(this.device.createQuerySet({ type: "timestamp", count: QUERIES_PER_SET }));
    }
    this.names.push(this.current);
    const first = (2 * index) % QUERIES_PER_SET;
    return { querySet: this.sets[set], beginningOfPassWriteIndex: first, endOfPassWriteIndex: first + 1 };
  }

  /** Start recording the passes dispatched from now on. */
  start() {
    this.names = [];
    this.recording = true;
    if (this.dispatch) this.dispatch.sharePasses = false;
  }

  /**
   * Stop recording and read back the times of what was recorded. Call it once
   * the recorded work has been submitted (after the session's sync).
   * @returns {Promise<KernelTime[]>}
   */
  async stop() {
    this.recording = false;
    if (this.dispatch) this.dispatch.sharePasses = true;
    const names = this.names;
    this.names = [];
    if (names.length === 0) return [];
    const count = 2 * names.length;
    const bytes = count * 8;
    const resolved = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readback = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      const encoder = this.createEncoder();
      for (let set = 0; set * QUERIES_PER_SET < count; set++) {
        const used = Math.min(QUERIES_PER_SET, count - set * QUERIES_PER_SET);
        encoder.resolveQuerySet(this.sets[set], 0, used, resolved, set * QUERIES_PER_SET * 8);
      }
      encoder.copyBufferToBuffer(resolved, 0, readback, 0, bytes);
      this.device.queue.submit([encoder.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      const stamps = new BigUint64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      return kernelTimes(names, stamps);
    } finally {
      resolved.destroy();
      readback.destroy();
    }
  }

  /** Release the query sets. */
  dispose() {
    for (const set of this.sets) set.destroy();
    this.sets = [];
  }
}
