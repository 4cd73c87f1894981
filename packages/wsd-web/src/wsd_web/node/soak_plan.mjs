// The plan and the verdict of a soak (soak.mjs, `wsd-web soak`): which prompt,
// scheduler and seed each generation runs with, the soak's options checked, and
// the summary of the rows each generation leaves: the GPU bytes tvmjs holds
// after the first and the last generation, the growth between them, the
// generations after which it grew, the errors and the median time.

/**
 * The prompts a soak cycles through: distinct, of varied lengths (an empty prompt, empty
 * negative prompts, one past CLIP's 77 tokens, which the tokenizer truncates), and not ASCII only.
 * @type {ReadonlyArray<Readonly<{prompt: string, negativePrompt: string}>>}
 */
export const SOAK_PROMPTS = Object.freeze([
  { prompt: "a photograph of an astronaut riding a horse", negativePrompt: "blurry" },
  { prompt: "", negativePrompt: "" },
  { prompt: "a red cube", negativePrompt: "" },
  {
    prompt: "an oil painting of a lighthouse on a cliff at sunset, dramatic clouds, crashing waves, "
      + "warm light, highly detailed",
    negativePrompt: "people, text, watermark, low quality",
  },
  {
    prompt: "a busy market street in the rain at night, lanterns, umbrellas, puddles reflecting neon signs, "
      + "steam rising from food stalls, a cat on a windowsill, a cyclist passing, wet cobblestones, "
      + "shop signs in many colours, a tram in the distance, people in raincoats, soft bokeh, cinematic "
      + "lighting, wide angle, 35mm film, grain, muted palette, high contrast, very detailed, award winning "
      + "photograph, golden hour glow fading into blue hour",
    negativePrompt: "blurry, out of focus, overexposed, underexposed, deformed, extra limbs, bad anatomy, "
      + "cartoon, drawing, painting, text, logo, watermark, signature, jpeg artifacts, low resolution",
  },
  { prompt: "café au lait ☕ on a wooden table, 東京 at night", negativePrompt: "" },
].map((p) => Object.freeze(p)));

/**
 * @typedef {object} SoakOptions
 * @property {number} generations  How many generations to run (at least 1).
 * @property {number} steps  Steps of each generation (at least 1).
 * @property {number} toleranceBytes  The growth of the GPU bytes held after a generation,
 *   from the first to the last, that still passes (0: none).
 * @property {number} seed  The first generation's seed; generation i runs with seed + i.
 * @property {number} guidance  Classifier-free guidance scale.
 * @property {number | null} randomWeights  A seed: weights of seeded random values instead of the shards.
 * @property {string | null} kernelPath  The build's kernel path to run (null: the first the device runs).
 * @property {string[] | null} schedulers  The schedulers to cycle through, in this order (null: every
 *   one the build's page offers, in the page's order).
 */

/**
 * @param {unknown} value
 * @param {string} name
 * @param {number} least
 */
function integerAtLeast(value, name, least) {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < least) {
    throw new Error(`"${name}" ${JSON.stringify(value)}: give an integer of at least ${least}`);
  }
  return value;
}

/**
 * The soak's own options from the runner's OPTIONS_JSON (with their defaults), or an Error
 * that says which is wrong.
 * @param {Record<string, unknown>} options
 * @returns {SoakOptions}
 */
export function soakOptions(options) {
  const {
    generations = 100, steps = 20, toleranceBytes = 0, seed = 0, guidance = 7.5, randomWeights = null,
    kernelPath = null, schedulers = null,
  } = options;
  if (typeof guidance !== "number" || !Number.isFinite(guidance)) {
    throw new Error(`"guidance" ${JSON.stringify(guidance)}: give a number`);
  }
  if (kernelPath !== null && typeof kernelPath !== "string") {
    throw new Error(`"kernelPath" ${JSON.stringify(kernelPath)}: give a kernel path's name, or null`);
  }
  if (schedulers !== null && (!Array.isArray(schedulers) || schedulers.length === 0
    || !schedulers.every((n) => typeof n === "string"))) {
    throw new Error(`"schedulers" ${JSON.stringify(schedulers)}: give a non-empty list of scheduler names, or null`);
  }
  return {
    generations: integerAtLeast(generations, "generations", 1),
    steps: integerAtLeast(steps, "steps", 1),
    toleranceBytes: integerAtLeast(toleranceBytes, "toleranceBytes", 0),
    seed: integerAtLeast(seed, "seed", 0),
    guidance,
    randomWeights: randomWeights === null ? null : integerAtLeast(randomWeights, "randomWeights", 0),
    kernelPath,
    schedulers,
  };
}

/**
 * The schedulers a soak cycles through: those asked for (each must be one the build's page
 * offers), or every one it offers.
 * @param {string[] | null} asked
 * @param {ReadonlyArray<string>} offered  availableSchedulers of the build, in the page's order.
 * @returns {string[]}
 */
