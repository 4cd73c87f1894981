// Delivery of a model build: every file the manifest lists, fetched with
// retries and Range resume, checked against the manifest's size and sha384
// before any caller sees a byte, and kept in a content-addressed store (the
// Cache API in the browser) so that a reload makes no weight requests.
//
// Layers, each usable alone:
//   sri384        hashing, in the manifest's SRI form;
//   fetchBytes    one URL: retries with backoff, Range resume, cancellation;
//   ContentStore  MemoryStore and CacheStore, keyed by integrity;
//   Downloader    a manifest's files: store first, network second,
//                 verification, bounded concurrency, progress and stats.
// Every error says what happened and what to do about it.

/**
 * A file of the manifest.
 * @typedef {object} FileEntry
 * @property {number} bytes
 * @property {string} integrity  "sha384-" + base64 of the SHA-384 digest.
 */

/**
 * A store of file contents keyed by their integrity.
 * @typedef {object} ContentStore
 * @property {(integrity: string) => Promise<Uint8Array | null>} get
 * @property {(integrity: string, bytes: Uint8Array, info: {file: string}) => Promise<void>} put
 *   May reject (quota); the Downloader reports that and carries on.
 * @property {(integrity: string) => Promise<void>} delete
 * @property {() => Promise<StoreEntry[]>} entries  What is stored, without reading the contents.
 * @property {() => Promise<void>} clear
 * @property {boolean} [persistent]  Whether the contents outlive the page.
 */

/**
 * @typedef {object} StoreEntry
 * @property {string} integrity
 * @property {string} file  The file name it was stored under.
 * @property {number} bytes
 * @property {number} storedAt  Milliseconds since the epoch.
 */

/**
 * Waits ms milliseconds; should reject when the signal fires (fetchBytes copes when it does not).
 * @typedef {(ms: number, signal?: AbortSignal) => Promise<void>} Sleep
 */

/**
 * @typedef {object} RetryInfo
 * @property {number} attempt  The attempt that failed (1-based).
 * @property {number} delayMs  The wait before the next attempt.
 * @property {Error} error  Why the attempt failed.
 */

/**
 * @typedef {object} FetchOptions
 * @property {typeof globalThis.fetch} [fetch]
 * @property {AbortSignal} [signal]  Rejects with DownloadCancelled when it fires.
 * @property {number} [retries]  Failed attempts in a row without new bytes before giving up (default 5).
 *   An attempt that gets further into the file than any before it resets the count, so a long
 *   download over a flaky link is not abandoned while it makes progress.
 * @property {number} [backoffMs]  The first retry's nominal wait (default 500); it doubles on each
 *   retry up to maxBackoffMs, and the actual wait is 50-100% of it (jitter).
 * @property {number} [maxBackoffMs]  Default 8000.
 * @property {number} [maxRetryAfterMs]  Cap on a server's Retry-After (default 30000).
 * @property {Sleep} [sleep]
 * @property {() => number} [random]  Jitter source in [0, 1) (default Math.random).
 * @property {number} [expectedBytes]  The file's size: more or fewer bytes is an IntegrityError.
 * @property {(n: number) => void} [onBytes]  Called with each chunk's length as it arrives, and with
 *   a negative count (minus the bytes held) when a restart discards a partial download, so that the
 *   running sum is always the number of bytes held.
 * @property {(info: RetryInfo) => void} [onRetry]
 * @property {(range: string | null) => void} [onRequest]  Called before each HTTP request.
 * @property {RequestInit} [init]  Extra request options, e.g. {cache: "no-store"}.
 * @property {string} [file]  The name errors use (default: the URL's last path segment).
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

const SHA384_PREFIX = "sha384-";
const MiB = 1024 * 1024;
/** The rate is not shown before the samples span this long (a first burst says little). */
const MIN_RATE_SPAN_MS = 500;

/** The Cache API cache CacheStore uses unless told otherwise. */
export const DEFAULT_CACHE_NAME = "wsd-content-v1";

/** The path under the origin where CacheStore's synthetic keys live. */
export const CONTENT_KEY_PATH = "/.wsd-content/";

// ---------------------------------------------------------------- hashing

/**
 * @param {Uint8Array} bytes
 * @returns {string}
 */
function base64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * The SRI string of some bytes: "sha384-" + base64 of their SHA-384 digest.
 * @param {Uint8Array} bytes
 * @returns {Promise<string>}
 */
