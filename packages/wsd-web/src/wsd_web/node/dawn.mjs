// Dawn (npm `webgpu`) for the Node runners: the instance toggles they ask
// for, in the one form Dawn reads them ("enable-dawn-features=a,b": a second
// entry of the same kind replaces the first).
//
// Every runner enables `vulkan_enable_f16_on_nvidia`: Dawn hides shader-f16 on
// NVIDIA's Vulkan driver unless asked, although the hardware and the driver
// run it (fp16 builds match diffusers there); on other adapters the toggle
// does nothing. What the device then has is in each runner's report
// (`features`), next to the toggles asked for (`dawnToggles`).
import { create } from "webgpu";

/** Dawn features every runner enables: `allow_unsafe_apis` exposes the
 * experimental subgroup matrices (tensor cores) the subgroup-matrix kernel path needs. */
export const DEFAULT_DAWN_FEATURES = Object.freeze(["vulkan_enable_f16_on_nvidia", "allow_unsafe_apis"]);

/**
 * The toggle strings for Dawn's `create`.
 * @param {{enable?: readonly string[], disable?: readonly string[]}} [features]
 *   Dawn features to enable (besides DEFAULT_DAWN_FEATURES) and to disable.
 * @returns {string[]}
 */
export function dawnToggles({ enable = [], disable = [] } = {}) {
  const enabled = [...new Set([...DEFAULT_DAWN_FEATURES, ...enable])];
  return [
    `enable-dawn-features=${enabled.join(",")}`,
    ...(disable.length > 0 ? [`disable-dawn-features=${[...new Set(disable)].join(",")}`] : []),
  ];
}

/**
 * Dawn's GPU object (what `navigator.gpu` is in a browser) with these toggles.
 * @param {{enable?: readonly string[], disable?: readonly string[]}} [features]
 * @returns {{gpu: GPU, toggles: string[]}}
 */
export function createDawn(features) {
  const toggles = dawnToggles(features);
  return { gpu: create(toggles), toggles };
}
