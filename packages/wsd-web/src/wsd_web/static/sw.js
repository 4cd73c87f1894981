// The app shell, offline. wsd-web fills PRECACHE (every file of the page with
// its sha384) when it serves or exports the site; the worker stores them at
// install (each fetch checked against its integrity) and answers requests for
// them network-first, falling back to the stored copy when the network fails,
// so a reload works with the network cut and an update is seen as soon as the
// server is reachable. Model files are not handled here: the page keeps them
// in its own content-addressed cache and verifies every byte (delivery.js).

const PRECACHE = /* wsd:precache */ [];
const CACHE = "wsd-app-v1";
const scope = new URL(self.registration.scope);
const shell = new Map(PRECACHE.map((entry) => [new URL(entry.url, scope).href, entry]));

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await Promise.all([...shell.entries()].map(async ([url, { integrity }]) => {
      const response = await fetch(url, { integrity, cache: "no-cache" });
      if (!response.ok) throw new Error(`precaching ${url} failed: HTTP ${response.status}`);
      await cache.put(url, response);
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    for (const request of await cache.keys()) {
      if (!shell.has(request.url)) await cache.delete(request);
    }
    await self.clients.claim();
  })());
});

/** The precached URL a request stands for (a navigation to the page, with any query, is "./"). */
function shellUrl(request) {
  const url = new URL(request.url);
  url.search = "";
  url.hash = "";
  if (request.mode === "navigate" && url.href === new URL("index.html", scope).href) return url.href;
  return shell.has(url.href) ? url.href : null;
}

self.addEventListener("fetch", (event) => {
  if (event.request.method !== "GET") return;
  const key = shellUrl(event.request);
  if (key === null) return; // not the app shell: the browser's own handling
  event.respondWith((async () => {
    try {
      const response = await fetch(event.request);
      if (response.ok && response.type === "basic") {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((cache) => cache.put(key, copy)));
      }
      return response;
    } catch (offline) {
      const cached = await caches.match(key, { cacheName: CACHE });
      if (cached) return cached;
      throw offline;
    }
  })());
});
