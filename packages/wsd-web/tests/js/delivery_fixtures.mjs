// The delivery tests' shared fixtures: a build of random files with their
// manifest entries, and a real HTTP server of them that injects faults per
// request (resets, cut bodies, flipped bytes, ignored Range, hangs, statuses).

import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { after, before } from "node:test";

import { Downloader } from "../../src/wsd_web/static/js/delivery.js";

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
export const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {Uint8Array} bytes */
export const sri = (bytes) => `sha384-${createHash("sha384").update(bytes).digest("base64")}`;

/**
 * An HTTP server of generated files that can inject faults per request; `base` is its URL once
 * `start` has resolved.
 * @param {Map<string, Uint8Array>} files
 */
export function serve(files) {
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
  const handle = {
    base: "",
    faults,
    log,
    load,
    /** @param {string} path */
    requests: (path) => log.filter((r) => r.path === path),
    async start() {
      await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
      const address = /** @type {import("node:net").AddressInfo} */ (server.address());
      handle.base = `http://127.0.0.1:${address.port}/`;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
  return handle;
}

/** @type {Map<string, Uint8Array>} */
export const FILES = new Map([
  ["model.wasm", new Uint8Array(randomBytes(40_000))],
  ["tensor-cache.json", new TextEncoder().encode(JSON.stringify({ records: [] }))],
  ["tokenizer.json", new TextEncoder().encode("{}")],
  ["gone.bin", new Uint8Array(randomBytes(100))],
  ...Array.from({ length: 8 }, (_, i) => /** @type {[string, Uint8Array]} */ ([`shard-${i}.bin`, new Uint8Array(randomBytes(20_000 + i))])),
]);
/** The manifest's files map. */
export const MANIFEST_FILES = Object.fromEntries([...FILES].map(([path, bytes]) => [path, { bytes: bytes.length, integrity: sri(bytes) }]));
export const SHARDS = [...FILES.keys()].filter((p) => p.startsWith("shard-"));

/**
 * The test build for the calling test file, on a server of its own: started before its tests and
 * closed after them, with gone.bin listed in the manifest but not served. `downloader` makes a
 * Downloader of that build with fast retries.
 */
export function serveBuild() {
  const served = new Map(FILES);
  served.delete("gone.bin");
  const server = serve(served);
  before(() => server.start());
  after(() => server.close());
  /** @param {Partial<import("../../src/wsd_web/static/js/delivery.js").DownloaderOptions>} [options] */
  const downloader = (options = {}) =>
    new Downloader({ baseUrl: server.base, files: MANIFEST_FILES, backoffMs: 1, ...options });
  return { server, downloader };
}
