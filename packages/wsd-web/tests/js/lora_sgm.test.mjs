// kohya's SDXL LoRAs in SGM's naming mapped to diffusers' module paths, as
// diffusers' own conversion (_maybe_map_sgm_blocks_to_diffusers and
// _convert_unet_lora_key) maps them for SDXL (2 layers per block).
import assert from "node:assert/strict";
import { test } from "node:test";

import { readLora } from "../../src/wsd_web/static/js/lora.js";
import { isSgmName, layersPerBlock, sgmToDiffusers } from "../../src/wsd_web/static/js/lora_sgm.js";
import { xlManifest } from "./manifest_fixtures.mjs";

/** SGM name -> diffusers' path (underscores), as diffusers 0.42 converts them. */
const DIFFUSERS = {
  input_blocks_1_0_in_layers_2: "down_blocks_0_resnets_0_conv1",
  input_blocks_1_0_emb_layers_1: "down_blocks_0_resnets_0_time_emb_proj",
  input_blocks_2_0_out_layers_3: "down_blocks_0_resnets_1_conv2",
  input_blocks_3_0_op: "down_blocks_0_downsamplers_0_conv",
  input_blocks_4_0_skip_connection: "down_blocks_1_resnets_0_conv_shortcut",
  input_blocks_4_1_proj_in: "down_blocks_1_attentions_0_proj_in",
  input_blocks_4_1_transformer_blocks_0_attn1_to_q: "down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q",
  input_blocks_5_1_transformer_blocks_1_ff_net_0_proj: "down_blocks_1_attentions_1_transformer_blocks_1_ff_net_0_proj",
  input_blocks_7_1_transformer_blocks_9_attn2_to_out_0: "down_blocks_2_attentions_0_transformer_blocks_9_attn2_to_out_0",
  input_blocks_8_1_proj_out: "down_blocks_2_attentions_1_proj_out",
  middle_block_0_in_layers_2: "mid_block_resnets_0_conv1",
  middle_block_1_transformer_blocks_0_attn1_to_k: "mid_block_attentions_0_transformer_blocks_0_attn1_to_k",
  middle_block_2_out_layers_3: "mid_block_resnets_1_conv2",
  output_blocks_0_0_skip_connection: "up_blocks_0_resnets_0_conv_shortcut",
  output_blocks_0_1_transformer_blocks_0_attn1_to_v: "up_blocks_0_attentions_0_transformer_blocks_0_attn1_to_v",
  output_blocks_2_2_conv: "up_blocks_0_upsamplers_0_conv",
  output_blocks_5_1_proj_in: "up_blocks_1_attentions_2_proj_in",
  output_blocks_8_0_in_layers_2: "up_blocks_2_resnets_2_conv1",
  time_embed_0: "time_embedding_linear_1",
  label_emb_0_2: "add_embedding_linear_2",
  input_blocks_0_0: "conv_in",
  out_2: "conv_out",
};

test("SGM names map to diffusers' paths as diffusers maps them", () => {
  for (const [sgm, diffusers] of Object.entries(DIFFUSERS)) {
    assert.ok(isSgmName(sgm), sgm);
    assert.equal(sgmToDiffusers(sgm, 2), diffusers, sgm);
  }
  assert.ok(!isSgmName("down_blocks_1_attentions_0_proj_in"));
  assert.equal(sgmToDiffusers("middle_block_7_proj_in", 2), null);
  assert.equal(sgmToDiffusers("input_blocks_4_5_proj_in", 2), null);
});

test("an SGM-named kohya LoRA for SDXL matches the build's weights", () => {
  const q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";
  const targets = {
    "down_blocks.0.resnets.0.conv1": [{ param: "unet.0", layout: "rows", shape: [4, 4, 3, 3], dtype: "float16" }],
    "down_blocks.0.resnets.1.conv1": [{ param: "unet.1", layout: "rows", shape: [4, 4, 3, 3], dtype: "float16" }],
    [q]: [{ param: "unet.2", layout: "cols", shape: [6, 6], dtype: "float16" }],
  };
  assert.equal(layersPerBlock(targets), 2);
  const build = xlManifest({
    lora: { function: "lora_merge" },
    components: { unet: { param_names: ["unet.0", "unet.1", "unet.2"], param_count: 3, param_bytes: 0, lora_targets: targets } },
  });
  const header = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight": { dtype: "F32", shape: [1, 6], data_offsets: [0, 24] },
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_up.weight": { dtype: "F32", shape: [6, 1], data_offsets: [24, 48] },
  };
  const text = new TextEncoder().encode(JSON.stringify(header));
  const file = new Uint8Array(8 + text.byteLength + 48);
  new DataView(file.buffer).setUint32(0, text.byteLength, true);
  file.set(text, 8);
  const lora = readLora(file, "sdxl-kohya.safetensors", build);
  assert.deepEqual(lora.modules.map((m) => m.path), [q]);
});
