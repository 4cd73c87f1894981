// Delivery of a model build: every file the manifest lists, fetched with
// retries and Range resume, checked against the manifest's size and sha384
// before any caller sees a byte, and kept in a content-addressed store (the
// Cache API in the browser) so that a reload makes no weight requests.
//
// Layers, each usable alone (this module exports them all):
//   delivery/errors.js     what went wrong, and what to do about it;
//   delivery/format.js     byte counts and durations for people;
//   delivery/integrity.js  sri384, hashing in the manifest's SRI form;
//   delivery/fetch.js      fetchBytes, one URL: retries with backoff, Range
//                          resume, cancellation;
//   delivery/stores.js     ContentStore: MemoryStore and CacheStore, keyed by
//                          integrity;
//   Downloader (here)      a manifest's files: store first, network second,
//                          verification, bounded concurrency, progress and stats.

import { DownloadCancelled, IntegrityError, StorageWarning, abortable, cancelled, throwIfCancelled } from "./delivery/errors.js";
import { defaultSleep, fetchBytes } from "./delivery/fetch.js";
import { SHA384_PREFIX, sri384 } from "./delivery/integrity.js";
import { MemoryStore } from "./delivery/stores.js";

export { DownloadCancelled, HttpError, IntegrityError, NetworkError, StorageWarning } from "./delivery/errors.js";
export { fetchBytes } from "./delivery/fetch.js";
export { formatBytes, formatSeconds } from "./delivery/format.js";
export { sri384 } from "./delivery/integrity.js";
export { CONTENT_KEY_PATH, CacheStore, DEFAULT_CACHE_NAME, MemoryStore, openContentStore } from "./delivery/stores.js";

/** @typedef {import("./delivery/stores.js").ContentStore} ContentStore */
/** @typedef {import("./delivery/stores.js").StoreEntry} StoreEntry */
/** @typedef {import("./delivery/fetch.js").Sleep} Sleep */
/** @typedef {import("./delivery/fetch.js").RetryInfo} RetryInfo */
/** @typedef {import("./delivery/fetch.js").FetchOptions} FetchOptions */

/**
 * A file of the manifest.
 * @typedef {object} FileEntry
 * @property {number} bytes
 * @property {string} integrity  "sha384-" + base64 of the SHA-384 digest.
 */

/**
 * @typedef {object} DownloadProgress
 * @property {number} loadedBytes  Bytes of the requested files held so far, from cache and network.
 * @property {number} totalBytes  Sizes of every file planned or requested so far.
 * @property {number} fromCacheBytes  The part of loadedBytes that came from the store.
 * @property {string} file  The file that moved.
 * @property {number | null} bytesPerSecond  Network rate over the last few seconds; null until known.
 * @property {number | null} secondsLeft  (totalBytes - loadedBytes) at that rate; null until known.
 */

/**
 * @typedef {object} DownloadStats
 * @property {number} requests  HTTP requests made, retries included.
 * @property {number} networkBytes  Bytes received from the network, discarded ones included.
 * @property {number} cacheHits  Files served from the store.
 * @property {number} retries
 * @property {number} unstoredBytes  Bytes the store refused.
 */

/**
 * @typedef {object} DownloaderOptions
 * @property {URL | string} baseUrl  The build's directory; file paths resolve against it.
 * @property {Record<string, FileEntry>} files  The manifest's files map.
 * @property {ContentStore} [store]  Default: a MemoryStore.
 * @property {typeof globalThis.fetch} [fetch]
 * @property {number} [concurrency]  Files in flight in getAll (default 4).
 * @property {number} [retries]  See FetchOptions.
 * @property {number} [backoffMs]  See FetchOptions.
 * @property {Sleep} [sleep]
 * @property {AbortSignal} [signal]  Cancels everything this Downloader does.
 * @property {(p: DownloadProgress) => void} [onProgress]
 * @property {(message: string, warning: StorageWarning) => void} [onWarning]  Called once, on the
 *   first file the store refuses.
 * @property {(path: string, bytes: Uint8Array) => void} [inspect]  Sees a file's bytes from the network
 *   before their checksum is compared, and may throw a more telling error (a file of another build).
 * @property {() => number} [now]  Millisecond clock for the rate (default performance.now).
 * @property {number} [rateWindowMs]  The rate's sliding window (default 5000).
 */

/** The rate is not shown before the samples span this long (a first burst says little). */
const MIN_RATE_SPAN_MS = 500;

/** Fetches, verifies and keeps the files of one build. */
export class Downloader {
  /** @type {DownloadStats} */
  stats = { requests: 0, networkBytes: 0, cacheHits: 0, retries: 0, unstoredBytes: 0 };

