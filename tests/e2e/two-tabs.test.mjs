// Two tabs of one browser profile, signed in as the same user: one tab leads (a Web Lock) and is
// the only one that talks to the server; a message typed in the other tab goes through the shared
// outbox, reaches the server exactly once and shows in both; closing the leading tab hands the
// lead to the other, which then syncs on its own.
//
// Who sent what is counted three ways: each page's `/v1/` requests (`page.on('request')`), this
// process's own API calls, and every `/v1/` request the server logged (tower_http's request log at
// RUST_LOG=tower_http=debug). The server's total must equal the pages' plus ours, with the
// follower's share zero.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { openConversation, openDemo, openTwoTabs, pollUntil, sendMessage, waitForMessage, waitInPage } from './support/demo.mjs';
import { apiRequests, consoleLines, countOwnApiRequests, serverRequestLog } from './support/traffic.mjs';

const LEADS = '[chat-sync] this tab leads syncing';
/** Pages sync every 2 s (instead of 5 min), so a leader's own traffic shows quickly. */
const QUERY = '?periodicSyncMs=2000';

test('two tabs as one user: one syncs, the other sends through it, and takes over when it closes', { timeout: 150_000 }, async (t) => {
  const serverLog = serverRequestLog();
  const server = await startServer({ test: t, seedMessages: 300, env: serverLog.env, onStderrLine: serverLog.onLine });
  const own = countOwnApiRequests(server.url);
  t.after(() => own.restore());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext();
  // Requests from the service worker (none expected here: nothing is queued offline).
  const fromWorker = apiRequests(context, (request) => request.serviceWorker() !== null);

  const first = await context.newPage();
  const firstRequests = apiRequests(first);
  const firstConsole = consoleLines(first);
  const firstErrors = collectPageErrors(first);
  await openDemo(first, server.url, 'alice', { query: QUERY });
  assert.ok(firstConsole.has(LEADS), 'the first tab logs that it leads');

  const second = await context.newPage();
  const secondRequests = apiRequests(second);
  const secondConsole = consoleLines(second);
  const secondErrors = collectPageErrors(second);
  // Same profile: the saved session signs the second tab in without the sign-in screen. Its
  // status says it follows (the manager's phase `follower`), the first tab's that it syncs.
  await openDemo(second, server.url, 'alice', { query: QUERY, idle: false });
  await waitInPage(second, () => document.getElementById('status').dataset.phase === 'follower',
    { message: 'the second tab\'s #status[data-phase="follower"]' });
  assert.notEqual(await first.getAttribute('#status', 'data-phase'), 'follower', 'the first tab leads');

  /** Waits until the server has seen exactly what the pages and this process sent. */
  const serverMatchesClients = (message) => pollUntil(
    async () => ({
      server: serverLog.count(),
      first: firstRequests.count(),
      second: secondRequests.count(),
      worker: fromWorker.count(),
      test: own.count(),
    }),
    (seen) => seen.server === seen.first + seen.second + seen.worker + seen.test,
    { message, timeout: 10_000, interval: 50 });

  // The leader keeps syncing every 2 s; the follower stays quiet.
  const leaderBefore = firstRequests.count();
  await pollUntil(async () => firstRequests.count(), (count) => count >= leaderBefore + 2,
    { message: 'two more periodic syncs from the leading tab', timeout: 15_000 });
  const counts = await serverMatchesClients('the server saw every /v1/ request the pages and the test sent');
  assert.equal(counts.second, 0, `the follower sent no API request; it sent ${JSON.stringify(secondRequests.list())}`);
  assert.equal(counts.worker, 0, 'the service worker sent no API request');
  assert.ok(!secondConsole.has(LEADS), 'the second tab does not lead');
  assert.ok(counts.first > 0 && counts.server === counts.first + counts.test,
    `the server's /v1/ requests (${counts.server}) are the leader's (${counts.first}) and the test's (${counts.test})`);

  // A message typed in the follower goes through the shared outbox: the leader delivers it.
  await openConversation(first, 'General');
  await openConversation(second, 'General');
  const body = `from the follower tab ${Date.now()}`;
  await sendMessage(second, body);
  const { clientMessageId } = await waitForMessage(second, body, { status: 'sent' });
  await waitForMessage(first, body, { status: 'sent' });
  const alice = server.api('alice');
  const general = await alice.conversationId('General');
  const delivered = (await alice.messages('General', { limit: 50 })).filter((m) => m.body === body);
  assert.equal(delivered.length, 1, `the server holds the message once: ${JSON.stringify(delivered)}`);
  assert.equal(delivered[0].clientMessageId, clientMessageId, 'with the client message id the follower showed');
  assert.equal(delivered[0].senderId, 'u-alice');
  const posts = firstRequests.list().filter((r) => r.method === 'POST' && r.path === `/v1/conversations/${general}/messages`);
  assert.equal(posts.length, 1, `the leading tab posted it, once: ${JSON.stringify(posts)}`);
  const afterSend = await serverMatchesClients('the server saw every request after the send');
  assert.equal(afterSend.second, 0, `the follower still sent nothing: ${JSON.stringify(secondRequests.list())}`);
  assert.equal(afterSend.worker, 0);
  assert.equal(
    serverLog.list().filter((r) => r.method === 'POST' && r.uri === `/v1/conversations/${general}/messages`).length, 1,
    'the server received one POST of a message (the test sent none)');

  // Closing the leader hands the lock to the follower, which now syncs on its own.
  assert.equal(secondRequests.count(), 0, 'the follower sent nothing while the first tab led');
  await first.close();
  await pollUntil(async () => secondConsole.has(LEADS), Boolean,
    { message: `the second tab to log "${LEADS}" after the first closed`, timeout: 15_000 });
  await waitInPage(second, () => document.getElementById('status').dataset.phase !== 'follower',
    { message: 'the second tab\'s status to leave the phase "follower"' });
  const handedOver = secondRequests.count();
  const fromBob = `Bob writes after the handover ${Date.now()}`;
  await server.api('bob').send('General', fromBob);
  // The new leader's periodic sync (2 s) brings it: no user action in the page.
  await waitForMessage(second, fromBob, { timeout: 20_000 });
  assert.ok(secondRequests.count() > handedOver,
    'the second tab fetched the new message itself (its own /v1/ requests)');
  await waitInPage(second, () => document.getElementById('status').dataset.phase === 'idle' &&
    /^Synced /.test(document.getElementById('status-text').textContent),
  { message: 'the new leader shows an idle status with the last sync time' });
  const atEnd = await serverMatchesClients('the server saw every request after the handover');
  assert.equal(atEnd.server, atEnd.first + atEnd.second + atEnd.test);
  assert.equal(atEnd.worker, 0);
  // Bob's message arrives once on the new leader's screen.
  const shown = await second.$$eval('#messages .message .body', (bodies, text) =>
    bodies.filter((b) => b.textContent === text).length, fromBob);
  assert.equal(shown, 1, "Bob's message shows once");

  assert.deepEqual(firstErrors.map(String), [], 'no uncaught errors in the first tab');
  assert.deepEqual(secondErrors.map(String), [], 'no uncaught errors in the second tab');
  t.diagnostic(`/v1/ requests the server saw: ${atEnd.server} = first tab (leader until closed) ${atEnd.first} ` +
    `+ second tab ${atEnd.second} (all after the handover; ${atEnd.second - handedOver} of them after Bob wrote) ` +
    `+ this test's API calls ${atEnd.test}`);
});

