// One URL's bytes over an unreliable network: retries with backoff (and the
// server's Retry-After), `Range` resume of a body cut mid-way, a size check
// against what the manifest promised, and cancellation at any point.

import {
  DownloadCancelled, HttpError, IntegrityError, NetworkError,
  abortable, cancelled, fileOf, isRetryableStatus, throwIfCancelled,
} from "./errors.js";

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
 * Why an attempt failed, and the wait before the next one when it is not the backoff's.
 * @typedef {object} Failure
 * @property {Error} error
 * @property {number} [delayMs]
 */

/** @type {Sleep} */
export function defaultSleep(ms, signal) {
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

/** One fetchBytes call: the bytes held so far, and what the server has shown about Range. */
class Transfer {
  /** @type {Uint8Array[]} */
  #chunks = [];
  #held = 0;
  /** The most bytes any attempt has held: getting past it resets the failure count. */
  #highWater = 0;
  /** Whether the server does Range: "no" once it has shown it does not. */
  #ranges = /** @type {"yes" | "no" | "unknown"} */ ("unknown");
  #attempts = 0;
  #failuresInARow = 0;
  #href;
  #file;
  #options;

  /**
   * @param {URL | string} url
   * @param {FetchOptions} options
   */
  constructor(url, options) {
    const {
      fetch = globalThis.fetch, signal, retries = 5, backoffMs = 500, maxBackoffMs = 8000,
      maxRetryAfterMs = 30_000, sleep = defaultSleep, random = Math.random, expectedBytes,
      onBytes = () => {}, onRetry = () => {}, onRequest = () => {}, init = {},
    } = options;
    this.#href = String(url);
    this.#file = options.file ?? fileOf(this.#href);
    this.#options = {
      fetch, signal, retries, backoffMs, maxBackoffMs, maxRetryAfterMs, sleep, random, expectedBytes,
      onBytes, onRetry, onRequest, init,
    };
  }

  /** @returns {Promise<Uint8Array>} */
  async run() {
    for (;;) {
      throwIfCancelled(this.#options.signal);
      this.#attempts += 1;
      const failure = await this.#attempt();
      if (!failure) return concat(this.#chunks, this.#held);
      await this.#backOff(failure);
    }
  }

  /**
   * One request and its body, resumed from the bytes held when the server allows it.
   * @returns {Promise<Failure | null>}  Null once every byte is held.
   */
  async #attempt() {
    if (this.#held > 0 && this.#ranges === "no") this.#discard();
    const resuming = this.#held > 0;
    const sent = await this.#request(resuming);
    if ("failure" in sent) return sent.failure;
    const { response } = sent;
    const encoded = (response.headers.get("content-encoding") ?? "identity").toLowerCase() !== "identity";
    return this.#judge(response, resuming, encoded) ?? this.#receive(response, encoded);
  }

  /**
   * @param {boolean} resuming
   * @returns {Promise<{response: Response} | {failure: Failure}>}
   */
  async #request(resuming) {
    const { fetch, signal, init, onRequest } = this.#options;
    const range = resuming ? `bytes=${this.#held}-` : null;
    const headers = new Headers(init.headers);
    if (range) headers.set("Range", range);
    else headers.delete("Range");
    onRequest(range);
    try {
      return { response: await abortable(fetch(this.#href, { ...init, headers, ...(signal ? { signal } : {}) }), signal) };
    } catch (e) {
      if (signal?.aborted || e instanceof DownloadCancelled) throw cancelled(signal);
      if (!(e instanceof TypeError)) throw e;
      return { failure: { error: e } };
    }
  }

  /**
   * What a response's status and headers say, before its body is read.
   * @param {Response} response
   * @param {boolean} resuming
   * @param {boolean} encoded  Whether the body is content-encoded (its length is not the file's).
   * @returns {Failure | null}  Null when the body is to be read.
   */
  #judge(response, resuming, encoded) {
    const status = response.status;
    if (status === 206) return this.#judgePartial(response, resuming, encoded);
    if (response.ok) {
      this.#judgeWhole(response, resuming, encoded);
      return null;
    }
    discardBody(response);
    if (status === 416 && resuming) return this.#restart(`the server refused to resume ${this.#file} (HTTP 416)`);
    const error = new HttpError(this.#href, status, { file: this.#file, attempts: this.#attempts });
    if (!isRetryableStatus(status)) throw error;
    const wait = retryAfterMs(response.headers);
    return { error, delayMs: wait === null ? undefined : Math.min(wait, this.#options.maxRetryAfterMs) };
  }

  /**
   * A 206 is read only when it continues the bytes held, at the size the file should have.
   * @param {Response} response
   * @param {boolean} resuming
   * @param {boolean} encoded
   * @returns {Failure | null}
   */
  #judgePartial(response, resuming, encoded) {
    const { expectedBytes } = this.#options;
    const start = rangeStart(response.headers);
    const length = contentLength(response.headers);
    const continues = start === null ? resuming : start === this.#held;
    const fits = expectedBytes === undefined || length === null || this.#held + length === expectedBytes;
    if (continues && fits && !encoded) {
      this.#ranges = "yes";
      return null;
    }
    // Not the rest of these bytes (another offset, size or encoding): start over without Range.
    discardBody(response);
    return this.#restart(`the server's partial response does not continue ${this.#file}`);
  }

  /**
   * A 200 is the whole file: to a Range request it means the server ignored the Range.
   * @param {Response} response
   * @param {boolean} resuming
   * @param {boolean} encoded
   */
  #judgeWhole(response, resuming, encoded) {
    if (resuming) {
      this.#ranges = "no";
      this.#discard();
    }
    const accept = response.headers.get("accept-ranges")?.toLowerCase();
    if (accept === "none" || encoded) this.#ranges = "no";
    else if (accept?.includes("bytes") && this.#ranges === "unknown") this.#ranges = "yes";
  }

  /**
   * Read a body onto the bytes held, and decide whether the file is complete.
   * @param {Response} response
   * @param {boolean} encoded
   * @returns {Promise<Failure | null>}  Null once every byte is held.
   */
  async #receive(response, encoded) {
    const { expectedBytes } = this.#options;
    const declared = contentLength(response.headers);
    const startedAt = this.#held;
    const broken = await this.#read(response);
    // A body that broke just after its last byte is complete.
    if (broken) return expectedBytes !== undefined && this.#held === expectedBytes ? null : broken;
    if (expectedBytes === undefined || this.#held === expectedBytes) return null;
    const got = this.#held - startedAt;
    if (declared !== null && !encoded && got < declared) {
      return { error: new TypeError(`the body ended after ${got} of ${declared} bytes`) };
    }
    throw new IntegrityError(this.#file, "network", `${expectedBytes} bytes`, `${this.#held} bytes`, "size");
  }

  /**
   * @param {Response} response
   * @returns {Promise<Failure | null>}  Why the body broke (what arrived stays for the resume), or null.
   */
  async #read(response) {
    const { signal } = this.#options;
    const reader = response.body?.getReader();
    if (!reader) return null;
    const onAbort = () => { reader.cancel().catch(() => {}); };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        throwIfCancelled(signal);
        if (done) return null;
        this.#hold(value, reader);
      }
    } catch (e) {
      if (signal?.aborted) throw cancelled(signal);
      if (e instanceof IntegrityError) throw e;
      return { error: e instanceof Error ? e : new TypeError(String(e)) };
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Keep a chunk, unless it makes the file larger than expected.
   * @param {Uint8Array} chunk
   * @param {ReadableStreamDefaultReader<Uint8Array>} reader
   */
  #hold(chunk, reader) {
    const { expectedBytes, onBytes } = this.#options;
    const size = this.#held + chunk.byteLength;
    if (expectedBytes !== undefined && size > expectedBytes) {
      reader.cancel().catch(() => {});
      throw new IntegrityError(this.#file, "network", `${expectedBytes} bytes`, `${size} bytes or more`, "size");
    }
    this.#chunks.push(chunk);
    this.#held = size;
    onBytes(chunk.byteLength);
  }

  /** Drop the bytes held, telling onBytes. */
  #discard() {
    if (this.#held > 0) this.#options.onBytes(-this.#held);
    this.#chunks = [];
    this.#held = 0;
  }

  /**
   * Give up on Range for this file and retry from the first byte at once.
   * @param {string} why
   * @returns {Failure}
   */
  #restart(why) {
    this.#discard();
    this.#ranges = "no";
    return { error: new TypeError(why), delayMs: 0 };
  }

  /**
   * Count a failure, give up when the retries have run out, else wait before the next attempt.
   * @param {Failure} failure
   */
  async #backOff({ error, delayMs }) {
    const { retries, backoffMs, maxBackoffMs, random, onRetry, sleep, signal } = this.#options;
    if (this.#held > this.#highWater) {
      this.#highWater = this.#held;
      this.#failuresInARow = 0;
    }
    this.#failuresInARow += 1;
    if (this.#failuresInARow > retries) {
      if (error instanceof HttpError) throw new HttpError(this.#href, error.status, { file: this.#file, attempts: this.#attempts });
      throw new NetworkError(this.#href, this.#attempts, { file: this.#file, cause: error });
    }
    const nominal = Math.min(maxBackoffMs, backoffMs * 2 ** (this.#failuresInARow - 1));
    const wait = delayMs ?? nominal * (0.5 + 0.5 * random());
    onRetry({ attempt: this.#attempts, delayMs: wait, error });
    await abortable(sleep(wait, signal), signal);
  }
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
  return new Transfer(url, options).run();
}
