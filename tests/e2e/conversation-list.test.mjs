// The conversation list reads each row's newest messages and read markers once, and again only
// for the conversations an event says changed: a message in one conversation re-reads that row
// alone (with many conversations, re-reading every row on every change made each render slow),
// and its preview and unread count follow. Past 99 unread a row shows 99+: the count looks at the
// newest 100 messages only, and its label says no more than that. The list shows at once on
// opening, before its rows' messages are read (with many conversations that takes long).

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openDemo, previewOf, unreadOf, waitForConversations, waitForUnread, waitInPage,
} from './support/demo.mjs';

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

it('the list shows its conversations before their messages are read', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const alice = server.api('alice');
  const general = await alice.conversationId('General');
  const titles = (await alice.conversations()).map((conversation) => conversation.title).sort();
  const { context, page, errors } = await newPage(browser, t);
  // The package's entry, patched as it loads: General's messages are read only once the test
  // lets them.
  await context.route('**/pkg/index.js', async (route) => {
    const response = await route.fetch();
    const hold = `
import { BackgroundSyncManager as Held } from './chat_sync.js';
const read = Held.prototype.listMessages;
const released = new Promise((resolve) => { window.releaseReads = resolve; });
Held.prototype.listMessages = async function (id, ...rest) {
  if (id === ${JSON.stringify(general)}) await released;
  return read.call(this, id, ...rest);
};`;
    await route.fulfill({ response, body: `${await response.text()}${hold}` });
  });
  await openDemo(page, server.url, 'alice', { idle: false });
  await waitInPage(page, (count) => document.querySelectorAll('#conversations .conversation').length === count,
    { arg: titles.length, message: `${titles.length} conversation rows while General's messages are not read` });
  const shown = await page.locator('#conversations .conversation-title').allTextContents();
  assert.deepEqual(shown.sort(), titles);
  assert.equal(await page.locator('#conversations').getAttribute('aria-busy'), 'true');
  assert.equal((await previewOf(page, 'General')).trim(), '', 'no preview before the read');

  await page.evaluate(() => window.releaseReads());
  await waitForConversations(page);
  const [newest] = (await alice.messages('General', { limit: 1 })).slice(-1);
  const sender = newest.senderId === 'u-alice' ? 'You' : (await alice.conversations())
    .flatMap((conversation) => conversation.members).find((member) => member.id === newest.senderId).displayName;
  assert.equal(await previewOf(page, 'General'), `${sender}: ${newest.body}`);
  assert.equal(await page.locator('#conversations').getAttribute('aria-busy'), 'false');
  assert.deepEqual(errors, []);
});