export async function sri384(bytes) {
  const digest = await globalThis.crypto.subtle.digest("SHA-384", /** @type {Uint8Array<ArrayBuffer>} */ (bytes));
  return SHA384_PREFIX + base64(new Uint8Array(digest));
}

// ---------------------------------------------------------------- formatting

/**
 * A byte count for people: "512 B", "12.3 MiB".
 * @param {number} n
 * @returns {string}
 */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return "? B";
  const sign = n < 0 ? "-" : "";
  let value = Math.abs(n);
  if (value < 1024) return `${sign}${Math.round(value)} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let unit = -1;
  while ((value >= 1024 || value.toFixed(1) === "1024.0") && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${sign}${value.toFixed(1)} ${units[unit]}`;
}

/**
 * A duration for people: "45 s", "1 min 5 s", "2 h 3 min"; "unknown" for null or non-finite.
 * @param {number | null} s  Seconds.
 * @returns {string}
 */
export function formatSeconds(s) {
  if (s === null || !Number.isFinite(s)) return "unknown";
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t} s`;
  if (t < 3600) {
    const min = Math.floor(t / 60);
    const sec = t % 60;
    return sec ? `${min} min ${sec} s` : `${min} min`;
  }
  const h = Math.floor(t / 3600);
  const min = Math.floor((t % 3600) / 60);
  return min ? `${h} h ${min} min` : `${h} h`;
}

// ---------------------------------------------------------------- errors

/**
 * The last path segment of a URL, for messages.
 * @param {string} url
 * @returns {string}
 */
function fileOf(url) {
  try {
    const parts = new URL(url).pathname.split("/");
    return decodeURIComponent(parts[parts.length - 1] || url);
  } catch {
    return url;
  }
}

/** A file's bytes are not the ones the manifest promised. */
export class IntegrityError extends Error {
  /**
   * @param {string} file
   * @param {"network" | "cache"} source  Where the bad copy came from.
   * @param {string} expected  The manifest's SRI string, or "N bytes" when kind is "size".
   * @param {string} actual  The copy's SRI string, or its size as "N bytes".
   * @param {"digest" | "size"} [kind]
   */
  constructor(file, source, expected, actual, kind = "digest") {
    const found = kind === "size" ? `it has ${actual}, the manifest says ${expected}` : `its sha384 is ${actual}, the manifest says ${expected}`;
    super(
      source === "network"
        ? `${file} arrived corrupted (${found}): it was damaged in transit or comes from another build. ` +
          "The bad copy was discarded; retry, and if this persists redeploy the build (the server's files do not match its manifest)"
        : `the cached copy of ${file} is corrupted (${found}): the browser cache damaged it. ` +
          "The bad copy was discarded; retry to download it again, and if this persists clear the cached models",
    );
    this.name = "IntegrityError";
    this.file = file;
    this.source = source;
    this.expected = expected;
    this.actual = actual;
    this.kind = kind;
  }
}

/** The server answered with an HTTP error (after the retries, for the retryable ones). */
export class HttpError extends Error {
  /**
   * @param {string} url
   * @param {number} status
   * @param {{file?: string, attempts?: number}} [details]
   */
  constructor(url, status, { file = fileOf(url), attempts = 1 } = {}) {
    let message;
    if (status === 404 || status === 410) {
      message = `the server has no ${file} (HTTP ${status} for ${url}): the build on the server is incomplete or from another version; redeploy it`;
    } else if (status === 401 || status === 403) {
      message = `the server refused to send ${file} (HTTP ${status} for ${url}): check its access rules (and CORS for another origin)`;
    } else if (isRetryableStatus(status)) {
      message = `the server kept failing (HTTP ${status}) on ${file} after ${attempts} attempt${attempts === 1 ? "" : "s"}: ` +
        "it is overloaded or down; retry later (what is already cached will not download again)";
    } else {
      message = `the server answered HTTP ${status} for ${file} (${url}): check the server and the build's URL`;
    }
    super(message);
    this.name = "HttpError";
    this.url = url;
    this.status = status;
    this.file = file;
    this.attempts = attempts;
  }
}