test('a message the follower queued offline is delivered once by it after the leader closed', { timeout: 120_000 }, async (t) => {
  const serverLog = serverRequestLog();
  const server = await startServer({ test: t, seedMessages: 200, env: serverLog.env, onStderrLine: serverLog.onLine });
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext();
  const { first, second, firstRequests, secondRequests, secondConsole, firstErrors, secondErrors } =
    await openTwoTabs(context, server.url, 'alice', { firstQuery: QUERY, secondQuery: QUERY });
  await openConversation(second, 'Alice & Bob');

  // Offline (the whole profile): the follower's message waits in the shared outbox.
  await context.setOffline(true);
  await waitInPage(second, () => document.getElementById('status').dataset.online === 'false',
    { message: 'the second tab to see it is offline' });
  const body = `queued in the follower, offline ${Date.now()}`;
  await sendMessage(second, body);
  const { clientMessageId } = await waitForMessage(second, body, { status: 'pending' });
  await waitInPage(second, () => /waiting to send/.test(document.getElementById('status-text').textContent),
    { message: 'the follower\'s status line to say a message is waiting' });

  // The leader goes away while the message waits; the follower takes over, still offline.
  await first.close();
  await pollUntil(async () => secondConsole.has(LEADS), Boolean,
    { message: `the second tab to log "${LEADS}"`, timeout: 15_000 });
  await waitInPage(second, () => document.getElementById('status').dataset.phase !== 'follower',
    { message: 'the second tab\'s status to leave the phase "follower"' });
  const alice = server.api('alice');
  const conversationId = await alice.conversationId('Alice & Bob');
  const messagePath = `/v1/conversations/${conversationId}/messages`;
  assert.equal(serverLog.list().filter((r) => r.method === 'POST' && r.uri === messagePath).length, 0,
    'nothing reached the server while offline');

  // Back online: the new leader delivers it from the shared outbox, once.
  await context.setOffline(false);
  await waitForMessage(second, body, { status: 'sent', timeout: 20_000 });
  const onServer = (await alice.messages('Alice & Bob', { limit: 20 })).filter((m) => m.body === body);
  assert.equal(onServer.length, 1, `the server holds it once: ${JSON.stringify(onServer)}`);
  assert.equal(onServer[0].clientMessageId, clientMessageId);
  assert.equal(serverLog.list().filter((r) => r.method === 'POST' && r.uri === messagePath).length, 1,
    'the server received one POST of a message');
  assert.equal(secondRequests.list().filter((r) => r.method === 'POST' && r.path === messagePath).length, 1,
    'the new leader posted it');
  assert.equal(firstRequests.list().filter((r) => r.method === 'POST' && r.path === messagePath).length, 0,
    'the closed tab never posted it');
  await waitInPage(second, () => document.getElementById('status').dataset.phase === 'idle' &&
    /^Synced /.test(document.getElementById('status-text').textContent),
  { message: 'an idle "Synced …" status with nothing waiting' });
  assert.deepEqual([...firstErrors, ...secondErrors].map(String), [], 'no uncaught errors in either tab');
});
