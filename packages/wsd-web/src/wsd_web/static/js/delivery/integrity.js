// The manifest's integrity form: "sha384-" + base64 of the SHA-384 digest
// (Subresource Integrity), computed with WebCrypto in the page and in Node.

/** The prefix of every integrity string the manifest may carry. */
export const SHA384_PREFIX = "sha384-";

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
