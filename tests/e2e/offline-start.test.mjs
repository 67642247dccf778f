// The demo starts offline: after one online visit (service worker installed and controlling, signed
// in, synced), a reload with the network off is served by the service worker's app-shell cache and
// shows the conversations and messages from IndexedDB, with the status line saying Offline.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, shownMessages, waitForConversations, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Titles and previews of the conversation list, as shown. */
const listed = (page) => page.$$eval('#conversations .conversation', (rows) => rows.map((row) => ({
  id: row.dataset.id,
  title: row.querySelector('.conversation-title').textContent,
  preview: row.querySelector('.conversation-preview').textContent,
})));

it('reloaded offline, the app comes from the service worker and shows the cached conversations', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const { context, page, errors } = await newPage(browser, t);

  await openDemo(page, server.url, 'alice');
  const scope = await page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((done) => navigator.serviceWorker.addEventListener('controllerchange', done, { once: true }));
    }
    return registration.scope;
  });
  assert.equal(scope, `${server.url}/`);
  await openConversation(page, 'Project Phoenix');
  const conversations = await listed(page);
  const messages = (await shownMessages(page)).map((m) => m.body);
  assert.equal(conversations.length, 4, 'Alice is in four demo conversations');
  const phoenixUrl = page.url();
  assert.match(phoenixUrl, /#\/c\/c\d+$/);

  await context.setOffline(true);
  const response = await page.reload();
  assert.ok(response?.fromServiceWorker(), 'the document came from the service worker');

  // The page renders with what the cache holds, and says it is offline.
  await waitForConversations(page, { idle: false });
  await waitInPage(page, () => document.getElementById('status').dataset.online === 'false' &&
    document.getElementById('status-text').textContent.startsWith('Offline'),
  { message: '#status to say Offline (data-online="false")' });
  assert.deepEqual(await listed(page), conversations, 'the same conversations and previews as online');
  // The hash opened Project Phoenix again, with its messages from IndexedDB.
  await waitInPage(page, (count) => document.getElementById('conversation-title').textContent === 'Project Phoenix' &&
    document.querySelectorAll('#messages .message').length === count,
  { arg: messages.length, message: `Project Phoenix open with its ${messages.length} cached messages` });
  assert.deepEqual((await shownMessages(page)).map((m) => m.body), messages);
  assert.equal(await page.locator('#sign-in').isVisible(), false, 'still signed in');
  assert.equal(await page.locator('#banner').isVisible(), false, 'no error banner');
  assert.deepEqual(errors, []);

  // Every app-shell file came from the cache: nothing but the API failed to load.
  const shellFailures = [];
  page.on('requestfailed', (request) => {
    if (!new URL(request.url()).pathname.startsWith('/v1/')) shellFailures.push(request.url());
  });
  await page.reload();
  await waitForConversations(page, { idle: false });
  assert.deepEqual(shellFailures, []);

  // And online again, it syncs and goes idle.
  await context.setOffline(false);
  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle' &&
    document.getElementById('status').dataset.online === 'true',
  { message: 'online again: #status idle and online' });
});
