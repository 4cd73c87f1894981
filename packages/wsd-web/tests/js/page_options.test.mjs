// The page's settings from its address (static/js/page_options.js): ?vae-tiles=, ?offload= and
// ?memory-budget=, what generate reads from the controls, and the status line's memory summary.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MEMORY_BUDGETS_GIB, VAE_TILES, applySettings, askedSettings, memoryBudget, memorySummary, settingOptions,
} from "../../src/wsd_web/static/js/page_options.js";

const GIB = 2 ** 30;
const ask = (/** @type {string} */ search) => askedSettings(new URLSearchParams(search));

/** A stand-in of the budget select: its choices as the page has them. */
function budgetSelect(value = "") {
  const options = [{ value: "" }, ...MEMORY_BUDGETS_GIB.map((g) => ({ value: String(g) }))];
  return { value, options, add: (/** @type {{value: string}} */ o) => { options.push(o); } };
}
const controls = () => ({ vaeTiles: { value: "auto" }, offload: { checked: false }, memoryBudget: budgetSelect() });
const option = (/** @type {string} */ text, /** @type {string} */ value) => ({ text, value });

test("nothing asked: the controls keep their defaults (auto, no offload, no budget)", () => {
  assert.deepEqual(ask(""), { vaeTiles: null, offload: null, memoryBudget: null, error: null });
  const c = controls();
  applySettings(c, ask("model=x/"), option);
  assert.deepEqual(settingOptions(c), { vaeTiling: "auto", offload: false });
  assert.equal(memoryBudget(c), undefined);
});

test("?vae-tiles= and ?offload=1|0 set the controls, and generate reads them", () => {
  for (const mode of VAE_TILES) {
    const c = controls();
    applySettings(c, ask(`vae-tiles=${mode}&offload=1`), option);
    assert.deepEqual(settingOptions(c), { vaeTiling: mode, offload: true });
  }
  const c = { vaeTiles: { value: "on" }, offload: { checked: true }, memoryBudget: budgetSelect() };
  applySettings(c, ask("offload=0"), option);
  assert.deepEqual(settingOptions(c), { vaeTiling: "on", offload: false });
});

test("a bad value is one line naming the choices, and leaves its control as it is", () => {
  assert.equal(ask("offload=yes").error, "?offload=yes: choose 1 or 0");
  assert.equal(ask("offload=").error, "?offload=: choose 1 or 0");
  assert.equal(ask("vae-tiles=tiles&offload=1").error, "?vae-tiles=tiles: choose auto, on or off");
  const c = controls();
  applySettings(c, ask("vae-tiles=tiles&offload=true"), option);
  assert.deepEqual(settingOptions(c), { vaeTiling: "auto", offload: false });
});

test("?memory-budget=GIB sets the budget select, and load and generate read it in bytes", () => {
  assert.deepEqual(MEMORY_BUDGETS_GIB, [2, 3, 4, 6, 8, 12]);
  assert.equal(ask("memory-budget=4").memoryBudget, 4);
  const c = controls();
  applySettings(c, ask("memory-budget=4.0"), option);
  assert.equal(c.memoryBudget.value, "4");
  assert.equal(c.memoryBudget.options.length, 7);
  assert.equal(memoryBudget(c), 4 * GIB);
  // With a budget, offload unchecked and the decode at auto are left to it.
  assert.deepEqual(settingOptions(c), { vaeTiling: "auto", memoryBudget: 4 * GIB });
});

test("a budget the select does not offer becomes one of its choices", () => {
  const c = controls();
  applySettings(c, ask("memory-budget=2.5"), option);
  assert.equal(c.memoryBudget.value, "2.5");
  assert.deepEqual(c.memoryBudget.options.at(-1), { text: "2.5 GiB", value: "2.5" });
  assert.equal(memoryBudget(c), 2.5 * GIB);
  applySettings(c, ask("memory-budget=2.5"), option);
  assert.equal(c.memoryBudget.options.length, 8, "the same budget is added once");
});

test("with a budget, a checked offload and a decode other than auto are fixed", () => {
  const c = controls();
  applySettings(c, ask("memory-budget=8&offload=1&vae-tiles=off"), option);
  assert.deepEqual(settingOptions(c), { vaeTiling: "off", offload: true, memoryBudget: 8 * GIB });
  c.offload.checked = false;
  c.vaeTiles.value = "on";
  assert.deepEqual(settingOptions(c), { vaeTiling: "on", memoryBudget: 8 * GIB });
  c.memoryBudget.value = "";
  assert.deepEqual(settingOptions(c), { vaeTiling: "on", offload: false });
});

test("a budget that is not a positive number is one line, and leaves the select at none", () => {
  const message = (/** @type {string} */ v) => `?memory-budget=${v}: give the GPU memory budget in GiB, a positive number`;
  for (const bad of ["0", "-2", "four", "", "Infinity", "NaN"]) {
    const asked = ask(`memory-budget=${bad}`);
    assert.equal(asked.error, message(bad));
    assert.equal(asked.memoryBudget, null);
    const c = controls();
    applySettings(c, asked, option);
    assert.equal(memoryBudget(c), undefined);
  }
  assert.equal(ask("offload=2&memory-budget=0").error, "?offload=2: choose 1 or 0");
});

test("the status line's memory summary: the modes run, the build's reckoning and the peak in MiB", () => {
  const peakBytes = { textEncoder: 300 * 2 ** 20, denoise: 2100 * 2 ** 20, decode: 900 * 2 ** 20 };
  assert.equal(
    memorySummary({ offload: true, vaeTiles: 4, memoryNeedBytes: 2200 * 2 ** 20, peakBytes }),
    "offload on, tiles 4; GPU memory 2,200 MiB reckoned by the build, 2,100 MiB at peak",
  );
  assert.equal(
    memorySummary({ offload: false, vaeTiles: 0, memoryNeedBytes: null, peakBytes }),
    "offload off, tiles 0 (decoded whole); GPU memory 2,100 MiB at peak",
  );
});
