// Delivery by the service worker after the page is gone: a message composed offline is queued in
// IndexedDB and the page registers Background Sync (tag `chat-sync`); the page is closed, the
// network comes back, and the service worker's `sync` event (www/sw.js → syncOnce) delivers it —
// with no page of the app open. The server must hold it exactly once, posted by the worker. The
// read marker Alice set offline (she read Bob's new message) goes out with it.
//
// When does the `sync` event fire? Chromium ties Background Sync to the DevTools network
// emulation of the worker (Playwright's `context.setOffline` emulates it for pages and workers):
// while emulated offline, the registration waits; when the emulation goes back online, Chromium
// fires the event on its own — here with no page open. The test waits a few seconds for that
// natural event; should a Chromium build not fire it, the test fires one through the DevTools
// protocol, `ServiceWorker.dispatchSyncEvent` (registration id, tag `chat-sync`, lastChance false).
// That domain exists only on page targets (not on the browser's, nor the worker's), so the command
// would go through a CDP session of a blank page, closed right after. Either way the delivery is
// checked on the server while the context has no page at all; the diagnostic says which fired.
// E2E_SYNC_TRIGGER=cdp fires through the protocol at once (the natural event may fire as well:
// the message must still arrive once), which keeps that path tested.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  openConversation, openDemo, pollUntil, sendMessage, unreadOf, waitForMessage, waitForUnread, waitInPage,
} from './support/demo.mjs';
import { apiRequests, serverRequestLog } from './support/traffic.mjs';

const CONVERSATION = 'Alice & Bob';
/** How long to give Chromium to fire the sync event on its own before the test fires it. */
const NATURAL_SYNC_WAIT_MS = process.env.E2E_SYNC_TRIGGER === 'cdp' ? 0 : 5_000;

