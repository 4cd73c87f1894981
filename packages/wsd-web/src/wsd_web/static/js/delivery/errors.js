// What can go wrong while delivering a build, as errors a user can act on:
// each message says what happened, to which file, and what to do about it.
// Also the cancellation helpers every layer shares: a fired AbortSignal
// always surfaces as one DownloadCancelled.

import { formatBytes } from "./format.js";

/**
 * The last path segment of a URL, for messages.
 * @param {string} url
 * @returns {string}
 */
export function fileOf(url) {
  try {
    const parts = new URL(url).pathname.split("/");
    return decodeURIComponent(parts[parts.length - 1] || url);
  } catch {
    return url;
  }
}

/**
 * Whether a retry can fix an HTTP status (a server error, a timeout, rate limiting).
 * @param {number} status
 * @returns {boolean}
 */
export function isRetryableStatus(status) {
  return status >= 500 || status === 408 || status === 429;
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

// ---------------------------------------------------------------- cancellation

/**
 * The DownloadCancelled a fired signal stands for (its reason when it is one already).
 * @param {AbortSignal | undefined} signal
 * @returns {DownloadCancelled}
 */
export function cancelled(signal) {
  return signal?.reason instanceof DownloadCancelled ? signal.reason : new DownloadCancelled(signal?.reason);
}

/** @param {AbortSignal | undefined} signal */
export function throwIfCancelled(signal) {
  if (signal?.aborted) throw cancelled(signal);
}

/**
 * The promise, or DownloadCancelled as soon as the signal fires (for promises that ignore it).
 * @template T
 * @param {Promise<T>} promise
 * @param {AbortSignal | undefined} signal
 * @returns {Promise<T>}
 */
export function abortable(promise, signal) {
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
