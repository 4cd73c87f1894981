// The page's generation settings that its address can set as it opens:
// ?vae-tiles=auto|on|off (the VAE decode setting: in tiles where the GPU needs
// them, in tiles, whole), ?offload=1|0 (the sequential offload checkbox: the
// text encoders' and the VAE decoder's weights on the GPU only while they run,
// uploaded again every generation) and ?memory-budget=GIB (the GPU memory
// budget: a build that cannot fit it is refused before its download, and each
// generation's offload and tiles, where not fixed, are chosen to fit it). From
// then on the controls hold the settings, and every generation reads them.

/** The VAE decodes ?vae-tiles= takes (the pipeline's vaeTiling). */
export const VAE_TILES = Object.freeze(["auto", "on", "off"]);
/** What ?offload= takes, and the checkbox's state for each. */
const OFFLOAD = new Map([["1", true], ["0", false]]);
/** The GPU memory budgets the page offers, in GiB (besides none). */
export const MEMORY_BUDGETS_GIB = Object.freeze([2, 3, 4, 6, 8, 12]);
const GIB = 2 ** 30;
const MIB = 2 ** 20;

/**
 * The controls of the settings (the page's elements, or stand-ins).
 * @typedef {object} SettingControls
 * @property {{value: string}} vaeTiles  The VAE decode select.
 * @property {{checked: boolean}} offload  The sequential offload checkbox.
 * @property {BudgetSelect} memoryBudget  The GPU memory budget select: "" (none) or GiB.
 */

/**
 * @typedef {object} BudgetSelect
 * @property {string} value
 * @property {ArrayLike<{value: string}>} options
 * @property {(option: any) => void} add
 */

/**
 * What the address asks for.
 * @typedef {object} AskedSettings
 * @property {string | null} vaeTiles  ?vae-tiles=, null: not given.
 * @property {boolean | null} offload  ?offload=, null: not given.
 * @property {number | null} memoryBudget  ?memory-budget= in GiB, null: not given.
 * @property {string | null} error  Why a value is wrong (naming the choices), null: none is.
 */

/**
 * The settings `query` asks for.
 * @param {URLSearchParams} query
 * @returns {AskedSettings}
 */
export function askedSettings(query) {
  const vaeTiles = query.get("vae-tiles");
  const offload = query.get("offload");
  const budget = query.get("memory-budget");
  const gib = budget === null || budget.trim() === "" ? NaN : Number(budget);
  let error = null;
  if (vaeTiles !== null && !VAE_TILES.includes(vaeTiles)) {
    error = `?vae-tiles=${vaeTiles}: choose auto, on or off`;
  } else if (offload !== null && !OFFLOAD.has(offload)) {
    error = `?offload=${offload}: choose 1 or 0`;
  } else if (budget !== null && !(gib > 0 && Number.isFinite(gib))) {
    error = `?memory-budget=${budget}: give the GPU memory budget in GiB, a positive number`;
  }
  return {
    vaeTiles,
    offload: offload === null ? null : OFFLOAD.get(offload) ?? null,
    memoryBudget: budget !== null && gib > 0 && Number.isFinite(gib) ? gib : null,
    error,
  };
}

/**
 * Set the controls to the valid settings the address asks for (a budget the
 * select does not offer becomes one of its choices).
 * @param {SettingControls} controls
 * @param {AskedSettings} asked
 * @param {(text: string, value: string) => any} [makeOption]  A choice of the budget select.
 */
export function applySettings(controls, asked, makeOption = (text, value) => new Option(text, value)) {
  if (asked.vaeTiles !== null && VAE_TILES.includes(asked.vaeTiles)) controls.vaeTiles.value = asked.vaeTiles;
  if (asked.offload !== null) controls.offload.checked = asked.offload;
  if (asked.memoryBudget !== null) {
    const value = String(asked.memoryBudget);
    const select = controls.memoryBudget;
    if (!Array.from(select.options).some((o) => o.value === value)) select.add(makeOption(`${value} GiB`, value));
    select.value = value;
  }
}

/**
 * The GPU memory budget the controls hold, in bytes; undefined: none.
 * @param {SettingControls} controls
 * @returns {number | undefined}
 */
export function memoryBudget(controls) {
  const gib = Number(controls.memoryBudget.value);
  return controls.memoryBudget.value !== "" && gib > 0 && Number.isFinite(gib) ? Math.round(gib * GIB) : undefined;
}

/**
 * The generate options the controls hold. Without a budget, offload is the checkbox's state;
 * with one, offload is given only when checked (unchecked leaves it to the budget), and the
 * VAE decode "auto" leaves the tiles to the budget too.
 * @param {SettingControls} controls
 * @returns {{vaeTiling: "auto" | "on" | "off", offload?: boolean, memoryBudget?: number}}
 */
export function settingOptions(controls) {
  const vaeTiling = /** @type {"auto" | "on" | "off"} */ (controls.vaeTiles.value);
  const budget = memoryBudget(controls);
  if (budget === undefined) return { vaeTiling, offload: controls.offload.checked };
  return { vaeTiling, ...(controls.offload.checked ? { offload: true } : {}), memoryBudget: budget };
}

/**
 * What a generation's status line says of its memory: the modes it ran with, the bytes the
 * build reckons they need and the most held in any stage, in MiB.
 * @param {{offload: boolean, vaeTiles: number, memoryNeedBytes: number | null, peakBytes: Record<string, number>}} result
 * @returns {string}
 */
export function memorySummary({ offload, vaeTiles, memoryNeedBytes, peakBytes }) {
  const mib = (/** @type {number} */ b) => `${Math.round(b / MIB).toLocaleString("en-US")} MiB`;
  const modes = `offload ${offload ? "on" : "off"}, tiles ${vaeTiles}${vaeTiles > 0 ? "" : " (decoded whole)"}`;
  const peak = Math.max(0, ...Object.values(peakBytes));
  const need = memoryNeedBytes === null ? "" : `${mib(memoryNeedBytes)} reckoned by the build, `;
  return `${modes}; GPU memory ${need}${mib(peak)} at peak`;
}