test('a message queued offline is delivered by the service worker after the page is closed', { timeout: 120_000 }, async (t) => {
  const serverLog = serverRequestLog();
  const server = await startServer({ test: t, seedMessages: 200, env: serverLog.env, onStderrLine: serverLog.onLine });
  const alice = server.api('alice');
  const conversationId = await alice.conversationId(CONVERSATION);
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const context = await browser.newContext();
  const fromWorker = apiRequests(context, (request) => request.serviceWorker() !== null);
  const workerLog = [];
  context.on('console', (message) => {
    if (message.worker() || message.page() === null) workerLog.push(message.text());
  });

  const page = await context.newPage();
  const errors = collectPageErrors(page);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=2000' });
  await waitInPage(page, () => navigator.serviceWorker.controller !== null,
    { message: 'the service worker to control the page (navigator.serviceWorker.controller)' });
  const unread = await unreadOf(page, CONVERSATION);
  const fromBob = await server.api('bob').send(CONVERSATION, 'Read offline, told by the service worker');
  await waitForUnread(page, CONVERSATION, unread + 1, 'Bob\'s new message counted unread');

  // Offline: Alice reads Bob's message (the read marker waits), and her message waits in the
  // outbox; the page asks for Background Sync.
  await context.setOffline(true);
  await waitInPage(page, () => document.getElementById('status').dataset.online === 'false',
    { message: 'the status to say offline (#status[data-online="false"])' });
  await openConversation(page, CONVERSATION);
  await waitForUnread(page, CONVERSATION, 0, 'the count to clear as Alice reads offline');
  assert.notEqual((await alice.readMarker(CONVERSATION))?.lastReadMessageId, fromBob.id,
    'the server has no marker from the offline page');
  const body = `written offline, delivered by the service worker ${Date.now()}`;
  await sendMessage(page, body);
  const { clientMessageId } = await waitForMessage(page, body, { status: 'pending' });
  await waitInPage(page, () => /^Offline · 1 waiting to send/.test(document.getElementById('status-text').textContent),
    { message: 'the status line "Offline · 1 waiting to send"' });
  await waitInPage(page, async () => (await (await navigator.serviceWorker.ready).sync.getTags()).includes('chat-sync'),
    { message: 'a Background Sync registration tagged "chat-sync"' });
  const delivered = async () => (await alice.messages(CONVERSATION, { limit: 50 })).filter((m) => m.body === body);
  assert.deepEqual(await delivered(), [], 'not on the server while offline');
  assert.deepEqual(errors.map(String), [], 'no uncaught errors in the page');

  // Close the app, then come back online.
  await page.close();
  assert.equal(context.pages().length, 0, 'no page open');
  await context.setOffline(false);

  let trigger = 'natural';
  try {
    if (NATURAL_SYNC_WAIT_MS === 0) throw new Error('E2E_SYNC_TRIGGER=cdp');
    await pollUntil(delivered, (found) => found.length > 0,
      { message: 'a natural Background Sync', timeout: NATURAL_SYNC_WAIT_MS, interval: 250 });
  } catch {
    trigger = NATURAL_SYNC_WAIT_MS === 0
      ? 'CDP ServiceWorker.dispatchSyncEvent (E2E_SYNC_TRIGGER=cdp; the natural event may have fired too)'
      : 'CDP ServiceWorker.dispatchSyncEvent (no natural event within 5 s)';
    const blank = await context.newPage();
    const cdp = await context.newCDPSession(blank);
    const registrations = new Promise((resolve) => cdp.on('ServiceWorker.workerRegistrationUpdated',
      (event) => resolve(event.registrations)));
    await cdp.send('ServiceWorker.enable');
    const registration = (await registrations).find((r) => r.scopeURL === `${server.url}/` && !r.isDeleted);
    assert.ok(registration, `a service worker registration for ${server.url}/`);
    await cdp.send('ServiceWorker.dispatchSyncEvent', {
      origin: server.url, registrationId: registration.registrationId, tag: 'chat-sync', lastChance: false,
    });
    await blank.close();
  }

  const onServer = await pollUntil(delivered, (found) => found.length > 0,
    { message: `the service worker to deliver ${JSON.stringify(body)} (sync fired: ${trigger})`, timeout: 30_000 });
  assert.equal(context.pages().length, 0, 'still no page open when the server has it');
  assert.equal(onServer.length, 1, `the server holds it once: ${JSON.stringify(onServer)}`);
  assert.equal(onServer[0].clientMessageId, clientMessageId, 'with the client message id the page gave it');
  // Two POSTs of a message: Bob's (through the API) and Alice's.
  const posts = serverLog.list().filter((r) => r.method === 'POST' && r.uri === `/v1/conversations/${conversationId}/messages`);
  assert.equal(posts.length, 2, `the server received one POST of Alice's message: ${JSON.stringify(posts)}`);
  assert.ok(fromWorker.list().some((r) => r.method === 'POST' && r.path === `/v1/conversations/${conversationId}/messages`),
    `the service worker posted it: ${JSON.stringify(fromWorker.list())}`);
  const marker = await pollUntil(() => alice.readMarker(CONVERSATION), (found) => found?.lastReadMessageId === fromBob.id,
    { message: 'the service worker to send the read marker set offline' });
  assert.equal(marker.lastReadServerTs, fromBob.serverTs);
  assert.ok(fromWorker.list().some((r) => r.method === 'POST' && r.path === `/v1/conversations/${conversationId}/read`),
    `the service worker posted the read marker: ${JSON.stringify(fromWorker.list())}`);
  await pollUntil(async () => workerLog,
    (lines) => lines.some((line) => /service worker sync.*synced: true.*pendingOutbox: 0.*pendingReadMarkers: 0/.test(line)),
    { message: 'the service worker to log a finished sync with nothing waiting' });

  // Opening the app again shows it sent (the worker's delivery is in the shared IndexedDB).
  const again = await context.newPage();
  const againErrors = collectPageErrors(again);
  await openDemo(again, server.url, 'alice', { hash: `#/c/${conversationId}` });
  await waitForMessage(again, body, { status: 'sent' });
  const shown = await again.$$eval('#messages .message .body', (bodies, text) =>
    bodies.filter((b) => b.textContent === text).length, body);
  assert.equal(shown, 1, 'it shows once');
  assert.deepEqual(againErrors.map(String), [], 'no uncaught errors in the reopened page');
  t.diagnostic(`the sync event was fired by: ${trigger}; the worker's /v1/ requests: ${JSON.stringify(fromWorker.list())}`);
});
