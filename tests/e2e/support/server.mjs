// Servers for browser tests: serveStatic, a tiny static file server on 127.0.0.1 (a free port),
// and startServer, the reference sync server with a fresh database (further below).
//
//     const server = await serveStatic({ '/': repoPath('js'), '/fixtures': here('fixtures') });
//     await page.goto(`${server.url}/fixtures/page.html`);
//     await server.close();
//
// Each key of `mounts` is a URL prefix served from a directory; requests outside every mount, or
// escaping a directory with `..`, get 404. `routes` maps exact paths to handlers for anything
// dynamic: `(request, response) => void`.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:http';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** A path inside the repository. @param {...string} parts */
export const repoPath = (...parts) => join(ROOT, ...parts);

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.webmanifest': 'application/manifest+json',
};

/**
 * Serves directories (and optional dynamic routes) on 127.0.0.1:0.
 * @param {Record<string, string>} mounts URL prefix → directory
 * @param {Record<string, (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void>} [routes]
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export async function serveStatic(mounts, routes = {}) {
  // Longest prefix first, so '/js' wins over '/'.
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix.replace(/\/+$/, ''), resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);
  const server = createServer(async (request, response) => {
    try {
      const pathname = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
      const route = routes[pathname];
      if (route) return route(request, response);
      for (const [prefix, dir] of table) {
        if (pathname !== prefix && !pathname.startsWith(`${prefix}/`)) continue;
        let file = resolve(join(dir, pathname.slice(prefix.length)));
        if (file !== dir && !file.startsWith(dir + sep)) break;
        if (pathname.endsWith('/')) file = join(file, 'index.html');
        const body = await readFile(file);
        response.writeHead(200, {
          'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
          'cache-control': 'no-store',
        });
        return response.end(body);
      }
      response.writeHead(404).end();
    } catch {
      if (!response.headersSent) response.writeHead(404);
      response.end();
    }
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((done) => {
      server.closeAllConnections();
      server.close(() => done());
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// The reference sync server (server/, `chat-sync-server`) with a fresh database, for end-to-end
// tests of the demo PWA and the package:
//
//     const server = await startServer({ test: t });        // stopped (log printed on failure) after t
//     await page.goto(`${server.url}/`);
//     const bob = server.api('bob');
//     await bob.send('General', 'hi');                       // as Bob, by conversation title
//     const messages = await server.api('alice').messages('General', { limit: 5 }); // oldest first
//
// The binary is target/debug/chat-sync-server (run.sh builds it; CHAT_SYNC_SERVER_BIN overrides
// the path). Its output goes to target/e2e/logs/server-<port>.log.

/** The demo users `--seed-demo` creates: short name → id, display name, token. */
export const DEMO_USERS = {
  alice: { id: 'u-alice', name: 'Alice Martin', token: 'demo-alice' },
  bob: { id: 'u-bob', name: 'Bob Chen', token: 'demo-bob' },
  carol: { id: 'u-carol', name: 'Carol Díaz', token: 'demo-carol' },
  dave: { id: 'u-dave', name: 'Dave Okafor', token: 'demo-dave' },
  erin: { id: 'u-erin', name: 'Erin Schulz', token: 'demo-erin' },
};

/**
 * Starts the reference server on 127.0.0.1 (a free port) with a fresh database in a temp dir.
 *
 * @param {object} [options]
 * @param {string[] | Record<string, number | string>} [options.faults] fault flags, either as
 *   arguments (`['--fault-503', '0.5']`) or by name without the prefix (`{ 503: 0.5, drop: 0.2,
 *   'lost-ack': 0.3, 'retry-after': 1 }`)
 * @param {boolean} [options.seed] `--seed-demo` (default true)
 * @param {number} [options.seedMessages] `--seed-demo-messages N` (server default 3,000)
 * @param {string} [options.www] the folder of the demo's files (default the repository's www/)
 * @param {string[]} [options.args] more arguments
 * @param {Record<string, string>} [options.env] more environment (RUST_LOG defaults to info)
 * @param {(line: string) => void} [options.onStderrLine] sees each log line
 * @param {import('node:test').TestContext} [options.test] stops the server after this test (or
 *   suite) and prints its log when the test failed
 */
