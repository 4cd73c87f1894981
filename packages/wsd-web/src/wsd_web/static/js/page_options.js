// The page's generation settings that its address can set as it opens:
// ?vae-tiles=auto|on|off (the VAE decode setting: in tiles where the GPU needs
// them, in tiles, whole) and ?offload=1|0 (the sequential offload checkbox: the
// text encoders' and the VAE decoder's weights on the GPU only while they run,
// uploaded again every generation). From then on the controls hold the
// settings, and every generation reads them.

/** The VAE decodes ?vae-tiles= takes (the pipeline's vaeTiling). */
export const VAE_TILES = Object.freeze(["auto", "on", "off"]);
/** What ?offload= takes, and the checkbox's state for each. */
const OFFLOAD = new Map([["1", true], ["0", false]]);

/**
 * The controls of the settings (the page's elements, or stand-ins).
 * @typedef {object} SettingControls
 * @property {{value: string}} vaeTiles  The VAE decode select.
 * @property {{checked: boolean}} offload  The sequential offload checkbox.
 */

/**
 * What the address asks for.
 * @typedef {object} AskedSettings
 * @property {string | null} vaeTiles  ?vae-tiles=, null: not given.
 * @property {boolean | null} offload  ?offload=, null: not given.
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
  let error = null;
  if (vaeTiles !== null && !VAE_TILES.includes(vaeTiles)) {
    error = `?vae-tiles=${vaeTiles}: choose auto, on or off`;
  } else if (offload !== null && !OFFLOAD.has(offload)) {
    error = `?offload=${offload}: choose 1 or 0`;
  }
  return { vaeTiles, offload: offload === null ? null : OFFLOAD.get(offload) ?? null, error };
}

/**
 * Set the controls to the valid settings the address asks for.
 * @param {SettingControls} controls
 * @param {AskedSettings} asked
 */
export function applySettings(controls, asked) {
  if (asked.vaeTiles !== null && VAE_TILES.includes(asked.vaeTiles)) controls.vaeTiles.value = asked.vaeTiles;
  if (asked.offload !== null) controls.offload.checked = asked.offload;
}

/**
 * The generate options the controls hold.
 * @param {SettingControls} controls
 * @returns {{vaeTiling: "auto" | "on" | "off", offload: boolean}}
 */
export function settingOptions(controls) {
  const vaeTiling = /** @type {"auto" | "on" | "off"} */ (controls.vaeTiles.value);
  return { vaeTiling, offload: controls.offload.checked };
}
