// The soak's plan and verdict (node/soak_plan.mjs): its options, the prompt, scheduler and seed
// of each generation, and the summary of the GPU bytes held after each.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  SOAK_PROMPTS, failureLines, soakOptions, soakPlan, soakSchedulers, summarize,
} from "../../src/wsd_web/node/soak_plan.mjs";

/**
 * A finished generation's row.
 * @param {number} index
 * @param {number} allocated
 * @param {Partial<import("../../src/wsd_web/node/soak_plan.mjs").SoakRow>} [more]
 * @returns {import("../../src/wsd_web/node/soak_plan.mjs").SoakRow}
 */
function row(index, allocated, more = {}) {
  return {
    index, prompt_index: index % SOAK_PROMPTS.length, prompt: "", negative_prompt: "", scheduler: `s${index % 3}`,
    seed: index, seconds: index + 1, allocated_after: allocated, peak_bytes: allocated + 10,
    stage_peak_bytes: { textEncoder: 1, denoise: 2, decode: 3 }, vae_tiles: 0, offload: false, error: null, ...more,
  };
}

test("the defaults, and each wrong option named", () => {
  assert.deepEqual(soakOptions({ vaeTiling: "auto" }), {
    generations: 100, steps: 20, toleranceBytes: 0, seed: 0, guidance: 7.5, randomWeights: null, kernelPath: null,
    schedulers: null,
  });
  const given = { generations: 3, steps: 2, toleranceBytes: 4096, seed: 7, randomWeights: 1, schedulers: ["pndm"] };
  assert.deepEqual(soakOptions(given), { ...given, guidance: 7.5, kernelPath: null });
  for (const [options, name] of /** @type {const} */ ([
    [{ generations: 0 }, "generations"], [{ steps: 1.5 }, "steps"], [{ toleranceBytes: -1 }, "toleranceBytes"],
    [{ seed: "1" }, "seed"], [{ guidance: null }, "guidance"], [{ kernelPath: 3 }, "kernelPath"],
    [{ schedulers: [] }, "schedulers"], [{ schedulers: "pndm" }, "schedulers"], [{ randomWeights: -2 }, "randomWeights"],
  ])) {
    assert.throws(() => soakOptions(options), (e) => e instanceof Error && e.message.startsWith(`"${name}" `));
  }
});

test("the prompts are distinct, with an empty prompt, empty negatives and one past 77 tokens", () => {
  assert.ok(SOAK_PROMPTS.length >= 5);
  assert.equal(new Set(SOAK_PROMPTS.map((p) => p.prompt)).size, SOAK_PROMPTS.length);
  assert.ok(SOAK_PROMPTS.some((p) => p.prompt === ""));
  assert.ok(SOAK_PROMPTS.some((p) => p.prompt !== "" && p.negativePrompt === ""));
  // Every word is at least one CLIP token, every comma one: past 77, the tokenizer truncates.
  assert.ok(SOAK_PROMPTS.some((p) => p.prompt.split(/\s+/).length + (p.prompt.match(/,/g) ?? []).length > 77));
});

test("each generation takes the next prompt, the next scheduler and the next seed", () => {
  const schedulers = ["a", "b", "c"];
  const plans = Array.from({ length: 8 }, (_, i) => soakPlan(i, schedulers, 10));
  assert.deepEqual(plans.map((p) => p.scheduler), ["a", "b", "c", "a", "b", "c", "a", "b"]);
  assert.deepEqual(plans.map((p) => p.seed), [10, 11, 12, 13, 14, 15, 16, 17]);
  assert.deepEqual(plans.map((p) => p.promptIndex), [0, 1, 2, 3, 4, 5, 0, 1].map((i) => i % SOAK_PROMPTS.length));
  assert.equal(plans[1].prompt, SOAK_PROMPTS[1].prompt);
  assert.equal(plans[1].negativePrompt, SOAK_PROMPTS[1].negativePrompt);
});

test("the schedulers: every one offered, or those asked for if offered", () => {
  const offered = ["dpmpp-2m", "pndm", "euler"];
  assert.deepEqual(soakSchedulers(null, offered), offered);
  assert.deepEqual(soakSchedulers(["pndm", "euler"], offered), ["pndm", "euler"]);
  assert.throws(() => soakSchedulers(["ddim", "pndm"], offered), /^Error: scheduler ddim: this build's page offers dpmpp-2m, pndm, euler$/);
});

test("a soak that holds after the last what it held after the first passes", () => {
  const summary = summarize([row(0, 100), row(1, 120), row(2, 100), row(3, 100)], 0, 2);
  assert.equal(summary.generations, 4);
  assert.equal(summary.allocated_after_first, 100);
  assert.equal(summary.allocated_after_last, 100);
  assert.equal(summary.max_allocated_after, 120);
  assert.equal(summary.growth_bytes, 0);
  assert.equal(summary.allocated_after_first_cycle, 120);
  assert.equal(summary.growth_after_first_cycle_bytes, -20);
  assert.deepEqual(summary.grew, [{ index: 1, scheduler: "s1", prompt_index: 1, bytes: 20 }]);
  assert.equal(summary.median_seconds, 2.5);
  assert.equal(summary.max_peak_bytes, 130);
  assert.ok(summary.passed);
  assert.deepEqual(failureLines(summary), []);
});

test("a growth over the tolerance fails, and says after which generations it grew", () => {
  const rows = [row(0, 100), row(1, 100), row(2, 4196), row(3, 4196), row(4, 4200)];
  assert.ok(summarize(rows, 4100).passed);
  const summary = summarize(rows, 0, 3);
  assert.equal(summary.growth_bytes, 4100);
  assert.equal(summary.growth_after_first_cycle_bytes, 4);
  assert.ok(!summary.passed);
  assert.deepEqual(failureLines(summary), [
    "GPU bytes held after a generation grew by 4100 from the first to the last (tolerance 0); it grew after "
    + "generation 2 (s2, prompt 2) +4096, generation 4 (s1, prompt 4) +4; from the end of the first cycle of "
    + "schedulers to the last: 4",
  ]);
});

test("an error fails the soak; the generations before it are summarized", () => {
  const summary = summarize([row(0, 100), row(1, 100, { error: "boom", peak_bytes: null })], 0);
  assert.equal(summary.generations, 1);
  assert.equal(summary.growth_bytes, 0);
  assert.equal(summary.allocated_after_first_cycle, null);
  assert.deepEqual(summary.errors, [{ index: 1, scheduler: "s1", error: "boom" }]);
  assert.ok(!summary.passed);
  assert.deepEqual(failureLines(summary), ["generation 1 (s1) failed: boom"]);
  const none = summarize([row(0, 0, { error: "at once" })], 0);
  assert.equal(none.growth_bytes, null);
  assert.equal(none.median_seconds, null);
  assert.deepEqual(failureLines(none), ["generation 0 (s0) failed: at once"]);
  assert.deepEqual(failureLines(summarize([], 0)), ["no generation finished"]);
});
