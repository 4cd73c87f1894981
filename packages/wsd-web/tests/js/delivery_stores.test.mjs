// The content-addressed stores: MemoryStore's bound, CacheStore's keys and
// listing in the Cache API, and the fallback when that API is unusable.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CacheStore, MemoryStore, openContentStore } from "../../src/wsd_web/static/js/delivery.js";
import { FILES, MANIFEST_FILES, serveBuild } from "./delivery_fixtures.mjs";

const { downloader } = serveBuild();

test("MemoryStore makes room within maxBytes and refuses what cannot fit", async () => {
  const store = new MemoryStore({ maxBytes: 10 });
  await store.put("a", new Uint8Array(4), { file: "a" });
  await store.put("b", new Uint8Array(4), { file: "b" });
  await store.put("c", new Uint8Array(4), { file: "c" });
  assert.deepEqual((await store.entries()).map((e) => e.file), ["b", "c"]);
  await assert.rejects(store.put("d", new Uint8Array(11), { file: "d" }), { name: "QuotaExceededError" });
  await store.delete("b");
  await store.clear();
  assert.deepEqual(await store.entries(), []);
});


/** A CacheStorage of real Requests and Responses in Maps, as much of it as CacheStore uses. */
class FakeCacheStorage {
  /** @type {Map<string, Map<string, Response>>} */
  caches = new Map();
  /** @param {string} name */
  async open(name) {
    let entries = this.caches.get(name);
    if (!entries) this.caches.set(name, (entries = new Map()));
    const map = entries;
    /** @param {RequestInfo | URL} key */
    const url = (key) => (key instanceof Request ? key.url : new URL(String(key)).href);
    return {
      /** @param {RequestInfo | URL} key */
      async match(key) { return map.get(url(key))?.clone(); },
      /** @param {RequestInfo | URL} key @param {Response} response */
      async put(key, response) {
        const body = await response.arrayBuffer();
        map.set(url(key), new Response(body, { status: response.status, headers: response.headers }));
      },
      /** @param {RequestInfo | URL} key */
      async delete(key) { return map.delete(url(key)); },
      async keys() { return [...map.keys()].map((k) => new Request(k)); },
    };
  }
  /** @param {string} name */
  async delete(name) { return this.caches.delete(name); }
}

test("CacheStore keeps contents under synthetic same-origin keys and lists them without bodies", async () => {
  const fake = new FakeCacheStorage();
  const store = new CacheStore({ cacheStorage: /** @type {any} */ (fake), origin: "https://example.test" });
  const bytes = FILES.get("shard-0.bin") ?? new Uint8Array();
  const { integrity } = MANIFEST_FILES["shard-0.bin"];
  assert.equal(await store.get(integrity), null);
  await store.put(integrity, bytes, { file: "shard-0.bin" });
  const key = store.keyFor(integrity);
  assert.match(key, /^https:\/\/example\.test\/\.wsd-content\/sha384\/[A-Za-z0-9_-]+$/);
  const cache = /** @type {Map<string, Response>} */ (fake.caches.get("wsd-content-v1"));
  assert.deepEqual([...cache.keys()], [key]);
  assert.equal(cache.get(key)?.headers.get("x-wsd-file"), "shard-0.bin");
  assert.deepEqual(await store.get(integrity), bytes);

  // Foreign keys in the same cache are not ours to list or clear.
  await (await fake.open("wsd-content-v1")).put("https://example.test/other", new Response("x"));
  await store.put("sha384-AAAA", new Uint8Array(3), { file: "dir/näme.bin" });
  const entries = await store.entries();
  assert.deepEqual(entries.map((e) => [e.integrity, e.file, e.bytes]).sort(), [
    [integrity, "shard-0.bin", bytes.length], ["sha384-AAAA", "dir/näme.bin", 3],
  ].sort());
  assert.ok(entries.every((e) => e.storedAt > 0 && e.storedAt <= Date.now()));

  await store.delete("sha384-AAAA");
  assert.equal(await store.get("sha384-AAAA"), null);
  await store.clear();
  assert.deepEqual(await store.entries(), []);
  assert.ok(cache.has("https://example.test/other"));

  // The Downloader on a CacheStore: the second Downloader reads the cache.
  const d1 = downloader({ store });
  await d1.get("tokenizer.json");
  const d2 = downloader({ store });
  assert.deepEqual(await d2.get("tokenizer.json"), FILES.get("tokenizer.json"));
  assert.equal(d2.stats.requests, 0);
});

test("without a usable Cache API the store falls back to memory", async () => {
  assert.throws(() => new CacheStore({ cacheStorage: /** @type {any} */ (undefined), origin: "https://x.test" }), /no Cache API/);
  assert.throws(() => new CacheStore({ cacheStorage: /** @type {any} */ (new FakeCacheStorage()), origin: "null" }), /needs an http\(s\) origin/);
  const refusing = { open: async () => { throw new DOMException("private browsing", "SecurityError"); } };
  const fallback = await openContentStore({ cacheStorage: /** @type {any} */ (refusing), origin: "https://x.test" });
  assert.ok(fallback instanceof MemoryStore);
  assert.equal(fallback.persistent, false);
  const real = await openContentStore({ cacheStorage: /** @type {any} */ (new FakeCacheStorage()), origin: "https://x.test" });
  assert.ok(real instanceof CacheStore);
  assert.equal(real.persistent, true);
});