export function soakSchedulers(asked, offered) {
  if (asked === null) return [...offered];
  const unknown = asked.filter((name) => !offered.includes(name));
  if (unknown.length > 0) {
    throw new Error(`scheduler ${unknown.join(", ")}: this build's page offers ${offered.join(", ")}`);
  }
  return [...asked];
}

/**
 * What generation `index` runs with: the prompts in turn, the schedulers in turn (6 prompts
 * and 7 schedulers meet in every pairing over 42 generations), seed + index.
 * @param {number} index
 * @param {ReadonlyArray<string>} schedulers  The schedulers the build can run (at least one).
 * @param {number} seed
 */
export function soakPlan(index, schedulers, seed) {
  const promptIndex = index % SOAK_PROMPTS.length;
  return {
    index,
    promptIndex,
    ...SOAK_PROMPTS[promptIndex],
    scheduler: schedulers[index % schedulers.length],
    seed: seed + index,
  };
}

/**
 * One generation of a soak as the report has it: what it ran with, how long it took, the GPU
 * bytes tvmjs held after it (nothing released), the most it held during it, and its error.
 * @typedef {object} SoakRow
 * @property {number} index
 * @property {number} prompt_index
 * @property {string} prompt
 * @property {string} negative_prompt
 * @property {string} scheduler
 * @property {number} seed
 * @property {number} seconds
 * @property {number} allocated_after
 * @property {number | null} peak_bytes  The most of the generation's stage peaks (null: it failed).
 * @property {{textEncoder: number, denoise: number, decode: number} | null} stage_peak_bytes
 * @property {number | null} vae_tiles
 * @property {boolean | null} offload
 * @property {string | null} error
 */

/**
 * The median of a non-empty list.
 * @param {number[]} values
 */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The soak's verdict from its rows: `growth_bytes` is allocated_after_last -
 * allocated_after_first (over the generations that finished); `grew` lists each generation
 * after which more was held than after the one before; `passed`: no error, and a growth
 * within the tolerance. `growth_after_first_cycle_bytes` tells a high-water mark set once
 * from a leak: the growth from the generation that ended the first cycle of `cycle`
 * schedulers (allocated_after_first_cycle) to the last (null: the soak ran no more).
 * @param {SoakRow[]} rows
 * @param {number} toleranceBytes
 * @param {number} [cycle]  The schedulers in the cycle.
 */
export function summarize(rows, toleranceBytes, cycle = 1) {
  const done = rows.filter((r) => r.error === null);
  const after = done.map((r) => r.allocated_after);
  const first = after.length > 0 ? after[0] : null;
  const last = after.length > 0 ? after[after.length - 1] : null;
  const growth = first === null || last === null ? null : last - first;
  const errors = rows.filter((r) => r.error !== null).map((r) => ({ index: r.index, scheduler: r.scheduler, error: r.error }));
  const grew = done.slice(1).flatMap((r, i) => (r.allocated_after > done[i].allocated_after
    ? [{ index: r.index, scheduler: r.scheduler, prompt_index: r.prompt_index, bytes: r.allocated_after - done[i].allocated_after }]
    : []));
  const firstCycle = done.length > cycle ? done[cycle - 1].allocated_after : null;
  return {
    generations: done.length,
    allocated_after_first: first,
    allocated_after_last: last,
    max_allocated_after: after.length > 0 ? Math.max(...after) : null,
    growth_bytes: growth,
    allocated_after_first_cycle: firstCycle,
    growth_after_first_cycle_bytes: firstCycle === null || last === null ? null : last - firstCycle,
    tolerance_bytes: toleranceBytes,
    grew,
    errors,
    median_seconds: done.length > 0 ? median(done.map((r) => r.seconds)) : null,
    max_peak_bytes: done.length > 0 ? Math.max(...done.map((r) => /** @type {number} */ (r.peak_bytes))) : null,
    passed: errors.length === 0 && growth !== null && growth <= toleranceBytes,
  };
}

/** @typedef {ReturnType<typeof summarize>} SoakSummary */

/**
 * Why a soak failed, a line each (none: it passed): each error, and a growth over the
 * tolerance with the generations after which the GPU bytes held grew.
 * @param {SoakSummary} summary
 * @returns {string[]}
 */
export function failureLines(summary) {
  const lines = summary.errors.map((e) => `generation ${e.index} (${e.scheduler}) failed: ${e.error}`);
  if (summary.growth_bytes !== null && summary.growth_bytes > summary.tolerance_bytes) {
    const where = summary.grew.map((g) => `generation ${g.index} (${g.scheduler}, prompt ${g.prompt_index}) +${g.bytes}`);
    const cycle = summary.growth_after_first_cycle_bytes === null ? ""
      : `; from the end of the first cycle of schedulers to the last: ${summary.growth_after_first_cycle_bytes}`;
    lines.push(
      `GPU bytes held after a generation grew by ${summary.growth_bytes} from the first to the last `
      + `(tolerance ${summary.tolerance_bytes}); it grew after ${where.join(", ")}${cycle}`,
    );
  } else if (summary.growth_bytes === null && summary.errors.length === 0) {
    lines.push("no generation finished");
  }
  return lines;
}