/** The connection kept failing until the retries ran out. */
export class NetworkError extends Error {
  /**
   * @param {string} url
   * @param {number} attempts
   * @param {{file?: string, cause?: unknown}} [details]
   */
  constructor(url, attempts, { file = fileOf(url), cause } = {}) {
    const why = cause instanceof Error && cause.message ? ` (last: ${cause.message})` : "";
    super(
      `the connection failed ${attempts} time${attempts === 1 ? "" : "s"} while downloading ${file}${why}: ` +
      "check the network connection and retry; the retry resumes from what is already cached",
      { cause },
    );
    this.name = "NetworkError";
    this.url = url;
    this.attempts = attempts;
    this.file = file;
  }
}

/** The download's AbortSignal fired. */
export class DownloadCancelled extends Error {
  /** @param {unknown} [reason]  The signal's reason. */
  constructor(reason) {
    super("download cancelled", { cause: reason });
    this.name = "DownloadCancelled";
  }
}

/** The store refused to keep a file (quota, most likely); the download itself went on. */
export class StorageWarning extends Error {
  /**
   * @param {string} file
   * @param {number} bytes
   * @param {unknown} cause  What the store threw.
   */
  constructor(file, bytes, cause) {
    const quota = cause instanceof Error && cause.name === "QuotaExceededError";
    const why = quota ? "quota" : cause instanceof Error ? cause.message : String(cause);
    super(
      `the browser refused to store ${formatBytes(bytes)} (${file}; ${why}): ` +
      "the model will download again next time; free space or clear cached models",
      { cause },
    );
    this.name = "StorageWarning";
    this.file = file;
    this.bytes = bytes;
    this.quota = quota;
  }
}

/**
 * @param {number} status
 * @returns {boolean}
 */
function isRetryableStatus(status) {
  return status >= 500 || status === 408 || status === 429;
}

/**
 * @param {AbortSignal | undefined} signal
 * @returns {DownloadCancelled}
 */
function cancelled(signal) {
  return signal?.reason instanceof DownloadCancelled ? signal.reason : new DownloadCancelled(signal?.reason);
}

/** @param {AbortSignal | undefined} signal */
function throwIfCancelled(signal) {
  if (signal?.aborted) throw cancelled(signal);
}

/**
 * The promise, or DownloadCancelled as soon as the signal fires (for promises that ignore it).
 * @template T
 * @param {Promise<T>} promise
 * @param {AbortSignal | undefined} signal
 * @returns {Promise<T>}
 */
