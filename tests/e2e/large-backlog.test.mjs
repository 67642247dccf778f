// A large backlog: the server holds 20,000 demo messages (`--seed-demo-messages 20000`; Alice is a
// member of 4 of the 6 conversations, so her feed has most of them). Signing in runs the initial
// sync over all of it, in pages of 500 changes after a first page of 100 (a fifth of the round
// trips pages of 100 would take); then the first conversation shows its newest messages — one page,
// not the whole history — and the page's memory stays bounded throughout.
//
// Memory is sampled every 500 ms from the DevTools protocol (`Performance.getMetrics`,
// JSHeapUsedSize: the V8 heap of the page's main thread, without garbage collection forced), and
// at the end the WebAssembly memory's size (the engine's linear memory lives outside the JS heap).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { openDemo, waitForInitialSync, waitForNewestAtBottom, waitInPage } from './support/demo.mjs';
import { apiRequests, consoleLines, finishedSyncChanges } from './support/traffic.mjs';

const MESSAGES = 20_000;
/** Generous bounds: the point is "bounded", not a benchmark. */
const MAX_JS_HEAP = 150 * 1024 * 1024;
const MAX_WASM_MEMORY = 256 * 1024 * 1024;
/** The demo shows a page of 50 messages when a conversation opens. */
const MAX_SHOWN = 100;