  #files;
  #store;
  #baseUrl;
  #fetch;
  #concurrency;
  #retries;
  #backoffMs;
  #sleep;
  #signal;
  #onProgress;
  #onWarning;
  #inspect;
  #now;
  #rateWindowMs;
  /** @type {Set<string>} */
  #planned = new Set();
  #totalBytes = 0;
  #loadedBytes = 0;
  #fromCacheBytes = 0;
  /** Bytes each file holds now, and whether they came from the store. @type {Map<string, {bytes: number, cached: boolean}>} */
  #held = new Map();
  /** Network samples within the rate window: [time, bytes received so far]. @type {Array<[number, number]>} */
  #samples = [];
  #warned = false;

  /** @param {DownloaderOptions} options */
  constructor({
    baseUrl, files, store = new MemoryStore(), fetch = globalThis.fetch, concurrency = 4, retries = 5,
    backoffMs = 500, sleep = defaultSleep, signal, onProgress = () => {}, onWarning = () => {},
    inspect = () => {}, now = () => performance.now(), rateWindowMs = 5000,
  }) {
    this.#baseUrl = new URL(String(baseUrl), globalThis.location?.href);
    this.#files = files;
    this.#store = store;
    this.#fetch = fetch;
    this.#concurrency = Math.max(1, Math.floor(concurrency));
    this.#retries = retries;
    this.#backoffMs = backoffMs;
    this.#sleep = sleep;
    this.#signal = signal;
    this.#onProgress = onProgress;
    this.#onWarning = onWarning;
    this.#inspect = inspect;
    this.#now = now;
    this.#rateWindowMs = rateWindowMs;
  }

  /**
   * The manifest's entry of a file.
   * @param {string} path
   * @returns {FileEntry}
   */
  #entry(path) {
    const entry = Object.hasOwn(this.#files, path) ? this.#files[path] : undefined;
    if (!entry) {
      throw new Error(`the manifest does not list ${path}: the page and the build disagree; reload the page, or redeploy the build`);
    }
    if (typeof entry.integrity !== "string" || !entry.integrity.startsWith(SHA384_PREFIX) || !Number.isInteger(entry.bytes)) {
      throw new Error(`the manifest's entry for ${path} has no size and sha384 integrity: rebuild the model with a current wsd-artifacts`);
    }
    return entry;
  }

  /**
   * Count files into totalBytes ahead of fetching them (get and getAll count the others as they come).
   * @param {Iterable<string>} paths
   * @returns {number} totalBytes
   */
  plan(paths) {
    for (const path of paths) {
      const entry = this.#entry(path);
      if (this.#planned.has(path)) continue;
      this.#planned.add(path);
      this.#totalBytes += entry.bytes;
    }
    return this.#totalBytes;
  }

  /** @returns {number} */
  get totalBytes() {
    return this.#totalBytes;
  }

  /** @returns {number} */
  get loadedBytes() {
    return this.#loadedBytes;
  }

  /**
   * Set what a file holds, keeping the totals in step.
   * @param {string} path
   * @param {number} bytes
   * @param {boolean} cached
   */
  #hold(path, bytes, cached) {
    const before = this.#held.get(path) ?? { bytes: 0, cached: false };
    this.#loadedBytes += bytes - before.bytes;
    this.#fromCacheBytes += (cached ? bytes : 0) - (before.cached ? before.bytes : 0);
    this.#held.set(path, { bytes, cached });
  }

  /** @returns {number | null} */
  #rate() {
    if (this.#samples.length < 2) return null;
    const [t0, b0] = this.#samples[0];
    const [t1, b1] = this.#samples[this.#samples.length - 1];
    return t1 - t0 >= MIN_RATE_SPAN_MS ? ((b1 - b0) * 1000) / (t1 - t0) : null;
  }

