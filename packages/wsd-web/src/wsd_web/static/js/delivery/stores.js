// Content-addressed stores: file contents keyed by their integrity, so that a
// file shared by two builds is kept once and a reload finds what it verified
// before. MemoryStore lives as long as the page; CacheStore keeps contents in
// the Cache API between visits; openContentStore picks the best one here.

import { formatBytes } from "./format.js";

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

const MiB = 1024 * 1024;

/** The Cache API cache CacheStore uses unless told otherwise. */
export const DEFAULT_CACHE_NAME = "wsd-content-v1";

/** The path under the origin where CacheStore's synthetic keys live. */
export const CONTENT_KEY_PATH = "/.wsd-content/";

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
   * Keep a copy, dropping the oldest entries to stay within maxBytes.
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
   * Keep the bytes as a Response under keyFor(integrity), with the headers entries() reads.
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
