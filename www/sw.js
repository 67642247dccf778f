// The demo's service worker: keeps the app shell for offline starts, and delivers the outbox
// on Background Sync (`sync`) and Periodic Background Sync (`periodicsync`) events, also after
// the page was closed. A module worker: registered with `{ type: 'module' }`.

import init, { BackgroundSyncManager } from './pkg/chat_sync.js';
// A hash of the package's files: a new build (even one that changes only the wasm, whose glue
// stays the same) changes this worker's imports, so a new worker installs and caches it.
import { BUILD_ID } from './pkg/build-id.js';
import { loadSession, managerOptions } from './session.js';

/** The app shell of this worker's build; the worker that replaces it deletes it. */
const SHELL_CACHE = `chat-sync-demo-shell-${BUILD_ID}`;
const SHELL = [
  './',
  './index.html',
  './app.css',
  './app.js',
  './render.js',
  './session.js',
  './manifest.webmanifest',
  './icon.svg',
  './icon-maskable.svg',
  './pkg/index.js',
  './pkg/chat_sync.js',
  './pkg/chat_sync_bg.wasm',
  './pkg/sync-refresh.js',
];
const WASM = new URL('./pkg/chat_sync_bg.wasm', self.location.href).href;
/**
 * The shell's paths whose cached copies are refreshed as pages fetch them: not the package's.
 * Its glue and wasm must be of one build: this worker imported its glue when it was installed,
 * and reads the wasm from the cache, so a page's fetch after a deploy must not put a newer wasm
 * there. The package is cached when a worker installs (a new build makes a new worker: see
 * BUILD_ID).
 */
const REFRESHED_PATHS = new Set(SHELL.filter((path) => !path.startsWith('./pkg/'))
  .map((path) => new URL(path, self.location.href).pathname));

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    await cache.addAll(SHELL);
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('chat-sync-demo-shell-') && name !== SHELL_CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// The app shell: network first (so a new version shows at once), the cached copy when offline.
// The API is never cached: the sync engine keeps the data in IndexedDB.
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/v1/') || url.pathname === '/healthz') return;
  event.respondWith((async () => {
    try {
      const response = await fetch(event.request);
      if (response.ok && !response.redirected && REFRESHED_PATHS.has(url.pathname)) {
        const copy = response.clone();
        event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.put(event.request, copy)));
      }
      return response;
    } catch (error) {
      const cached = await (await caches.open(SHELL_CACHE)).match(event.request, { ignoreSearch: true });
      if (cached) return cached;
      throw error;
    }
  })());
});

self.addEventListener('sync', (event) => {
  if (event.tag === 'chat-sync') event.waitUntil(syncOnce(event.lastChance));
});

self.addEventListener('periodicsync', (event) => {
  if (event.tag === 'chat-sync-periodic') event.waitUntil(syncOnce(true));
});

let ready;

/** Loads the wasm once, from the cache when offline. */
function initWasm() {
  ready ??= (async () => {
    const cached = await (await caches.open(SHELL_CACHE)).match(WASM);
    await init({ module_or_path: cached ?? fetch(WASM) });
  })().catch((error) => {
    ready = undefined;
    throw error;
  });
  return ready;
}

/** One sync for the signed-in user. Rejects while messages are still waiting, so that the
 * browser tries the `sync` event again later (unless this was its last chance). */
async function syncOnce(lastChance) {
  const session = await loadSession();
  if (!session) return;
  await initWasm();
  const result = await BackgroundSyncManager.syncOnce(managerOptions(session, { logLevel: 'info' }));
  console.info('chat-sync service worker sync', result);
  if (result.pendingOutbox > 0 && !lastChance) {
    throw new Error(`${result.pendingOutbox} message(s) still waiting`);
  }
}
