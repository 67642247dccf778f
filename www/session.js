// The signed-in demo user, kept in Cache Storage so that both the page and the service worker
// (which has no localStorage) can read it. This is a demo: a real app keeps its token wherever
// its sign-in flow does and hands the service worker a `getToken`.

const CACHE = 'chat-sync-demo-session';
const KEY = new URL('./__session__', import.meta.url).href;

/** @typedef {{ userId: string, token: string, displayName: string }} Session */

/** The saved session, or null when nobody is signed in. @returns {Promise<Session | null>} */
export async function loadSession() {
  const cache = await caches.open(CACHE);
  const response = await cache.match(KEY);
  return response ? response.json() : null;
}

/** Saves the session. @param {Session} session */
export async function saveSession(session) {
  const cache = await caches.open(CACHE);
  await cache.put(KEY, new Response(JSON.stringify(session), {
    headers: { 'Content-Type': 'application/json' },
  }));
}

/** Forgets the session. */
export async function clearSession() {
  await caches.delete(CACHE);
}

/** The options both the page and the service worker open the manager with. */
export function managerOptions(session, extra = {}) {
  return {
    serverUrl: self.location.origin,
    token: session.token,
    userId: session.userId,
    ...extra,
  };
}