function abortable(promise, signal) {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(cancelled(signal));
    if (signal.aborted) {
      onAbort();
      promise.catch(() => {});
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** @type {Sleep} */
function defaultSleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(cancelled(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(cancelled(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

// ---------------------------------------------------------------- fetchBytes

/**
 * @param {Headers} headers
 * @returns {number | null}
 */
function contentLength(headers) {
  const value = headers.get("content-length");
  if (value === null || !/^\d+$/.test(value.trim())) return null;
  return Number(value);
}

/**
 * The first byte of a Content-Range ("bytes 100-199/200"), or null when absent or unreadable.
 * @param {Headers} headers
 * @returns {number | null}
 */
function rangeStart(headers) {
  const match = /^\s*bytes\s+(\d+)-\d+\/(\d+|\*)\s*$/i.exec(headers.get("content-range") ?? "");
  return match ? Number(match[1]) : null;
}

/**
 * Milliseconds a Retry-After header asks for (seconds or an HTTP date), or null.
 * @param {Headers} headers
 * @returns {number | null}
 */
function retryAfterMs(headers) {
  const value = headers.get("retry-after")?.trim();
  if (!value) return null;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/**
 * @param {Uint8Array[]} chunks
 * @param {number} size
 * @returns {Uint8Array}
 */
function concat(chunks, size) {
  if (chunks.length === 1 && chunks[0].byteLength === size) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * @param {Response} response
 */
function discardBody(response) {
  response.body?.cancel().catch(() => {});
}

/**
 * Fetch a URL's bytes, retrying what a retry can fix.
 *
 * Retried: fetch rejecting (network failure), the body failing mid-way, HTTP 5xx, 408 and 429
 * (after Retry-After when the server sends one, capped). Not retried: other HTTP errors, a size
 * that contradicts expectedBytes. A body that fails mid-way resumes with `Range: bytes=N-` unless
 * the server has shown it cannot: it said `Accept-Ranges: none`, the response was content-encoded,
 * or it ignored a Range (answered 200), in which case the partial bytes are discarded (onBytes gets
 * the negative count) and the download starts over. Resume is tried when Accept-Ranges is not
 * visible (a cross-origin response hides it): a server that ignores it costs nothing more than a
 * restart. A 206 that does not continue where the bytes stopped also restarts.
 *
 * @param {URL | string} url
 * @param {FetchOptions} [options]
 * @returns {Promise<Uint8Array>}
 */
export async function fetchBytes(url, options = {}) {
  const {
    fetch = globalThis.fetch, signal, retries = 5, backoffMs = 500, maxBackoffMs = 8000,
    maxRetryAfterMs = 30_000, sleep = defaultSleep, random = Math.random, expectedBytes,
    onBytes = () => {}, onRetry = () => {}, onRequest = () => {}, init = {},
  } = options;
  const href = String(url);
  const file = options.file ?? fileOf(href);
  /** @type {Uint8Array[]} */
  let chunks = [];
  let held = 0;
  let highWater = 0;
  /** Whether the server does Range: "no" once it has shown it does not. */
  let ranges = /** @type {"yes" | "no" | "unknown"} */ ("unknown");
  let attempts = 0;
  let failuresInARow = 0;

  const discard = () => {
    if (held > 0) onBytes(-held);
    chunks = [];
    held = 0;
  };
  /** @param {number} size */
  const tooBig = (size) => new IntegrityError(file, "network", `${expectedBytes} bytes`, `${size} bytes or more`, "size");

  for (;;) {
    throwIfCancelled(signal);
    attempts += 1;
    if (held > 0 && ranges === "no") discard();
    const resuming = held > 0;
    const headers = new Headers(init.headers);
    if (resuming) headers.set("Range", `bytes=${held}-`);
    else headers.delete("Range");
    onRequest(resuming ? `bytes=${held}-` : null);

    /** @type {{error: Error, delayMs?: number} | null} */
    let failure = null;
    /** @type {Response | null} */
    let response = null;
    try {
      response = await abortable(fetch(href, { ...init, headers, ...(signal ? { signal } : {}) }), signal);
    } catch (e) {
      if (signal?.aborted || e instanceof DownloadCancelled) throw cancelled(signal);
      if (!(e instanceof TypeError)) throw e;
      failure = { error: e };
    }

    let complete = false;
    if (response) {
      const status = response.status;
      const encoded = (response.headers.get("content-encoding") ?? "identity").toLowerCase() !== "identity";
      if (status === 206) {
        const start = rangeStart(response.headers);
        const length = contentLength(response.headers);
        const continues = start === null ? resuming : start === held;
        const fits = expectedBytes === undefined || length === null || held + length === expectedBytes;
        if (!continues || !fits || encoded) {
          // Not the rest of these bytes (another offset, size or encoding): start over without Range.
          discardBody(response);
          discard();
          ranges = "no";
          failure = { error: new TypeError(`the server's partial response does not continue ${file}`), delayMs: 0 };
        } else {
          ranges = "yes";
        }
      } else if (response.ok) {
        if (resuming) {
          ranges = "no";
          discard();
        }
        const accept = response.headers.get("accept-ranges")?.toLowerCase();
        if (accept === "none" || encoded) ranges = "no";
        else if (accept?.includes("bytes") && ranges === "unknown") ranges = "yes";
      } else if (status === 416 && resuming) {
        discardBody(response);
        discard();
        ranges = "no";
        failure = { error: new TypeError(`the server refused to resume ${file} (HTTP 416)`), delayMs: 0 };
      } else if (isRetryableStatus(status)) {
        const wait = retryAfterMs(response.headers);
        discardBody(response);
        failure = {
          error: new HttpError(href, status, { file, attempts }),
          delayMs: wait === null ? undefined : Math.min(wait, maxRetryAfterMs),
        };
      } else {
        discardBody(response);
        throw new HttpError(href, status, { file, attempts });
      }

      if (!failure) {
        const declared = contentLength(response.headers);
        const startedAt = held;
        const reader = response.body?.getReader();
        const onAbort = () => { reader?.cancel().catch(() => {}); };
        signal?.addEventListener("abort", onAbort, { once: true });
        try {
          for (;;) {
            if (!reader) break;
            const { done, value } = await reader.read();
            throwIfCancelled(signal);
            if (done) break;
            if (expectedBytes !== undefined && held + value.byteLength > expectedBytes) {
              reader.cancel().catch(() => {});
              throw tooBig(held + value.byteLength);
            }
            chunks.push(value);
            held += value.byteLength;
            onBytes(value.byteLength);
          }
          complete = true;
        } catch (e) {
          if (signal?.aborted) throw cancelled(signal);
          if (e instanceof IntegrityError) throw e;
          // The body broke; what arrived stays for the resume.
          if (expectedBytes !== undefined && held === expectedBytes) complete = true;
          else failure = { error: e instanceof Error ? e : new TypeError(String(e)) };
        } finally {
          signal?.removeEventListener("abort", onAbort);
        }
        if (complete && expectedBytes !== undefined && held !== expectedBytes) {
          if (declared !== null && !encoded && held - startedAt < declared) {
            complete = false;
            failure = { error: new TypeError(`the body ended after ${held - startedAt} of ${declared} bytes`) };
          } else {
            throw new IntegrityError(file, "network", `${expectedBytes} bytes`, `${held} bytes`, "size");
          }
        }
      }
    }

    if (complete) return concat(chunks, held);
    const error = /** @type {{error: Error, delayMs?: number}} */ (failure).error;
    if (held > highWater) {
      highWater = held;
      failuresInARow = 0;
    }
    failuresInARow += 1;
    if (failuresInARow > retries) {
      if (error instanceof HttpError) throw new HttpError(href, error.status, { file, attempts });
      throw new NetworkError(href, attempts, { file, cause: error });
    }
    const nominal = Math.min(maxBackoffMs, backoffMs * 2 ** (failuresInARow - 1));
    const delayMs = /** @type {{delayMs?: number}} */ (failure).delayMs ?? nominal * (0.5 + 0.5 * random());
    onRetry({ attempt: attempts, delayMs, error });
    await abortable(sleep(delayMs, signal), signal);
  }
}

// ---------------------------------------------------------------- stores

/**
 * Contents in a Map: for tests, and the fallback when the Cache API is unavailable. Nothing
 * outlives the page. With maxBytes, the oldest entries make room for new ones, and a file larger
 * than maxBytes is refused with a QuotaExceededError.
 * @implements {ContentStore}
 */
export class MemoryStore {
  /** @type {Map<string, {bytes: Uint8Array, file: string, storedAt: number}>} */
  #entries = new Map();
  #size = 0;

  /** @param {{maxBytes?: number}} [options] */
  constructor({ maxBytes = Infinity } = {}) {
    this.maxBytes = maxBytes;
    this.persistent = false;
  }

  /** @param {string} integrity */
  async get(integrity) {
    return this.#entries.get(integrity)?.bytes.slice() ?? null;
  }

  /**
   * @param {string} integrity
   * @param {Uint8Array} bytes
   * @param {{file: string}} info
   */
  async put(integrity, bytes, info) {
    if (bytes.byteLength > this.maxBytes) {
      throw new DOMException(`${info.file} is larger than the memory store's ${formatBytes(this.maxBytes)}`, "QuotaExceededError");
    }
    await this.delete(integrity);
    for (const [key, entry] of this.#entries) {
      if (this.#size + bytes.byteLength <= this.maxBytes) break;
      this.#entries.delete(key);
      this.#size -= entry.bytes.byteLength;
    }
    this.#entries.set(integrity, { bytes: bytes.slice(), file: info.file, storedAt: Date.now() });
    this.#size += bytes.byteLength;
  }

  /** @param {string} integrity */
  async delete(integrity) {
    const entry = this.#entries.get(integrity);
    if (!entry) return;
    this.#entries.delete(integrity);
    this.#size -= entry.bytes.byteLength;
  }

  /** @returns {Promise<StoreEntry[]>} */
  async entries() {
    return [...this.#entries].map(([integrity, e]) => ({ integrity, file: e.file, bytes: e.bytes.byteLength, storedAt: e.storedAt }));
  }

  async clear() {
    this.#entries.clear();
    this.#size = 0;
  }
}

/**
 * Contents in the Cache API, under synthetic same-origin URLs made from the integrity
 * (`/.wsd-content/sha384/<base64url digest>`); each stored Response carries x-wsd-file,
 * x-wsd-bytes, x-wsd-stored-at and x-wsd-integrity headers, so entries() lists the cache
 * without reading a body.
 * @implements {ContentStore}
 */
export class CacheStore {
  /** @type {CacheStorage} */
  #cacheStorage;
  /** @type {Promise<Cache> | null} */
  #cache = null;

  /**
   * @param {{cacheStorage?: CacheStorage, origin?: string, name?: string}} [options]
   */
  constructor({ cacheStorage = globalThis.caches, origin = globalThis.location?.origin, name = DEFAULT_CACHE_NAME } = {}) {
    if (!cacheStorage) {
      throw new Error("this browser offers no Cache API (it needs https or localhost), so models cannot be kept between visits");
    }
    if (!origin || !/^https?:\/\//.test(origin)) {
      throw new Error(`the Cache API needs an http(s) origin, not ${origin}, so models cannot be kept between visits`);
    }
    this.#cacheStorage = cacheStorage;
    this.origin = origin;
    this.name = name;
    this.persistent = true;
  }

  /**
   * Open the cache (done on first use; call it to learn early whether the browser allows it).
   * @returns {Promise<Cache>}
   */
  open() {
    if (!this.#cache) {
      this.#cache = this.#cacheStorage.open(this.name);
      this.#cache.catch(() => { this.#cache = null; });
    }
    return this.#cache;
  }

  /**
   * The synthetic URL a content lives under.
   * @param {string} integrity
   * @returns {string}
   */
  keyFor(integrity) {
    const dash = integrity.indexOf("-");
    const algorithm = dash > 0 ? integrity.slice(0, dash) : "raw";
    const digest = (dash > 0 ? integrity.slice(dash + 1) : integrity)
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return new URL(`${CONTENT_KEY_PATH}${encodeURIComponent(algorithm)}/${encodeURIComponent(digest)}`, this.origin).href;
  }

  /** @param {string} integrity */
  async get(integrity) {
    const response = await (await this.open()).match(this.keyFor(integrity));
    return response ? new Uint8Array(await response.arrayBuffer()) : null;
  }

  /**
   * @param {string} integrity
   * @param {Uint8Array} bytes
   * @param {{file: string}} info
   */
  async put(integrity, bytes, info) {
    const cache = await this.open();
    const response = new Response(/** @type {Uint8Array<ArrayBuffer>} */ (bytes), {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(bytes.byteLength),
        "x-wsd-file": encodeURIComponent(info.file),
        "x-wsd-bytes": String(bytes.byteLength),
        "x-wsd-stored-at": String(Date.now()),
        "x-wsd-integrity": integrity,
      },
    });
    await cache.put(this.keyFor(integrity), response);
  }

  /** @param {string} integrity */
  async delete(integrity) {
    await (await this.open()).delete(this.keyFor(integrity));
  }

  /** @returns {Promise<Request[]>} The cache's keys that are ours. */
  async #keys() {
    const prefix = new URL(CONTENT_KEY_PATH, this.origin).href;
    return (await (await this.open()).keys()).filter((request) => request.url.startsWith(prefix));
  }

  /** @returns {Promise<StoreEntry[]>} */
  async entries() {
    const cache = await this.open();
    /** @type {StoreEntry[]} */
    const out = [];
    for (const request of await this.#keys()) {
      const response = await cache.match(request);
      if (!response) continue;
      response.body?.cancel().catch(() => {});
      const h = response.headers;
      let file = h.get("x-wsd-file") ?? "";
      try {
        file = decodeURIComponent(file);
      } catch {
        // keep it encoded
      }
      out.push({
        integrity: h.get("x-wsd-integrity") ?? request.url,
        file,
        bytes: Number(h.get("x-wsd-bytes") ?? h.get("content-length") ?? 0),
        storedAt: Number(h.get("x-wsd-stored-at") ?? 0),
      });
    }
    return out;
  }

  async clear() {
    const cache = await this.open();
    for (const request of await this.#keys()) await cache.delete(request);
  }
}

/**
 * The best store this page can have: a CacheStore when the Cache API works here, else a
 * MemoryStore (check `persistent` to tell the user that nothing will be kept).
 * @param {{cacheStorage?: CacheStorage, origin?: string, name?: string, memoryBytes?: number}} [options]
 *   memoryBytes bounds the fallback MemoryStore (default 256 MiB: enough for the small files and
 *   retries, not a second copy of the weights in the page's memory).
 * @returns {Promise<ContentStore>}
 */
export async function openContentStore(options = {}) {
  try {
    const store = new CacheStore(options);
    await store.open();
    return store;
  } catch {
    return new MemoryStore({ maxBytes: options.memoryBytes ?? 256 * MiB });
  }
}

// ---------------------------------------------------------------- Downloader

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
