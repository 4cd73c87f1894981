// The Downloader, the top layer of delivery.js: a manifest's files from the
// store first and the network second, verified, kept, counted and reported;
// and the hashing and formatting it exports.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Downloader, HttpError, IntegrityError, MemoryStore, StorageWarning, formatBytes, formatSeconds, sri384,
} from "../../src/wsd_web/static/js/delivery.js";
import { FILES, MANIFEST_FILES, SHARDS, pause, serveBuild, sri } from "./delivery_fixtures.mjs";

/** @typedef {import("../../src/wsd_web/static/js/delivery.js").DownloadProgress} DownloadProgress */

const { server, downloader } = serveBuild();

/**
 * A fetch whose bodies arrive in chunks of `size` bytes, as over a real network.
 * @param {number} size
 * @returns {typeof fetch}
 */
function chunkyFetch(size) {
  return async (url, init) => {
    const response = await fetch(url, init);
    const whole = new Uint8Array(await response.arrayBuffer());
    let offset = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (offset >= whole.length) controller.close();
        else controller.enqueue(whole.slice(offset, (offset += size)));
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
}

test("sri384 is the SRI form of SHA-384", async () => {
  for (const bytes of [new Uint8Array(0), FILES.get("model.wasm") ?? new Uint8Array()]) {
    assert.equal(await sri384(bytes), sri(bytes));
  }
});

test("bytes and durations read well", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(12.3 * 1024 * 1024), "12.3 MiB");
  assert.equal(formatBytes(1024 * 1024 - 1), "1.0 MiB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
  assert.equal(formatBytes(-2048), "-2.0 KiB");
  assert.equal(formatBytes(NaN), "? B");
  assert.equal(formatSeconds(0.4), "0 s");
  assert.equal(formatSeconds(45), "45 s");
  assert.equal(formatSeconds(65), "1 min 5 s");
  assert.equal(formatSeconds(120), "2 min");
  assert.equal(formatSeconds(3600 + 180), "1 h 3 min");
  assert.equal(formatSeconds(7200), "2 h");
  assert.equal(formatSeconds(null), "unknown");
});

test("a file is fetched, verified and stored; a reload makes no requests", async () => {
  const store = new MemoryStore();
  /** @type {Array<RequestCache | undefined>} */
  const modes = [];
  const first = downloader({ store, fetch: (url, init) => { modes.push(init?.cache); return fetch(url, init); } });
  const bytes = await first.get("model.wasm");
  assert.deepEqual(bytes, FILES.get("model.wasm"));
  assert.equal(first.stats.requests, 1);
  assert.equal(first.stats.networkBytes, bytes.length);
  assert.deepEqual(modes, ["no-store"], "the HTTP cache is bypassed: the store is the cache");
  assert.equal(server.requests("model.wasm").at(-1)?.cacheControl, "no-cache");
  assert.deepEqual((await store.entries()).map((e) => [e.file, e.bytes, e.integrity]), [["model.wasm", bytes.length, MANIFEST_FILES["model.wasm"].integrity]]);

  const before = server.log.length;
  const reload = downloader({ store });
  assert.deepEqual(await reload.get("model.wasm"), bytes);
  assert.equal(server.log.length, before);
  assert.deepEqual(reload.stats, { requests: 0, networkBytes: 0, cacheHits: 1, retries: 0, unstoredBytes: 0 });
});

test("a file the manifest does not list is refused by name", async () => {
  await assert.rejects(downloader().get("evil.bin"), /the manifest does not list evil.bin/);
  const d = new Downloader({ baseUrl: server.base, files: { "x.bin": { bytes: 1, integrity: "md5-abc" } } });
  await assert.rejects(d.get("x.bin"), /entry for x.bin has no size and sha384 integrity/);
});