const MB = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Every change of `token`'s feed, read in pages of 500, as the server holds it. */
async function readFeed(url, token) {
  const changes = [];
  let cursor = null;
  for (;;) {
    const query = new URLSearchParams({ limit: '500', ...(cursor ? { cursor } : {}) });
    const response = await fetch(`${url}/v1/sync?${query}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200, `GET /v1/sync?${query}`);
    const page = await response.json();
    changes.push(...page.changes);
    cursor = page.nextCursor;
    if (!page.hasMore) return changes;
  }
}

test(`the initial sync of ${MESSAGES.toLocaleString('en')} messages completes, the view shows one page, memory stays bounded`, { timeout: 300_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: MESSAGES });
  const alice = server.api('alice');
  const feed = await readFeed(server.url, alice.token);
  const messagesByConversation = new Map();
  for (const change of feed) {
    if (change.type !== 'message') continue;
    const id = change.message.conversationId;
    messagesByConversation.set(id, (messagesByConversation.get(id) ?? 0) + 1);
  }
  const aliceMessages = [...messagesByConversation.values()].reduce((a, b) => a + b, 0);
  assert.ok(aliceMessages > MESSAGES / 2, `Alice's feed holds most of the backlog (${aliceMessages} messages)`);

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors = collectPageErrors(page);
  const logs = consoleLines(page);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const heapNow = async () => (await cdp.send('Performance.getMetrics')).metrics
    .find((m) => m.name === 'JSHeapUsedSize').value;

  // Sample the JS heap while the initial sync runs.
  const samples = [];
  let sampling = true;
  t.after(() => { sampling = false; });
  const sampler = (async () => {
    while (sampling) {
      try {
        samples.push(await heapNow());
      } catch { /* the page is navigating */ }
      await new Promise((done) => setTimeout(done, 500));
    }
  })();

  const feedRequests = apiRequests(page, (request) => new URL(request.url()).pathname === '/v1/sync');
  const started = Date.now();
  await openDemo(page, server.url, 'alice', { idle: false });
  await waitForInitialSync(page);
  const syncMs = Date.now() - started;

  // The first page small, so the list shows something at once; the rest as large as the protocol
  // allows (counted by cursor: a retried request asks for the same page).
  const asked = feedRequests.list().map(({ path }) => new URL(path, server.url).searchParams);
  assert.equal(asked[0].get('limit'), '100', `the first feed request: ${feedRequests.list()[0]?.path}`);
  const largePages = new Set(asked.filter((query) => query.get('limit') === '500').map((query) => query.get('cursor')));
  assert.equal(largePages.size, Math.ceil((feed.length - 100) / 500),
    `pages of 500 after the first: ${JSON.stringify(feedRequests.list().map(({ path }) => path))}`);

  // The sync's own log says how many messages it pulled (`changes` counts message changes): every
  // message of Alice's feed.
  const finished = finishedSyncChanges(logs.list());
  const pulled = finished.reduce((a, b) => a + b, 0);
  assert.equal(pulled, aliceMessages,
    `the page's syncs pulled ${pulled} messages (runs: ${JSON.stringify(finished)}); Alice's feed on the server has ${aliceMessages}`);

  // The conversation list: every conversation of Alice's, previews from the newest messages.
  const rows = await page.locator('#conversations .conversation').count();
  assert.equal(rows, messagesByConversation.size, 'a row per conversation');

  // The first conversation: its newest message at the bottom, one page of messages rendered.
  // (Clicked by its id: a render of the sync's last change may still reorder the list.)
  const conversationId = await page.locator('#conversations .conversation').first().getAttribute('data-id');
  const [newest] = (await alice.messages(conversationId, { limit: 1 }));
  await page.locator(`#conversations .conversation[data-id="${conversationId}"]`).click();
  await waitForNewestAtBottom(page, newest.body);
  const shown = await page.locator('#messages .message').count();
  const total = messagesByConversation.get(conversationId);
  assert.ok(shown > 0 && shown <= MAX_SHOWN,
    `the view renders one page: ${shown} .message elements of the ${total} the conversation holds`);
  assert.ok(total > 10 * MAX_SHOWN, `the conversation is large (${total} messages)`);

  // Scrolling to the top loads one more page, not the rest.
  const bottomBodies = await page.$$eval('#messages .message .body', (bodies) => bodies.map((b) => b.textContent));
  await page.locator('#messages-refresh').evaluate((scroller) => { scroller.scrollTop = 0; });
  const afterScroll = await waitInPage(page, (before) => {
    const count = document.querySelectorAll('#messages .message').length;
    return count > before ? count : null;
  }, { arg: shown, message: `more than ${shown} messages after scrolling to the top` });
  // Give it a moment to (wrongly) keep loading, then count again.
  await page.waitForTimeout(1_000);
  const afterScrollSettled = await page.locator('#messages .message').count();
  assert.ok(afterScroll <= 2 * MAX_SHOWN && afterScrollSettled === afterScroll,
    `one more page after scrolling up: ${shown} → ${afterScroll} (${afterScrollSettled} a second later)`);
  const allBodies = await page.$$eval('#messages .message .body', (bodies) => bodies.map((b) => b.textContent));
  assert.deepEqual(allBodies.slice(-bottomBodies.length), bottomBodies, 'the older page goes above the newest');

  sampling = false;
  await sampler;
  samples.push(await heapNow());
  const peakHeap = Math.max(...samples);
  const finalHeap = samples[samples.length - 1];
  const { wasmMemory, storage } = await page.evaluate(async () => {
    // The module instance app.js loaded (same URL): its init returns the existing exports.
    const bindings = await import('/pkg/chat_sync.js');
    const exports = await bindings.default();
    const estimate = await navigator.storage.estimate();
    return { wasmMemory: exports.memory.buffer.byteLength, storage: estimate.usage };
  });
  t.diagnostic(`initial sync of ${feed.length} changes (${aliceMessages} messages in ${messagesByConversation.size} ` +
    `conversations) took ${(syncMs / 1000).toFixed(1)} s; the view shows ${shown} of ${total} messages, ${afterScroll} ` +
    'after scrolling to the top; ' +
    `JS heap peak ${MB(peakHeap)} over ${samples.length} samples, ${MB(finalHeap)} at the end; ` +
    `wasm memory ${MB(wasmMemory)}; storage used ${MB(storage)}`);
  assert.ok(peakHeap < MAX_JS_HEAP, `JS heap peak ${MB(peakHeap)} < ${MB(MAX_JS_HEAP)}`);
  assert.ok(wasmMemory < MAX_WASM_MEMORY, `wasm memory ${MB(wasmMemory)} < ${MB(MAX_WASM_MEMORY)}`);
  assert.deepEqual(errors.map(String), [], 'no uncaught errors in the page');
});
