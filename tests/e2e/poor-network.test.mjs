// A burst of messages over a poor network: the whole test runs against a server that answers a
// share of API requests 503 with Retry-After, drops connections before handling them, and loses
// the acknowledgement of writes it committed (the page never learns they arrived, so it retries).
// Every message must still reach the server exactly once, in the order typed, and every mark in
// the page must end up "sent".
//
// The faults are a start flag of the server (`--fault-*`, seeded by `--fault-seed`); the server
// logs each one it injects (RUST_LOG=chat_sync_server::faults=debug), which shows that the run
// actually went through them. E2E_FAULT_SEED=<n> rolls other dice (default 3: 7 × 503, 2 drops and
// 4 lost acks in about 10 s; seed 7 hits a long streak of faults and backs off for about a minute).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { openConversation, openDemo, pollUntil, sendMessage, shownMessages, waitInPage } from './support/demo.mjs';
import { consoleLines, serverRequestLog } from './support/traffic.mjs';

const BURST = 10;
const CONVERSATION = 'Alice & Bob';
const FAULTS = {
  503: 0.15, // answered 503 unavailable…
  'retry-after': 1, // …with Retry-After: 1
  drop: 0.1, // connection cut before the server handles the request
  'lost-ack': 0.3, // a write commits, then its response is lost
  seed: Number(process.env.E2E_FAULT_SEED ?? 3), // another seed, another run of the dice
};

test(`a burst of ${BURST} messages through 503s, dropped connections and lost acks arrives once each, in order`, { timeout: 180_000 }, async (t) => {
  const serverLog = serverRequestLog();
  const server = await startServer({
    test: t, seedMessages: 200, faults: FAULTS, env: serverLog.env, onStderrLine: serverLog.onLine,
  });
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors = collectPageErrors(page);

  // The initial sync goes through the faults too, so give it longer than a healthy start.
  await openDemo(page, server.url, 'alice', { idle: false });
  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle',
    { message: 'the initial sync through the faults to finish (#status[data-phase="idle"])', timeout: 60_000 });
  await openConversation(page, CONVERSATION);

  const bodies = Array.from({ length: BURST }, (_, i) => `burst ${String(i + 1).padStart(2, '0')} of ${BURST}`);
  for (const body of bodies) await sendMessage(page, body);
  // All of them show at once, in the order typed, before any is confirmed.
  const shownAtOnce = (await shownMessages(page)).filter((m) => bodies.includes(m.body));
  assert.deepEqual(shownAtOnce.map((m) => m.body), bodies, 'the burst shows at once, in order');

  // Every mark turns "sent"; none fails (the errors are all retryable).
  await waitInPage(page, (bodies) => {
    const burst = [...document.querySelectorAll('#messages .message')]
      .filter((m) => bodies.includes(m.querySelector('.body')?.textContent));
    return burst.length === bodies.length && burst.every((m) => m.dataset.status === 'sent');
  }, { arg: bodies, message: `all ${BURST} burst messages marked sent`, timeout: 120_000 });
  const shown = (await shownMessages(page)).filter((m) => bodies.includes(m.body));
  assert.deepEqual(shown.map((m) => m.body), bodies, 'the page shows each once, in the order typed');
  assert.ok(shown.every((m) => m.status === 'sent' && m.mark === 'Sent'), JSON.stringify(shown));
  assert.equal(await page.locator('#messages .message[data-status="failed"]').count(), 0, 'nothing failed');

  // The server: each message once, in the order typed, with the id the page gave it. Reading goes
  // through the same faults, so a failed read is simply tried again.
  const alice = server.api('alice');
  const onServer = await pollUntil(
    async () => (await alice.messages(CONVERSATION, { limit: 50 })).filter((m) => bodies.includes(m.body)),
    (messages) => messages.length >= BURST,
    { message: `the server to hold the ${BURST} burst messages`, timeout: 30_000 });
  assert.deepEqual(onServer.map((m) => m.body), bodies,
    'the server holds each message exactly once, in server order = the order typed');
  assert.deepEqual(onServer.map((m) => m.clientMessageId), shown.map((m) => m.clientMessageId),
    'with the client message ids the page showed');
  assert.equal(new Set(onServer.map((m) => m.id)).size, BURST);
  assert.ok(onServer.every((m) => m.senderId === 'u-alice'));

  // The run went through the faults: writes were retried, some after a lost acknowledgement.
  const conversationId = await alice.conversationId(CONVERSATION);
  const posts = serverLog.list().filter((r) => r.method === 'POST' && r.uri === `/v1/conversations/${conversationId}/messages`).length;
  const faults = serverLog.faults();
  const lostAcks = faults.filter((f) => f.startsWith('acknowledgement lost')).length;
  const unavailable = faults.filter((f) => f === '503').length;
  const dropped = faults.filter((f) => f.startsWith('connection dropped')).length;
  t.diagnostic(`the server saw ${serverLog.count()} API requests (${posts} message POSTs for ${BURST} messages); ` +
    `injected: ${unavailable} × 503, ${dropped} dropped connections, ${lostAcks} lost acknowledgements`);
  assert.ok(lostAcks >= 1, `at least one acknowledgement was lost (faults: ${JSON.stringify(faults)})`);
  assert.ok(unavailable + dropped >= 1, 'at least one request was refused or cut');
  assert.ok(posts > BURST, `sends were retried (${posts} POSTs for ${BURST} messages)`);

  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle' &&
    !/waiting to send|not sent/.test(document.getElementById('status-text').textContent),
  { message: 'an idle status with nothing waiting', timeout: 60_000 });
  assert.deepEqual(errors.map(String), [], 'no uncaught errors in the page');
});

test('a firewall\'s page answering in the server\'s place (403, HTML) leaves messages pending, then they go once', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors = collectPageErrors(page);
  const console = consoleLines(page);
  await openDemo(page, server.url, 'alice');
  await openConversation(page, CONVERSATION);

  // Every API request meets the firewall.
  let sends = 0;
  const firewall = (route) => {
    if (route.request().method() === 'POST') sends += 1;
    return route.fulfill({ status: 403, contentType: 'text/html', body: '<html><body>Blocked by policy</body></html>' });
  };
  await page.route('**/v1/**', firewall);
  const body = `past the firewall ${Date.now()}`;
  await sendMessage(page, body);
  // The send is tried again (the first retry within the base backoff), and the log says why.
  await pollUntil(() => sends, (count) => count >= 2, { message: 'the send to be tried again' });
  assert.ok(console.has(/HTTP 403 with no protocol error body: from a proxy, firewall or captive portal/),
    `the log says why:\n${console.list().join('\n')}`);
  assert.match(await page.locator('#status-text').textContent(), /1 waiting to send/);
  const [shown] = (await shownMessages(page)).filter((m) => m.body === body);
  assert.equal(shown.status, 'pending', 'the message waits: the firewall said nothing of it');

  await page.unroute('**/v1/**', firewall);
  await waitInPage(page, (body) => [...document.querySelectorAll('#messages .message')]
    .some((m) => m.querySelector('.body')?.textContent === body && m.dataset.status === 'sent'),
  { arg: body, message: 'the message marked sent', timeout: 60_000 });
  const onServer = (await server.api('alice').messages(CONVERSATION, { limit: 50 })).filter((m) => m.body === body);
  assert.equal(onServer.length, 1, 'the server holds it once');
  assert.deepEqual(errors.map(String), []);
});
