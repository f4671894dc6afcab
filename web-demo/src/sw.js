// Service worker: keeps the app shell (HTML, JS, CSS and the wasm package)
// so a reload works with the relay down. Network first, so a running relay
// always serves the newest files; the cache answers when it cannot.
const CACHE = "minidote-demo-v2";
// shell.js is written by scripts/build-demo.sh: every file of the app and of
// the npm package, so nothing the page imports is missing offline.
importScripts("shell.js");
const SHELL = self.SHELL;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || url.pathname === "/sync") return;
  event.respondWith((async () => {
    let fresh;
    try {
      fresh = await fetch(event.request);
    } catch (e) {
      const cached = await caches.match(event.request, { ignoreSearch: true });
      if (cached) return cached;
      throw e;
    }
    if (fresh.ok) {
      // A full cache (quota) must not cost the user the fresh response.
      try {
        const c = await caches.open(CACHE);
        await c.put(event.request, fresh.clone());
      } catch (e) {
        console.warn("service worker: not cached:", e);
      }
    }
    return fresh;
  })());
});
