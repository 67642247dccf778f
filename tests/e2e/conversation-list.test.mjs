// The conversation list reads each row's newest messages and read markers once, and again only
// for the conversations an event says changed: a message in one conversation re-reads that row
// alone (with many conversations, re-reading every row on every change made each render slow),
// and its preview and unread count follow. Past 99 unread a row shows 99+: the count looks at the
// newest 100 messages only, and its label says no more than that.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { newPage, openDemo, previewOf, unreadOf, waitForUnread, waitInPage } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

it('a new message re-reads only its own conversation\'s row, whose preview and count follow', async (t) => {
  const server = await startServer({ test: t, seedMessages: 200 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  const general = await server.api('alice').conversationId('General');
  const unread = await unreadOf(page, 'General');
  // Records the conversation of every read a row makes from here on.
  await page.evaluate(async (url) => {
    const { BackgroundSyncManager } = await import(url);
    window.rowReads = [];
    for (const name of ['listMessages', 'listReadMarkers']) {
      const read = BackgroundSyncManager.prototype[name];
      BackgroundSyncManager.prototype[name] = function (id, ...rest) {
        window.rowReads.push(id);
        return read.call(this, id, ...rest);
      };
    }
  }, new URL('/pkg/index.js', server.url).href);

  const text = `only General changed ${Date.now()}`;
  await server.api('bob').send('General', text);
  await waitForUnread(page, 'General', unread + 1, 'General to count Bob\'s new message');
  assert.equal(await previewOf(page, 'General'), `Bob Chen: ${text}`);
  const reads = await page.evaluate(() => window.rowReads);
  assert.ok(reads.length > 0, 'the row was read again');
  assert.deepEqual([...new Set(reads)], [general], 'no other conversation was read again');
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
