import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { after, before, test } from "node:test";

import {
  CacheStore, DownloadCancelled, Downloader, HttpError, IntegrityError, MemoryStore, NetworkError,
  StorageWarning, fetchBytes, formatBytes, formatSeconds, openContentStore, sri384,
} from "../../src/wsd_web/static/js/delivery.js";

/** @typedef {import("../../src/wsd_web/static/js/delivery.js").DownloadProgress} DownloadProgress */

/**
 * What the server does with one request of a path (faults are used up in order).
 * @typedef {object} Fault
 * @property {number} [status]  Answer this status with no body.
 * @property {string} [retryAfter]  With status: a Retry-After header.
 * @property {boolean} [reset]  Destroy the socket before answering.
 * @property {number} [dropAfter]  Send this many body bytes, then destroy the socket.
 * @property {number} [flip]  Flip the byte at this offset.
 * @property {boolean} [ignoreRange]  Answer 200 with the whole file even to a Range request.
 * @property {boolean} [hang]  Send a few bytes, then never finish.
 * @property {number} [delayMs]  Wait before answering.
 */

/** @param {number} ms */
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {Uint8Array} bytes */
const sri = (bytes) => `sha384-${createHash("sha384").update(bytes).digest("base64")}`;

/**
 * An HTTP server of generated files that can inject faults per request.
 * @param {Map<string, Uint8Array>} files
 */
