// fetchBytes, one URL over an unreliable network: Range resume, retries with
// backoff and Retry-After, the errors that are not retried, the size check and
// cancellation, against the fault-injecting server and scripted responses.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import {
  DownloadCancelled, HttpError, IntegrityError, NetworkError, fetchBytes,
} from "../../src/wsd_web/static/js/delivery.js";
import { FILES, SHARDS, serveBuild } from "./delivery_fixtures.mjs";

const { server, downloader } = serveBuild();

/** A sleep that records its delays and returns at once. */
function fakeSleep() {
  /** @type {number[]} */
  const delays = [];
  return { delays, sleep: async (/** @type {number} */ ms) => { delays.push(ms); } };
}

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