test("bytes corrupted in transit are named, not stored and never returned", async () => {
  server.faults.set("shard-0.bin", [{ flip: 1234 }]);
  const store = new MemoryStore();
  const error = await downloader({ store }).get("shard-0.bin").catch((e) => e);
  assert.ok(error instanceof IntegrityError);
  assert.equal(error.file, "shard-0.bin");
  assert.equal(error.source, "network");
  assert.equal(error.expected, MANIFEST_FILES["shard-0.bin"].integrity);
  assert.notEqual(error.actual, error.expected);
  assert.match(error.message, /shard-0.bin arrived corrupted.*in transit or comes from another build.*discarded; retry.*redeploy/);
  assert.deepEqual(await store.entries(), []);
});

test("a corrupted cache entry is evicted and named; the next get downloads it again", async () => {
  const store = new MemoryStore();
  const { integrity } = MANIFEST_FILES["shard-1.bin"];
  const bad = (FILES.get("shard-1.bin") ?? new Uint8Array()).slice();
  bad[7] ^= 1;
  await store.put(integrity, bad, { file: "shard-1.bin" });
  const d = downloader({ store });
  const error = await d.get("shard-1.bin").catch((e) => e);
  assert.ok(error instanceof IntegrityError);
  assert.equal(error.source, "cache");
  assert.match(error.message, /the cached copy of shard-1.bin is corrupted.*discarded; retry/);
  assert.equal(await store.get(integrity), null);
  assert.equal(d.loadedBytes, 0);
  assert.deepEqual(await d.get("shard-1.bin"), FILES.get("shard-1.bin"));
  assert.deepEqual(await store.get(integrity), FILES.get("shard-1.bin"));
  assert.equal(d.loadedBytes, d.totalBytes);
});

test("getAll keeps at most `concurrency` files in flight and consumes each verified file", async () => {
  for (const path of SHARDS) server.faults.set(path, [{ delayMs: 20 }]);
  server.load.max = 0;
  /** @type {Map<string, Uint8Array>} */
  const got = new Map();
  let holding = 0;
  let maxHolding = 0;
  const d = downloader({ concurrency: 3 });
  await d.getAll(SHARDS, async (path, bytes) => {
    holding += 1;
    maxHolding = Math.max(maxHolding, holding);
    await pause(5);
    got.set(path, bytes);
    holding -= 1;
  });
  assert.ok(server.load.max <= 3, `the server saw ${server.load.max} requests at once`);
  assert.ok(server.load.max >= 2, "requests did overlap");
  assert.ok(maxHolding <= 3);
  assert.deepEqual([...got.keys()].sort(), [...SHARDS].sort());
  for (const path of SHARDS) assert.deepEqual(got.get(path), FILES.get(path));
  assert.equal(d.loadedBytes, d.totalBytes);
});

test("getAll's first failure cancels the rest and is what it rejects with", async () => {
  for (const path of SHARDS) server.faults.set(path, [{ hang: true }]);
  const paths = [...SHARDS.slice(0, 3), "gone.bin"];
  /** @type {string[]} */
  const consumed = [];
  const started = Date.now();
  const error = await downloader({ concurrency: 4 }).getAll(paths, (p) => { consumed.push(p); }).catch((e) => e);
  assert.ok(error instanceof HttpError && error.status === 404, String(error));
  assert.deepEqual(consumed, []);
  assert.ok(Date.now() - started < 1000);
  for (const path of SHARDS) server.faults.delete(path);

  const boom = new Error("upload failed");
  await assert.rejects(downloader({ concurrency: 2 }).getAll(SHARDS, () => { throw boom; }), (e) => e === boom);
});

