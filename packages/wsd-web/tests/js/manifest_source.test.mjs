import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";

import { MANIFEST_CACHE, loadManifest } from "../../src/wsd_web/static/js/manifest_source.js";

/** A CacheStorage with the part of the API loadManifest uses, over a Map of Maps. */
function memoryCaches() {
  /** @type {Map<string, Map<string, string>>} */
  const stores = new Map();
  return {
    stores,
    /** @param {string} name */
    async open(name) {
      if (!stores.has(name)) stores.set(name, new Map());
      const store = /** @type {Map<string, string>} */ (stores.get(name));
      return {
        /** @param {string} url @param {Response} response */
        async put(url, response) { store.set(url, await response.text()); },
        /** @param {string} url */
        async match(url) { return store.has(url) ? new Response(store.get(url)) : undefined; },
      };
    },
  };
}

/**
 * Serve `reply(req)` -> [status, body] on a free port for the duration of `body`.
 * @param {(url: string) => [number, string]} reply
 * @param {(base: string) => Promise<void>} body
 */
async function serving(reply, body) {
  const server = createServer((req, res) => {
    const [status, text] = reply(String(req.url));
    res.writeHead(status, { "content-type": "application/json" }).end(text);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  try {
    await body(`http://127.0.0.1:${port}/`);
  } finally {
    server.close();
  }
}

test("the manifest comes from the network and a copy is kept; offline, the copy is used", async () => {
  const caches = memoryCaches();
  let status = 200;
  await serving(() => [status, status === 200 ? '{"version": 2}' : "down"], async (base) => {
    const url = `${base}model/manifest.json`;
    const first = await loadManifest(url, { cacheStorage: /** @type {any} */ (caches) });
    assert.deepEqual(first, { json: { version: 2 }, offline: false });
    assert.equal(caches.stores.get(MANIFEST_CACHE)?.get(url), '{"version": 2}');
    status = 503;
    assert.deepEqual(await loadManifest(url, { cacheStorage: /** @type {any} */ (caches) }), { json: { version: 2 }, offline: true });
  });
  // The server is gone altogether (connection refused): still the stored copy.
  const gone = "http://127.0.0.1:9/model/manifest.json";
  await assert.rejects(loadManifest(gone, { cacheStorage: /** @type {any} */ (memoryCaches()) }), /cannot reach .* no copy of it is stored for offline use/);
});

test("a missing manifest, a refusal and non-JSON are final, with what to check", async () => {
  await serving((url) => (url.includes("missing") ? [404, ""] : url.includes("denied") ? [403, ""] : [200, "<html>"]), async (base) => {
    const caches = /** @type {any} */ (memoryCaches());
    await assert.rejects(loadManifest(`${base}missing/manifest.json`, { cacheStorage: caches }), /no manifest.json at .*HTTP 404.*\?model=/);
    await assert.rejects(loadManifest(`${base}denied/manifest.json`, { cacheStorage: caches }), /was refused: HTTP 403/);
    await assert.rejects(loadManifest(`${base}html/manifest.json`, { cacheStorage: caches }), /is not JSON .*check the model address/);
  });
});

test("without any cache storage the manifest still loads", async () => {
  await serving(() => [200, '{"a": 1}'], async (base) => {
    const broken = { open: async () => { throw new Error("SecurityError"); } };
    assert.deepEqual(await loadManifest(`${base}m.json`, { cacheStorage: /** @type {any} */ (broken) }), { json: { a: 1 }, offline: false });
  });
});
