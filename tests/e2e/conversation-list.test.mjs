// The conversation list is one `listConversations` call, which brings each row's last message
// and unread count: a render reads no row's messages or read markers (with many conversations,
// reading them row by row made each render slow). Past 99 unread a row shows 99+ (the count
// stops at 100), and its label says no more than that.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { newPage, openDemo, previewOf, unreadOf, waitForUnread, waitInPage } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

it('a new message updates its row\'s preview and count from the list alone', async (t) => {
  const server = await startServer({ test: t, seedMessages: 200 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  const unread = await unreadOf(page, 'General');
  // Counts the manager's reads from here on.
  await page.evaluate(async (url) => {
    const { BackgroundSyncManager } = await import(url);
    window.reads = { listConversations: 0, listMessages: 0, listReadMarkers: 0 };
    for (const name of Object.keys(window.reads)) {
      const read = BackgroundSyncManager.prototype[name];
      BackgroundSyncManager.prototype[name] = function (...args) {
        window.reads[name] += 1;
        return read.apply(this, args);
      };
    }
  }, new URL('/pkg/index.js', server.url).href);

  const text = `new in General ${Date.now()}`;
  await server.api('bob').send('General', text);
  await waitForUnread(page, 'General', unread + 1, 'General to count Bob\'s new message');
  assert.equal(await previewOf(page, 'General'), `Bob Chen: ${text}`);
  const reads = await page.evaluate(() => window.reads);
  assert.ok(reads.listConversations > 0, 'the list was read again');
  assert.deepEqual([reads.listMessages, reads.listReadMarkers], [0, 0], 'no row read its messages or markers');
  assert.deepEqual(errors, []);
});

it('past 99 unread messages a row shows 99+ and says so to screen readers', async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  const bob = server.api('bob');
  for (let i = 0; i < 120; i++) await bob.send('Alice & Bob', `unread ${i}`);
  await waitInPage(page, () => [...document.querySelectorAll('#conversations .conversation')]
    .some((row) => row.querySelector('.unread')?.textContent === '99+'), { message: 'a row counting 99+ unread' });
  const badge = page.locator('#conversations .conversation', { hasText: 'Alice & Bob' }).locator('.unread');
  assert.equal(await badge.textContent(), '99+');
  assert.equal(await badge.getAttribute('aria-label'), 'more than 99 unread');
  assert.deepEqual(errors, []);
});