export async function startServer({
  faults = [], seed = true, seedMessages, www = repoPath('www'), args = [], env = {}, onStderrLine, test,
} = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'chat-sync-e2e-'));
  const binary = process.env.CHAT_SYNC_SERVER_BIN ?? repoPath('target/debug/chat-sync-server');
  const faultArgs = Array.isArray(faults)
    ? faults.map(String)
    : Object.entries(faults).flatMap(([name, value]) => [`--fault-${name}`, String(value)]);
  const baseArgs = ['--db', join(dir, 'chat.sqlite'), '--www', www];
  if (seed) baseArgs.push('--seed-demo');
  if (seedMessages != null) baseArgs.push('--seed-demo-messages', String(seedMessages));
  baseArgs.push(...faultArgs, ...args);
  await mkdir(repoPath('target/e2e/logs'), { recursive: true });

  let child;
  let logFile;
  /** Settles when the running process's log is written out (after it exited). */
  let logWritten = Promise.resolve();
  let url;

  /** Spawns the binary on `listen` and resolves with its URL once it listens. */
  async function spawnServer(listen) {
    const proc = spawn(binary, [...baseArgs, '--listen', listen], {
      env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    const early = [];
    const log = { stream: null, stderrClosed: false };
    const stderrLines = createInterface({ input: proc.stderr });
    stderrLines.on('line', (line) => {
      onStderrLine?.(line);
      if (log.stream) log.stream.write(`${line}\n`);
      else early.push(line);
    });
    stderrLines.once('close', () => {
      log.stderrClosed = true;
      log.stream?.end();
    });
    const address = await new Promise((resolve, reject) => {
      const lines = createInterface({ input: proc.stdout });
      lines.once('line', (line) => {
        const match = /^listening on (http:\/\/\S+)/.exec(line);
        if (match) resolve(match[1]);
        else reject(new Error(`chat-sync-server said ${JSON.stringify(line)}, not "listening on …"`));
      });
      proc.once('error', reject);
      proc.once('exit', (code, signal) => reject(new Error(
        `chat-sync-server (${binary}) exited (${signal ?? code}) before listening:\n${early.join('\n')}`)));
    });
    logFile ??= repoPath('target/e2e/logs', `server-${new URL(address).port}.log`);
    log.stream = createWriteStream(logFile, { flags: 'a' });
    logWritten = new Promise((done) => log.stream.once('close', done));
    for (const line of early.splice(0)) log.stream.write(`${line}\n`);
    if (log.stderrClosed) log.stream.end();
    return address;
  }

  async function kill() {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((done) => proc.once('exit', done));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    await logWritten;
  }

  url = await spawnServer('127.0.0.1:0');
  const server = {
    url,
    /** Where the server's log goes. */
    get logFile() { return logFile; },
    /** The server's log so far. */
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    /** Stops the server and deletes its database. */
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
    /**
     * Stops the server (SIGTERM) and starts it again on the same port and database, or with
     * `freshDatabase` on a new one (seeded again as at the start): a database replaced.
     */
    async restart({ freshDatabase = false } = {}) {
      await kill();
      if (freshDatabase) {
        for (const file of ['chat.sqlite', 'chat.sqlite-wal', 'chat.sqlite-shm']) {
          await rm(join(dir, file), { force: true });
        }
      }
      await spawnServer(new URL(url).host);
    },
    /** A client of the API as a demo user (`'alice'`, `'u-alice'`); see `apiClient`. */
    api: (user) => apiClient(url, user),
  };
  if (test) {
    test.after(async () => {
      await kill();
      if (!test.passed) {
        process.stderr.write(`\n--- chat-sync-server log (${logFile}) ---\n${await server.log()}--- end of log ---\n`);
      }
      await server.stop();
    });
  }
  return server;
}

/**
 * The API as one demo user. Callable as a plain fetch with the user's token:
 * `await api('/v1/me')`; and with helpers that throw on an HTTP error:
 * `conversations()`, `conversationId(titleOrId)`, `messages(conversation, { limit })` (oldest
 * first), `send(conversation, body, { clientMessageId })` (the message), `readMarker(conversation)`
 * (the user's own, or null), `me()`.
 * A conversation is given by id or by title (`'General'`, `'Alice & Bob'`, …).
 */
export function apiClient(url, user) {
  const short = user.replace(/^u-/, '');
  const known = DEMO_USERS[short];
  const token = known?.token ?? `demo-${short}`;
  const call = (path, init = {}) => fetch(url + path, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
  });
  const json = async (path, init) => {
    const response = await call(path, init);
    const text = await response.text();
    if (!response.ok) throw new Error(`${init?.method ?? 'GET'} ${path} as ${user}: ${response.status} ${text}`);
    return JSON.parse(text);
  };
  let ids;
  const api = Object.assign(call, {
    user: known?.id ?? `u-${short}`,
    token,
    me: () => json('/v1/me'),
    conversations: async () => (await json('/v1/conversations')).conversations,
    async conversationId(conversation) {
      if (/^c\d+$/.test(conversation) || conversation.startsWith('c-')) return conversation;
      ids ??= new Map((await api.conversations()).map((c) => [c.title, c.id]));
      const id = ids.get(conversation);
      if (!id) throw new Error(`${user} has no conversation titled ${JSON.stringify(conversation)}`);
      return id;
    },
    /** The newest `limit` messages, oldest first (the server answers newest first). */
    async messages(conversation, { limit = 50 } = {}) {
      const id = await api.conversationId(conversation);
      const page = await json(`/v1/conversations/${encodeURIComponent(id)}/messages?limit=${limit}`);
      return page.messages.reverse();
    },
    /** The user's read marker in `conversation` as the server's conversation feed holds it. */
    async readMarker(conversation) {
      const id = await api.conversationId(conversation);
      let cursor = null;
      let marker = null;
      for (;;) {
        const query = cursor ? `?cursor=${encodeURIComponent(cursor)}&limit=500` : '?limit=500';
        const page = await json(`/v1/conversations/${encodeURIComponent(id)}/sync${query}`);
        for (const change of page.changes) {
          if (change.type === 'readMarker' && change.readMarker.userId === api.user) marker = change.readMarker;
        }
        if (!page.hasMore) return marker;
        cursor = page.nextCursor;
      }
    },
    async send(conversation, body, { clientMessageId = `e2e-${Date.now()}-${Math.random().toString(36).slice(2)}` } = {}) {
      const id = await api.conversationId(conversation);
      const result = await json(`/v1/conversations/${encodeURIComponent(id)}/messages`, {
        method: 'POST',
        body: JSON.stringify({ clientMessageId, body }),
      });
      return result.message;
    },
  });
  return api;
}