  /** @param {string} file */
  #report(file) {
    const bytesPerSecond = this.#rate();
    const left = Math.max(0, this.#totalBytes - this.#loadedBytes);
    this.#onProgress({
      loadedBytes: this.#loadedBytes,
      totalBytes: this.#totalBytes,
      fromCacheBytes: this.#fromCacheBytes,
      file,
      bytesPerSecond,
      secondsLeft: left === 0 ? 0 : bytesPerSecond ? left / bytesPerSecond : null,
    });
  }

  /**
   * Network bytes of a file: a chunk, or minus the discarded bytes of a restart.
   * @param {string} path
   * @param {number} n
   */
  #onNetworkBytes(path, n) {
    this.#hold(path, (this.#held.get(path)?.bytes ?? 0) + n, false);
    if (n > 0) {
      this.stats.networkBytes += n;
      const t = this.#now();
      this.#samples.push([t, this.stats.networkBytes]);
      while (this.#samples.length > 1 && this.#samples[0][0] < t - this.#rateWindowMs) this.#samples.shift();
    }
    this.#report(path);
  }

  /**
   * One file's verified bytes: from the store when it has them, else from the network.
   * @param {string} path  As the manifest names it, relative to baseUrl.
   * @returns {Promise<Uint8Array>}
   */
  get(path) {
    return this.#get(path, this.#signal);
  }

  /**
   * @param {string} path
   * @param {AbortSignal | undefined} signal
   * @returns {Promise<Uint8Array>}
   */
  async #get(path, signal) {
    const entry = this.#entry(path);
    throwIfCancelled(signal);
    this.plan([path]);
    this.#hold(path, 0, false);
    try {
      /** @type {Uint8Array | null} */
      let cached = null;
      try {
        cached = await abortable(this.#store.get(entry.integrity), signal);
      } catch (e) {
        if (e instanceof DownloadCancelled) throw e;
        cached = null; // an unreadable store is a miss
      }
      if (cached) {
        const actual = await sri384(cached);
        throwIfCancelled(signal);
        if (actual !== entry.integrity) {
          await this.#store.delete(entry.integrity).catch(() => {});
          throw new IntegrityError(path, "cache", entry.integrity, actual);
        }
        this.stats.cacheHits += 1;
        this.#hold(path, cached.byteLength, true);
        this.#report(path);
        return cached;
      }
      const bytes = await fetchBytes(new URL(path, this.#baseUrl), {
        fetch: this.#fetch,
        signal,
        retries: this.#retries,
        backoffMs: this.#backoffMs,
        sleep: this.#sleep,
        expectedBytes: entry.bytes,
        file: path,
        init: { cache: "no-store" },
        onBytes: (n) => this.#onNetworkBytes(path, n),
        onRetry: () => { this.stats.retries += 1; },
        onRequest: () => { this.stats.requests += 1; },
      });
      this.#inspect(path, bytes);
      const actual = await sri384(bytes);
      throwIfCancelled(signal);
      if (actual !== entry.integrity) throw new IntegrityError(path, "network", entry.integrity, actual);
      await this.#keep(path, entry.integrity, bytes);
      throwIfCancelled(signal);
      return bytes;
    } catch (e) {
      this.#hold(path, 0, false);
      throw e;
    }
  }

  /**
   * Store a verified file; a refusal is reported (once) and otherwise ignored.
   * @param {string} path
   * @param {string} integrity
   * @param {Uint8Array} bytes
   */
  async #keep(path, integrity, bytes) {
    try {
      await this.#store.put(integrity, bytes, { file: path });
    } catch (e) {
      this.stats.unstoredBytes += bytes.byteLength;
      if (!this.#warned) {
        this.#warned = true;
        const warning = new StorageWarning(path, bytes.byteLength, e);
        this.#onWarning(warning.message, warning);
      }
    }
  }

  /**
   * Fetch many files, at most `concurrency` at a time, handing each to consume as it arrives
   * (in arrival order, not the order of paths). A slot is free again only once consume has
   * returned, so about concurrency x file size bytes are held at once. The first failure (of a
   * fetch or of consume) cancels the rest; getAll settles once nothing is running any more (a
   * consume under way is awaited, not abandoned) and rejects with that first failure.
   * @param {string[]} paths
   * @param {(path: string, bytes: Uint8Array) => void | Promise<void>} consume
   * @returns {Promise<void>}
   */
  async getAll(paths, consume) {
    this.plan(paths);
    const outer = this.#signal;
    const controller = new AbortController();
    const onAbort = () => controller.abort(cancelled(outer));
    if (outer?.aborted) onAbort();
    else outer?.addEventListener("abort", onAbort, { once: true });
    const state = { next: 0, failed: false, error: /** @type {unknown} */ (undefined) };
    const worker = async () => {
      while (!state.failed && state.next < paths.length) {
        const path = paths[state.next++];
        try {
          const bytes = await this.#get(path, controller.signal);
          if (state.failed) return;
          await consume(path, bytes);
        } catch (e) {
          if (!state.failed) {
            state.failed = true;
            state.error = e;
            controller.abort(new DownloadCancelled(e));
          }
          return;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.#concurrency, paths.length) }, worker));
    } finally {
      outer?.removeEventListener("abort", onAbort);
    }
    if (state.failed) throw state.error;
  }

  /**
   * Delete everything in the store that this build does not list (older builds, other models).
   * @returns {Promise<{files: number, bytes: number}>} What was deleted.
   */
  async prune() {
    const keep = new Set(Object.values(this.#files).map((f) => f.integrity));
    let files = 0;
    let bytes = 0;
    for (const entry of await this.#store.entries()) {
      if (keep.has(entry.integrity)) continue;
      await this.#store.delete(entry.integrity);
      files += 1;
      bytes += entry.bytes;
    }
    return { files, bytes };
  }
}