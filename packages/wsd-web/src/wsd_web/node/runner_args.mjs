// The command line of the Node runners (render.mjs, bench.mjs):
//   DIR [OPTIONS_JSON] [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB]
// OPTIONS_JSON is the runner's own options object; --vae-tiles sets its
// "vaeTiling" (how the VAE decodes: in tiles where the device needs it, in
// tiles, whole), and wins over one given in the JSON. Default: auto.
// --offload sets its "offload" to true (sequential offload: the text encoders'
// and the VAE decoder's weights on the GPU only while they run, uploaded again
// every generation); without it the JSON's "offload" (true or false) holds.
// Default: false.
// --memory-budget GIB sets its "memoryBudget" (in bytes; the JSON's is in bytes
// too, null: none): the GPU memory the model may use. A build that cannot fit is
// refused before its library and weights are read, and the generations choose
// offload and tiled decode, where not fixed, to fit. With a budget, "offload"
// is left out unless given (the budget decides); "vaeTiling" auto leaves the
// tiles to it too.
import { parseArgs } from "node:util";

/** The VAE decodes a runner takes (the pipeline's vaeTiling). */
export const VAE_TILES = Object.freeze(["auto", "on", "off"]);

/**
 * @typedef {Record<string, any> & {vaeTiling: "auto" | "on" | "off", offload?: boolean, memoryBudget?: number}} RunnerOptions
 */

/**
 * The memory budget in bytes from --memory-budget (GiB) or the JSON's "memoryBudget" (bytes);
 * undefined: none.
 * @param {string | undefined} flag
 * @param {unknown} json
 * @returns {number | undefined}
 */
function budgetBytes(flag, json) {
  if (flag !== undefined) {
    const gib = flag.trim() === "" ? NaN : Number(flag);
    if (!(gib > 0 && Number.isFinite(gib))) {
      throw new Error(`--memory-budget ${JSON.stringify(flag)}: give the GPU memory budget in GiB, a positive number`);
    }
    return Math.round(gib * 2 ** 30);
  }
  if (json === undefined || json === null) return undefined;
  if (typeof json !== "number" || !(json > 0 && Number.isFinite(json))) {
    throw new Error(`"memoryBudget" ${JSON.stringify(json)} in OPTIONS_JSON: give a positive number of bytes, or null`);
  }
  return json;
}

/**
 * The build directory and the options, or an Error that says what is wrong.
 * @param {string[]} argv  The arguments after the script.
 * @returns {{dir: string | undefined, options: RunnerOptions}}
 */
export function runnerArgs(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { "vae-tiles": { type: "string" }, offload: { type: "boolean" }, "memory-budget": { type: "string" } },
  });
  if (positionals.length > 2) throw new Error(`unexpected arguments after OPTIONS_JSON: ${positionals.slice(2).join(" ")}`);
  const [dir, json = "{}"] = positionals;
  const options = JSON.parse(json);
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new Error(`OPTIONS_JSON is not a JSON object: ${json}`);
  }
  const vaeTiling = values["vae-tiles"] ?? options.vaeTiling ?? "auto";
  if (!VAE_TILES.includes(vaeTiling)) {
    throw new Error(`--vae-tiles ${JSON.stringify(vaeTiling)}: choose auto, on or off`);
  }
  const memoryBudget = budgetBytes(values["memory-budget"], options.memoryBudget);
  const offload = values.offload ?? options.offload ?? (memoryBudget === undefined ? false : undefined);
  if (offload !== undefined && typeof offload !== "boolean") {
    throw new Error(`"offload" ${JSON.stringify(offload)} in OPTIONS_JSON: give true or false (or --offload)`);
  }
  const { variations } = options;
  const isObject = (/** @type {unknown} */ v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (variations !== undefined && !(Array.isArray(variations) && variations.length > 0 && variations.every(isObject))) {
    throw new Error(`"variations" in OPTIONS_JSON: give a non-empty list of option objects, got ${JSON.stringify(variations)}`);
  }
  const out = { ...options, vaeTiling, offload, memoryBudget };
  if (offload === undefined) delete out.offload;
  if (memoryBudget === undefined) delete out.memoryBudget;
  return { dir, options: out };
}

/**
 * The build directory and the options of a runner's command line (process.argv); where the
 * line is wrong or names no DIR, the usage (and what is wrong) goes to stderr and the
 * process exits with status 2.
 * @param {string} script  The runner's file (render.mjs, bench.mjs), for the usage line.
 * @returns {{dir: string, options: RunnerOptions}}
 */
export function runnerArgsOrExit(script) {
  const usage = `usage: node ${script} DIR [OPTIONS_JSON] [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB] (DIR written by \`wsd-compile sd15\` or \`sdxl\`)`;
  /** @type {ReturnType<typeof runnerArgs>} */
  let args = { dir: undefined, options: { vaeTiling: "auto", offload: false } };
  try {
    args = runnerArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${usage}\n${error instanceof Error ? error.message : error}\n`);
    process.exit(2);
  }
  const dir = args.dir;
  if (!dir) {
    process.stderr.write(`${usage}\n`);
    process.exit(2);
  }
  return { dir, options: args.options };
}
