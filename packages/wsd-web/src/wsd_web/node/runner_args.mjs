// The command line of the Node runners (render.mjs, bench.mjs):
//   DIR [OPTIONS_JSON] [--vae-tiles auto|on|off] [--offload]
// OPTIONS_JSON is the runner's own options object; --vae-tiles sets its
// "vaeTiling" (how the VAE decodes: in tiles where the device needs it, in
// tiles, whole), and wins over one given in the JSON. Default: auto.
// --offload sets its "offload" to true (sequential offload: the text encoders'
// and the VAE decoder's weights on the GPU only while they run, uploaded again
// every generation); without it the JSON's "offload" (true or false) holds.
// Default: false.
import { parseArgs } from "node:util";

/** The VAE decodes a runner takes (the pipeline's vaeTiling). */
export const VAE_TILES = Object.freeze(["auto", "on", "off"]);

/**
 * The build directory and the options, or an Error that says what is wrong.
 * @param {string[]} argv  The arguments after the script.
 * @returns {{dir: string | undefined, options: Record<string, any> & {vaeTiling: "auto" | "on" | "off", offload: boolean}}}
 */
export function runnerArgs(argv) {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, options: { "vae-tiles": { type: "string" }, offload: { type: "boolean" } },
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
  const offload = values.offload ?? options.offload ?? false;
  if (typeof offload !== "boolean") {
    throw new Error(`"offload" ${JSON.stringify(offload)} in OPTIONS_JSON: give true or false (or --offload)`);
  }
  return { dir, options: { ...options, vaeTiling, offload } };
}