async function serve(files) {
  /** @type {Map<string, Fault[]>} */
  const faults = new Map();
  /** @type {Array<{path: string, range: string | null, cacheControl: string | null}>} */
  const log = [];
  const load = { active: 0, max: 0 };
  const server = http.createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname.slice(1));
    log.push({ path, range: req.headers.range ?? null, cacheControl: req.headers["cache-control"] ?? null });
    load.active += 1;
    load.max = Math.max(load.max, load.active);
    res.on("close", () => { load.active -= 1; });
    const fault = faults.get(path)?.shift() ?? {};
    if (fault.delayMs) await pause(fault.delayMs);
    if (fault.reset) {
      req.socket.destroy();
      return;
    }
    const body = files.get(path);
    if (fault.status || !body) {
      res.writeHead(fault.status ?? 404, fault.retryAfter ? { "retry-after": fault.retryAfter } : {});
      res.end();
      return;
    }
    let data = Buffer.from(body);
    if (fault.flip !== undefined) data[fault.flip] ^= 0xff;
    /** @type {Record<string, string>} */
    const headers = { "content-type": "application/octet-stream", "accept-ranges": "bytes" };
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range && !fault.ignoreRange) {
      const start = Number(range[1]);
      status = 206;
      headers["content-range"] = `bytes ${start}-${data.length - 1}/${data.length}`;
      data = data.subarray(start);
    }
    headers["content-length"] = String(data.length);
    res.writeHead(status, headers);
    if (fault.dropAfter !== undefined) {
      res.write(data.subarray(0, fault.dropAfter), () => setTimeout(() => res.socket?.destroy(), 20));
    } else if (fault.hang) {
      res.write(data.subarray(0, 16));
    } else {
      res.end(data);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    base: `http://127.0.0.1:${address.port}/`,
    faults,
    log,
    load,
    /** @param {string} path */
    requests: (path) => log.filter((r) => r.path === path),
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/** @type {Map<string, Uint8Array>} */
const FILES = new Map([
  ["model.wasm", new Uint8Array(randomBytes(40_000))],
  ["tensor-cache.json", new TextEncoder().encode(JSON.stringify({ records: [] }))],
  ["tokenizer.json", new TextEncoder().encode("{}")],
  ["gone.bin", new Uint8Array(randomBytes(100))],
  ...Array.from({ length: 8 }, (_, i) => /** @type {[string, Uint8Array]} */ ([`shard-${i}.bin`, new Uint8Array(randomBytes(20_000 + i))])),
]);
/** The manifest's files map. */
const MANIFEST_FILES = Object.fromEntries([...FILES].map(([path, bytes]) => [path, { bytes: bytes.length, integrity: sri(bytes) }]));
const SHARDS = [...FILES.keys()].filter((p) => p.startsWith("shard-"));

/** @type {Awaited<ReturnType<typeof serve>>} */
let server;
before(async () => {
  const served = new Map(FILES);
  served.delete("gone.bin");
  server = await serve(served);
});
after(() => server.close());

/**
 * A Downloader of the test build with fast retries.
 * @param {Partial<import("../../src/wsd_web/static/js/delivery.js").DownloaderOptions>} [options]
 */
function downloader(options = {}) {
  return new Downloader({ baseUrl: server.base, files: MANIFEST_FILES, backoffMs: 1, ...options });
}

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

/** A sleep that records its delays and returns at once. */
function fakeSleep() {
  /** @type {number[]} */
  const delays = [];
  return { delays, sleep: async (/** @type {number} */ ms) => { delays.push(ms); } };
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

test("a body cut mid-way resumes with Range", async () => {
  server.faults.set("shard-2.bin", [{ dropAfter: 5000 }]);
  const d = downloader();
  const bytes = await d.get("shard-2.bin");
  assert.deepEqual(bytes, FILES.get("shard-2.bin"));
  const requests = server.requests("shard-2.bin");
  assert.equal(requests.length, 2);
  assert.equal(requests[0].range, null);
  assert.match(requests[1].range ?? "", /^bytes=[1-9]\d*-$/);
  assert.equal(d.stats.retries, 1);
  assert.equal(d.stats.networkBytes, bytes.length, "nothing was downloaded twice");
});

test("a server that ignores Range makes the download start over", async () => {
  server.faults.set("shard-3.bin", [{ dropAfter: 5000 }, { ignoreRange: true }]);
  /** @type {number[]} */
  const counts = [];
  const expected = FILES.get("shard-3.bin") ?? new Uint8Array();
  const bytes = await fetchBytes(new URL("shard-3.bin", server.base), {
    expectedBytes: expected.length, backoffMs: 1, onBytes: (n) => counts.push(n),
  });
  assert.deepEqual(bytes, expected);
  const requests = server.requests("shard-3.bin");
  assert.equal(requests.length, 2);
  assert.match(requests[1].range ?? "", /^bytes=\d+-$/);
  const discarded = counts.filter((n) => n < 0);
  assert.equal(discarded.length, 1, "the partial bytes are taken back once");
  assert.equal(counts.reduce((a, b) => a + b, 0), expected.length, "onBytes sums to the bytes held");
});

test("HTTP 503 is retried with exponential backoff, and Retry-After is honoured", async () => {
  server.faults.set("shard-4.bin", [{ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 }]);
  const { delays, sleep } = fakeSleep();
  const d = downloader({ sleep, backoffMs: 100 });
  assert.deepEqual(await d.get("shard-4.bin"), FILES.get("shard-4.bin"));
  assert.equal(d.stats.retries, 4);
  assert.equal(d.stats.requests, 5);
  assert.equal(delays.length, 4);
  delays.forEach((ms, i) => {
    assert.ok(ms >= 50 * 2 ** i && ms <= 100 * 2 ** i, `retry ${i} waited ${ms} ms`);
  });

  server.faults.set("shard-4.bin", [{ status: 429, retryAfter: "2" }, { status: 503, retryAfter: "3600" }]);
  const waits = fakeSleep();
  await fetchBytes(new URL("shard-4.bin", server.base), { sleep: waits.sleep });
  assert.deepEqual(waits.delays, [2000, 30_000]);
});

test("backoff is capped", async () => {
  const { delays, sleep } = fakeSleep();
  server.faults.set("tokenizer.json", Array.from({ length: 6 }, () => ({ status: 500 })));
  await fetchBytes(new URL("tokenizer.json", server.base), { sleep, backoffMs: 1000, maxBackoffMs: 4000, retries: 6, random: () => 0.999 });
  assert.ok(delays.every((ms) => ms <= 4000));
  assert.ok((delays.at(-1) ?? 0) > 3900);
});

test("HTTP 404 is not retried and says the build is incomplete", async () => {
  const d = downloader();
  const error = await d.get("gone.bin").catch((e) => e);
  assert.ok(error instanceof HttpError);
  assert.equal(error.status, 404);
  assert.match(error.message, /the server has no gone.bin.*incomplete or from another version; redeploy it/);
  assert.equal(server.requests("gone.bin").length, 1);
  assert.equal(d.stats.retries, 0);

  server.faults.set("tokenizer.json", [{ status: 403 }]);
  await assert.rejects(fetchBytes(new URL("tokenizer.json", server.base)), /refused to send tokenizer.json \(HTTP 403/);
  server.faults.set("tokenizer.json", [{ status: 400 }]);
  await assert.rejects(fetchBytes(new URL("tokenizer.json", server.base)), /answered HTTP 400 for tokenizer.json/);
});

test("retries run out: HttpError for a failing server, NetworkError for a failing connection", async () => {
  server.faults.set("shard-5.bin", Array.from({ length: 3 }, () => ({ status: 503 })));
  const http503 = await downloader({ retries: 2 }).get("shard-5.bin").catch((e) => e);
  assert.ok(http503 instanceof HttpError);
  assert.equal(http503.attempts, 3);
  assert.match(http503.message, /the server kept failing \(HTTP 503\) on shard-5.bin after 3 attempts.*retry later/);

  server.faults.set("shard-5.bin", [{ reset: true }, { dropAfter: 0 }, { reset: true }]);
  const net = await downloader({ retries: 2 }).get("shard-5.bin").catch((e) => e);
  assert.ok(net instanceof NetworkError);
  assert.equal(net.attempts, 3);
  assert.match(net.message, /the connection failed 3 times while downloading shard-5.bin.*check the network connection/);
});

test("a flaky link that keeps making progress is not given up on", async () => {
  const drops = [3000, 3000, 3000, 3000, 3000, 3000].map((n) => ({ dropAfter: n }));
  server.faults.set("model.wasm", drops);
  const bytes = await fetchBytes(new URL("model.wasm", server.base), { retries: 2, backoffMs: 1 });
  assert.deepEqual(bytes, FILES.get("model.wasm"));
  assert.equal(server.requests("model.wasm").filter((r) => r.range).length >= 6, true);
});

test("a size that contradicts the manifest is an integrity problem", async () => {
  const url = new URL("tokenizer.json", server.base);
  await assert.rejects(fetchBytes(url, { expectedBytes: 1 }), (e) => e instanceof IntegrityError && e.kind === "size" && /tokenizer.json arrived corrupted/.test(e.message));
  await assert.rejects(fetchBytes(url, { expectedBytes: 10 }), (e) => e instanceof IntegrityError && e.actual === "2 bytes");
});

/**
 * A fetch that answers from a script, one step per request, and records each request's Range.
 * @param {Array<() => Response>} steps
 */
function scripted(steps) {
  /** @type {Array<string | null>} */
  const ranges = [];
  /** @type {typeof globalThis.fetch} */
  const fetch = async (_url, init) => {
    ranges.push(new Headers(init?.headers).get("range"));
    const step = steps.shift();
    if (!step) throw new Error("the script ran out");
    return step();
  };
  return { fetch, ranges };
}

/**
 * A body that delivers `bytes` and then fails (or ends, when `fail` is false).
 * @param {Uint8Array} bytes
 * @param {boolean} [fail]
 */
function body(bytes, fail = true) {
  let sent = false;
  return new ReadableStream({
    pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(bytes.slice());
      } else if (fail) {
        controller.error(new TypeError("terminated"));
      } else {
        controller.close();
      }
    },
  }, { highWaterMark: 0 });
}

test("partial responses that do not continue the download make it start over", async () => {
  const data = new Uint8Array(randomBytes(100));
  const ok = (/** @type {Record<string, string>} */ headers = {}) => new Response(data.slice(), { headers });
  const broken = () => new Response(body(data.subarray(0, 10)), { headers: { "accept-ranges": "bytes", "content-length": "100" } });

  const offset = scripted([
    broken,
    () => new Response(data.slice(5), { status: 206, headers: { "content-range": "bytes 5-99/100" } }),
    ok,
  ]);
  assert.deepEqual(await fetchBytes("http://h.test/a.bin", { fetch: offset.fetch, expectedBytes: 100, sleep: async () => {} }), data);
  assert.deepEqual(offset.ranges, [null, "bytes=10-", null]);

  const refused = scripted([broken, () => new Response(null, { status: 416 }), ok]);
  assert.deepEqual(await fetchBytes("http://h.test/a.bin", { fetch: refused.fetch, expectedBytes: 100, sleep: async () => {} }), data);
  assert.deepEqual(refused.ranges, [null, "bytes=10-", null]);

  // A body that ends cleanly but short of its Content-Length was cut: resume it.
  const short = scripted([
    () => new Response(body(data.subarray(0, 50), false), { headers: { "content-length": "100" } }),
    () => new Response(data.slice(50), { status: 206, headers: { "content-range": "bytes 50-99/100", "content-length": "50" } }),
  ]);
  assert.deepEqual(await fetchBytes("http://h.test/a.bin", { fetch: short.fetch, expectedBytes: 100, sleep: async () => {} }), data);
  assert.deepEqual(short.ranges, [null, "bytes=50-"]);

  // A server that says it cannot do ranges is not asked to.
  const none = scripted([
    () => new Response(body(data.subarray(0, 10)), { headers: { "accept-ranges": "none" } }),
    ok,
  ]);
  /** @type {number[]} */
  const counts = [];
  await fetchBytes("http://h.test/a.bin", { fetch: none.fetch, sleep: async () => {}, onBytes: (n) => counts.push(n) });
  assert.deepEqual(none.ranges, [null, null]);
  assert.deepEqual(counts, [10, -10, 100]);

  // A body that breaks just after its last byte is complete.
  const late = scripted([() => new Response(body(data))]);
  assert.deepEqual(await fetchBytes("http://h.test/a.bin", { fetch: late.fetch, expectedBytes: 100 }), data);
});

test("Retry-After may be an HTTP date", async () => {
  const waits = fakeSleep();
  const when = new Date(Date.now() + 10_000).toUTCString();
  const script = scripted([
    () => new Response(null, { status: 503, headers: { "retry-after": when } }),
    () => new Response(null, { status: 503, headers: { "retry-after": "soon" } }),
    () => new Response("ok"),
  ]);
  await fetchBytes("http://h.test/a.bin", { fetch: script.fetch, sleep: waits.sleep, backoffMs: 10, random: () => 0 });
  assert.ok(waits.delays[0] > 8000 && waits.delays[0] <= 10_000, String(waits.delays[0]));
  assert.equal(waits.delays[1], 10, "an unreadable Retry-After falls back to the backoff");
});

test("errors other than network failures are not retried", async () => {
  const bug = new RangeError("a bug");
  const script = scripted([() => { throw bug; }]);
  await assert.rejects(fetchBytes("http://h.test/a.bin", { fetch: script.fetch }), (e) => e === bug);
  assert.equal(script.ranges.length, 1);
  assert.match(new HttpError("http://h.test/x/y.bin", 401).message, /refused to send y.bin/);
});

test("cancelling stops a download at once, between retries too", async () => {
  server.faults.set("shard-6.bin", [{ hang: true }]);
  const controller = new AbortController();
  const d = downloader({ signal: controller.signal, onProgress: () => controller.abort() });
  const started = Date.now();
  await assert.rejects(d.get("shard-6.bin"), (e) => e instanceof DownloadCancelled && e.name === "DownloadCancelled");
  assert.ok(Date.now() - started < 1000);

  server.faults.set("shard-6.bin", [{ status: 503 }]);
  const during = new AbortController();
  const waiting = fetchBytes(new URL("shard-6.bin", server.base), { signal: during.signal, backoffMs: 60_000, onRetry: () => during.abort() });
  await assert.rejects(waiting, DownloadCancelled);

  // A sleep that ignores the signal does not delay the cancellation either.
  server.faults.set("shard-6.bin", [{ status: 503 }]);
  const stubborn = new AbortController();
  const slow = fetchBytes(new URL("shard-6.bin", server.base), {
    signal: stubborn.signal, sleep: () => new Promise(() => {}), onRetry: () => setTimeout(() => stubborn.abort(), 5),
  });
  await assert.rejects(slow, DownloadCancelled);

  const done = new AbortController();
  done.abort();
  await assert.rejects(downloader({ signal: done.signal }).get("shard-6.bin"), DownloadCancelled);
  await assert.rejects(downloader({ signal: done.signal }).getAll(SHARDS, () => {}), DownloadCancelled);
});

test("a fetch that ignores the signal is cancelled all the same", async () => {
  const controller = new AbortController();
  const never = /** @type {typeof fetch} */ (() => new Promise(() => {}));
  const pending = fetchBytes("http://127.0.0.1:1/x", { fetch: never, signal: controller.signal });
  setTimeout(() => controller.abort(), 5);
  await assert.rejects(pending, DownloadCancelled);
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
