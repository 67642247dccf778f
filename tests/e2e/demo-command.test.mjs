// The README's demo command as a person runs it: `make demo` builds the package and the server,
// then serves the demo with its seeded users and an embedded SQLite database (the wasm as its
// precompressed brotli copy). Signed in as Alice, a message sent from the page reaches the
// server, and the server still has it after the demo is stopped and started again on the same
// database file.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser } from './support/browser.mjs';
import { apiClient, repoPath, ROOT } from './support/server.mjs';
import { newPage, openConversation, openDemo, pollUntil, sendMessage, waitForMessage } from './support/demo.mjs';

/** How long `make demo` may take to answer: the first run builds the release server. */
const START_MS = 10 * 60_000;

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** GETs `url` with `Accept-Encoding: encodings`: the answer's encoding and its body as sent. */
function fetchEncoded(url, encodings) {
  return new Promise((resolve, reject) => {
    get(url, { headers: { 'accept-encoding': encodings } }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({ encoding: response.headers['content-encoding'], body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

/** A port nothing listens on now (on 127.0.0.1). */
async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

/**
 * Runs `make demo` with its database at `db`, listening on `listen` (`host:port`), until the
 * server answers `/healthz`. Returns `stop()`, which ends it (SIGTERM to its process group) and
 * resolves once it exited.
 */
async function startDemo(listen, db) {
  const child = spawn('make', ['demo'], {
    cwd: ROOT,
    env: { ...process.env, CHAT_SYNC_DB: db, CHAT_SYNC_LISTEN: listen, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  let exit = null;
  exited.then((result) => { exit = result; });
  const stop = async () => {
    if (!exit) process.kill(-child.pid, 'SIGTERM');
    return exited;
  };
  const state = await pollUntil(async () => {
    if (exit) return 'exited';
    return fetch(`http://${listen}/healthz`).then((response) => (response.ok ? 'up' : 'down'), () => 'down');
  }, (answer) => answer !== 'down', { message: `make demo to answer on ${listen}`, timeout: START_MS, interval: 500 })
    .catch(async (error) => {
      await stop();
      throw new Error(`${error.message}\n--- make demo ---\n${output.slice(-4000)}`);
    });
  if (state === 'exited') {
    throw new Error(`make demo exited (${JSON.stringify(exit)}):\n${output.slice(-4000)}`);
  }
  return { stop };
}

it('make demo serves the demo: Alice sends a message, and it outlives a restart', { timeout: 2 * START_MS }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chat-sync-demo-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const db = join(dir, 'chat.sqlite');
  const listen = `127.0.0.1:${await freePort()}`;
  const url = `http://${listen}`;

  let demo = await startDemo(listen, db);
  t.after(() => demo.stop());
  // The wasm goes out as the brotli copy `make pkg` wrote (level 11: smaller than on the fly).
  const wasm = await fetchEncoded(`${url}/pkg/chat_sync_bg.wasm`, 'gzip, deflate, br');
  assert.equal(wasm.encoding, 'br');
  assert.ok(wasm.body.equals(await readFile(repoPath('pkg/chat_sync_bg.wasm.br'))), 'the precompressed copy');

  const { page, errors } = await newPage(browser, t);
  await openDemo(page, url, 'alice');
  await openConversation(page, 'General');
  const text = `sent in the demo ${Date.now()}`;
  await sendMessage(page, text);
  await waitForMessage(page, text, { status: 'sent' });
  const held = async () => (await apiClient(url, 'bob').messages('General')).filter((m) => m.body === text);
  assert.equal((await held()).length, 1, 'the server holds the message once');
  assert.deepEqual(errors, []);
  await page.close();

  const { code, signal } = await demo.stop();
  assert.ok(code === 0 || signal === 'SIGTERM', `the demo stops cleanly (code ${code}, signal ${signal})`);
  demo = await startDemo(listen, db);
  assert.equal((await held()).length, 1, 'after a restart on the same database, still there once');
});
