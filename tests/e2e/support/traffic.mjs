// Who talks to the sync API: counts of `/v1/` requests as each page (and the service worker)
// issued them, as the test process itself issued them, and as the server logged them — so a test
// can show which tab syncs and that nothing else reached the server.
//
//     const log = serverRequestLog();                       // startServer({ env: log.env, onStderrLine: log.onLine })
//     const a = apiRequests(pageA);                         // a.count(), a.list()
//     const own = countOwnApiRequests(server.url);          // this process's fetches to /v1/
//     assert.equal(log.count(), a.count() + own.count());

/** `RUST_LOG` that makes the server log each request it starts handling (tower_http's trace). */
export const REQUEST_LOG_ENV = { RUST_LOG: 'info,tower_http=debug,chat_sync_server::faults=debug' };

/**
 * The `/v1/` requests the server started handling, read from its log lines (tower_http's
 * `started processing request`, logged before any fault injection or handler runs).
 * Pass `env` and `onLine` to `startServer`.
 */
export function serverRequestLog() {
  /** @type {{ method: string, uri: string }[]} */
  const requests = [];
  /** @type {string[]} */
  const faults = [];
  return {
    env: REQUEST_LOG_ENV,
    /** @param {string} line */
    onLine(line) {
      const started = /request\{method=(\w+) uri=(\S+) [^}]*\}: tower_http::trace::on_request: started processing request/.exec(line);
      if (started && started[2].startsWith('/v1/')) requests.push({ method: started[1], uri: started[2] });
      const fault = /chat_sync_server::faults: fault: (.*)$/.exec(line);
      if (fault) faults.push(fault[1]);
    },
    count: () => requests.length,
    list: () => [...requests],
    /** The injected faults logged so far (`503`, `connection dropped before handling`, …). */
    faults: () => [...faults],
  };
}

/**
 * Records the `/v1/` requests `target` (a page, or a context for every page and worker in it)
 * issues; `filter(request)` narrows them (e.g. to service workers).
 * @param {import('playwright-core').Page | import('playwright-core').BrowserContext} target
 * @param {(request: import('playwright-core').Request) => boolean} [filter]
 */
export function apiRequests(target, filter = () => true) {
  /** @type {{ method: string, path: string }[]} */
  const requests = [];
  target.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith('/v1/') && filter(request)) {
      requests.push({ method: request.method(), path: url.pathname + url.search });
    }
  });
  return {
    count: () => requests.length,
    list: () => [...requests],
  };
}

/**
 * Counts the `/v1/` requests this Node process sends to `baseUrl` (the test's own API calls, e.g.
 * `server.api('bob').send(…)`), by wrapping `globalThis.fetch`. `restore()` unwraps it.
 * @param {string} baseUrl
 */
export function countOwnApiRequests(baseUrl) {
  const original = globalThis.fetch;
  let count = 0;
  globalThis.fetch = (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.startsWith(`${baseUrl}/v1/`)) count += 1;
    return original(input, init);
  };
  return {
    count: () => count,
    restore() { globalThis.fetch = original; },
  };
}

/** The message counts of the syncs a page's log says finished (`sync finished changes=N`). */
export function finishedSyncChanges(lines) {
  return lines.map((line) => /sync finished changes=(\d+)/.exec(line)).filter(Boolean)
    .map((match) => Number(match[1]));
}

/**
 * Records a page's console messages (the manager logs `[chat-sync] this tab leads syncing` when a
 * tab takes the Web Lock).
 * @param {import('playwright-core').Page} page
 */
export function consoleLines(page) {
  /** @type {string[]} */
  const lines = [];
  page.on('console', (message) => lines.push(message.text()));
  return {
    list: () => [...lines],
    has: (/** @type {string | RegExp} */ pattern) => lines.some((line) =>
      typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line)),
  };
}
