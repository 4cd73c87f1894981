// kohya LoRAs for SDXL name the UNet's modules as Stability's original (SGM)
// code does: input_blocks / middle_block / output_blocks, numbered, with the
// resnets' own layer names (lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q).
// This maps such a name to diffusers' module path spelled with underscores
// (down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q), as diffusers'
// own conversion does, given the UNet's layers per block.

/** Top-level modules outside the numbered blocks. */
const TOP = Object.freeze({
  time_embed_0: "time_embedding_linear_1",
  time_embed_2: "time_embedding_linear_2",
  label_emb_0_0: "add_embedding_linear_1",
  label_emb_0_2: "add_embedding_linear_2",
  input_blocks_0_0: "conv_in",
  out_2: "conv_out",
});

/** A resnet's layers: SGM's name -> diffusers'. */
const RESNET = Object.freeze({ in_layers_2: "conv1", out_layers_3: "conv2", emb_layers_1: "time_emb_proj", skip_connection: "conv_shortcut" });

/** What a numbered block's inner index holds. */
const INNER = Object.freeze(["resnets", "attentions", "upsamplers"]);

/**
 * @param {string} kind  "resnets", "attentions", ...
 * @param {string} rest  The module's path inside it.
 */
const inner = (kind, rest) => (kind === "resnets" ? (RESNET[/** @type {keyof RESNET} */ (rest)] ?? rest) : rest);

/**
 * Whether a kohya UNet name is in SGM's naming.
 * @param {string} name  Without "lora_unet_".
 */
export const isSgmName = (name) => /^(input_blocks|middle_block|output_blocks|time_embed|label_emb|out)_/.test(name);

/**
 * An SGM UNet module name as diffusers' path with underscores (null: not one this maps).
 * @param {string} name  Without "lora_unet_".
 * @param {number} layers  The UNet's layers per block (resnets per down block).
 * @returns {string | null}
 */
export function sgmToDiffusers(name, layers) {
  for (const [sgm, diffusers] of Object.entries(TOP)) if (name === sgm) return diffusers;
  const down = /^input_blocks_(\d+)_(\d+)_(.+)$/.exec(name);
  if (down) {
    const [i, k, rest] = [Number(down[1]) - 1, Number(down[2]), down[3]];
    const block = Math.floor(i / (layers + 1));
    if (rest === "op") return `down_blocks_${block}_downsamplers_0_conv`;
    return INNER[k] ? `down_blocks_${block}_${INNER[k]}_${i % (layers + 1)}_${inner(INNER[k], rest)}` : null;
  }
  const mid = /^middle_block_(\d+)_(.+)$/.exec(name);
  if (mid) {
    const where = ["resnets_0", "attentions_0", "resnets_1"][Number(mid[1])];
    return where ? `mid_block_${where}_${inner(where.slice(0, -2), mid[2])}` : null;
  }
  const up = /^output_blocks_(\d+)_(\d+)_(.+)$/.exec(name);
  if (up) {
    const [i, k, rest] = [Number(up[1]), Number(up[2]), up[3]];
    const kind = INNER[k];
    return kind ? `up_blocks_${Math.floor(i / (layers + 1))}_${kind}_${k < 2 ? i % (layers + 1) : 0}_${inner(kind, rest)}` : null;
  }
  return null;
}

/**
 * The UNet's layers per block, from the build's LoRA targets (the resnets of its first down block).
 * @param {Record<string, unknown>} targets  The UNet's lora_targets.
 */
export function layersPerBlock(targets) {
  const resnets = new Set(Object.keys(targets).flatMap((p) => /^down_blocks\.0\.resnets\.(\d+)\./.exec(p)?.[1] ?? []));
  return resnets.size;
}