test("a store that refuses (quota) warns once and the download goes on", async () => {
  /** @type {string[]} */
  const warnings = [];
  /** @type {StorageWarning[]} */
  const details = [];
  const full = new MemoryStore();
  full.put = async () => { throw new DOMException("quota exceeded", "QuotaExceededError"); };
  const d = downloader({ store: full, onWarning: (message, warning) => { warnings.push(message); details.push(warning); } });
  assert.deepEqual(await d.get("shard-7.bin"), FILES.get("shard-7.bin"));
  assert.deepEqual(await d.get("tokenizer.json"), FILES.get("tokenizer.json"));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /the browser refused to store 19.5 KiB \(shard-7.bin; quota\): the model will download again next time; free space or clear cached models/);
  assert.ok(details[0] instanceof StorageWarning && details[0].quota);
  assert.equal(d.stats.unstoredBytes, (FILES.get("shard-7.bin")?.length ?? 0) + 2);

  const broken = new MemoryStore();
  broken.put = async () => { throw new Error("disk on fire"); };
  broken.get = async () => { throw new Error("unreadable"); };
  /** @type {string[]} */
  const other = [];
  assert.deepEqual(await downloader({ store: broken, onWarning: (m) => other.push(m) }).get("tokenizer.json"), FILES.get("tokenizer.json"));
  assert.match(other[0], /refused to store 2 B \(tokenizer.json; disk on fire\)/);
});

test("progress counts cache and network bytes against the planned total, with rate and time left", async () => {
  const store = new MemoryStore();
  await downloader({ store }).get("shard-0.bin");
  /** @type {DownloadProgress[]} */
  const events = [];
  let clock = 0;
  const d = downloader({ store, fetch: chunkyFetch(4096), onProgress: (p) => events.push(p), now: () => (clock += 1000) });
  const paths = ["shard-0.bin", "model.wasm", "tokenizer.json"];
  const total = paths.reduce((n, p) => n + MANIFEST_FILES[p].bytes, 0);
  assert.equal(d.plan(paths), total);
  assert.equal(d.plan(paths), total, "planning twice counts once");
  await d.getAll(paths, () => {});
  assert.ok(events.every((e) => e.totalBytes === total && e.loadedBytes <= total));
  const cached = events.find((e) => e.file === "shard-0.bin");
  assert.equal(cached?.fromCacheBytes, MANIFEST_FILES["shard-0.bin"].bytes);
  const last = /** @type {DownloadProgress} */ (events.at(-1));
  assert.equal(last.loadedBytes, total);
  assert.equal(last.fromCacheBytes, MANIFEST_FILES["shard-0.bin"].bytes);
  assert.equal(last.secondsLeft, 0);
  const moving = events.filter((e) => e.bytesPerSecond !== null && e.loadedBytes < total);
  assert.ok(moving.length > 0, "the rate becomes known while bytes arrive");
  for (const e of moving) {
    assert.ok((e.bytesPerSecond ?? 0) > 0);
    assert.ok(Math.abs((e.secondsLeft ?? -1) - (total - e.loadedBytes) / (e.bytesPerSecond ?? 1)) < 1e-9);
  }
  assert.equal(events[0].bytesPerSecond, null, "unknown at first");
  assert.equal(d.stats.cacheHits, 1);
  assert.equal(d.stats.networkBytes, total - MANIFEST_FILES["shard-0.bin"].bytes);
});

test("prune deletes what this build does not list", async () => {
  const store = new MemoryStore();
  await store.put("sha384-old", new Uint8Array(10), { file: "old.bin" });
  const d = downloader({ store });
  await d.get("tokenizer.json");
  assert.deepEqual(await d.prune(), { files: 1, bytes: 10 });
  assert.deepEqual((await store.entries()).map((e) => e.file), ["tokenizer.json"]);
});

test("inspect sees network bytes before the checksum and its error wins", async () => {
  const bytes = new TextEncoder().encode("a library of another build");
  const files = { "model.wasm": { bytes: bytes.length, integrity: await sri384(new TextEncoder().encode("expected")) } };
  const fetch = /** @type {typeof globalThis.fetch} */ (async () => new Response(bytes));
  /** @type {Array<[string, number]>} */
  const seen = [];
  const downloader = new Downloader({
    baseUrl: "http://example.invalid/m/", files, fetch,
    inspect: (path, b) => { seen.push([path, b.length]); throw new Error("build mismatch"); },
  });
  await assert.rejects(downloader.get("model.wasm"), /build mismatch/);
  assert.deepEqual(seen, [["model.wasm", bytes.length]]);
});
