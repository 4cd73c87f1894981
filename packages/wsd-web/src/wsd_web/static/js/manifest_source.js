// Fetching manifest.json: always revalidated with the server (it is the one
// file that is not content-addressed), with the last good copy kept in the
// Cache API so that a reload without a network still knows the model.

/** The Cache API cache that keeps the last manifest of each model URL. */
export const MANIFEST_CACHE = "wsd-manifests-v1";

/**
 * @typedef {object} ManifestResult
 * @property {unknown} json  The parsed manifest.
 * @property {boolean} offline  True when the server could not be reached and the stored copy was used.
 */

/**
 * @param {string} text
 * @param {string} url
 */
function parse(text, url) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${url} is not JSON (${e instanceof Error ? e.message : e}): the server sent something else; check the model address`, { cause: e });
  }
}

/**
 * Fetch and parse a manifest, network first; fall back to the stored copy when the network fails.
 * @param {string | URL} url
 * @param {object} [options]
 * @param {typeof fetch} [options.fetch]
 * @param {CacheStorage} [options.cacheStorage]  Absent (or unusable): no offline copy.
 * @param {AbortSignal} [options.signal]
 * @returns {Promise<ManifestResult>}
 */
export async function loadManifest(url, { fetch = globalThis.fetch, cacheStorage = globalThis.caches, signal } = {}) {
  const href = String(url);
  /** @type {string} */
  let why;
  try {
    const response = await fetch(href, { cache: "no-cache", signal });
    if (response.ok) {
      const text = await response.text();
      const json = parse(text, href);
      try {
        const cache = await cacheStorage?.open(MANIFEST_CACHE);
        await cache?.put(href, new Response(text, { headers: { "content-type": "application/json" } }));
      } catch {
        // No storage (quota, private mode): the page still works, only not offline.
      }
      return { json, offline: false };
    }
    if (response.status === 404) {
      throw new Error(
        `there is no manifest.json at ${href} (HTTP 404): check the model address (?model=...) and that the build was deployed`,
      );
    }
    if (response.status < 500) {
      throw new Error(`fetching ${href} was refused: HTTP ${response.status}; check the server's configuration`);
    }
    why = `HTTP ${response.status}`;
  } catch (e) {
    if (!(e instanceof TypeError)) throw e; // a network failure is a TypeError; everything else is final
    why = e.message;
  }
  let stored;
  try {
    stored = await (await cacheStorage?.open(MANIFEST_CACHE))?.match(href);
  } catch {
    stored = undefined;
  }
  if (!stored) {
    throw new Error(
      `cannot reach ${href} (${why}) and no copy of it is stored for offline use: check the connection and retry`,
    );
  }
  return { json: parse(await stored.text(), href), offline: true };
}
