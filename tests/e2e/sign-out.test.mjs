// Signing out on a shared device: with a message still waiting, the demo asks first (declining
// keeps everything); confirming deletes the local data, and the next user who signs in sees none of
// the previous user's conversations or messages, on a wide screen neither (where the conversation
// pane stays on screen next to the list), and the unsent message never reaches the server.
// Signing out in one tab signs out the user's other tabs, which write nothing back.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, sendMessage, waitForConversations, waitForMessage, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Fails if the origin of `page` holds a database of Alice's. */
async function assertNoDatabaseOfAlice(page) {
  const databases = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  assert.ok(!databases.some((name) => name.includes('u-alice')), `no database of Alice's: ${databases.join(', ')}`);
}

it('after Alice signs out, Bob sees nothing of hers, and her unsent message is dropped', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const { context, page, errors } = await newPage(browser, t);
  const dialogs = [];
  let answer = false;
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    (answer ? dialog.accept() : dialog.dismiss()).catch(() => {});
  });

  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  await openConversation(page, 'Book club'); // Bob is not a member
  // A message arrives while Alice reads: announced to screen readers.
  const arrival = `Carol's arrival ${Date.now()}`;
  await server.api('carol').send('Book club', arrival);
  await waitForMessage(page, arrival);
  assert.match(await page.locator('#arrivals').textContent(), new RegExp(arrival));
  const aliceBodies = await page.$$eval('#messages .message .body', (nodes) => nodes.map((n) => n.textContent));
  await context.setOffline(true);
  const unsent = `Alice's unsent note ${Date.now()}`;
  await sendMessage(page, unsent);
  await waitForMessage(page, unsent, { status: 'pending' });

  // Declined: still signed in, the message still waiting.
  await page.locator('#sign-out').click();
  await waitInPage(page, (n) => n === 1, { arg: dialogs.length, message: 'the confirm dialog' });
  assert.match(dialogs[0], /1 message\(s\) are not sent yet/);
  assert.equal(await page.locator('#chat').isVisible(), true, 'declining keeps Alice signed in');
  await waitForMessage(page, unsent, { status: 'pending' });

  // Confirmed: signed out.
  answer = true;
  await page.locator('#sign-out').click();
  await waitInPage(page, () => !document.getElementById('sign-in').hidden && document.getElementById('chat').hidden,
    { message: 'the sign-in screen after confirming' });
  assert.equal(dialogs.length, 2);
  await context.setOffline(false);

  await page.locator('#sign-in .demo-user', { hasText: 'Bob Chen' }).click();
  await waitForConversations(page);
  const titles = await page.$$eval('#conversations .conversation-title', (nodes) => nodes.map((n) => n.textContent));
  assert.deepEqual([...titles].sort(), ['Alice & Bob', 'General', 'Weekend hiking'], 'Bob\'s conversations only');
  assert.equal(await page.locator('#account-name').textContent(), 'Bob Chen');

  // Nothing of Alice's open conversation is left on screen (the wide layout shows both panes).
  const view = await page.evaluate(() => ({
    title: document.getElementById('conversation-title').textContent,
    members: document.getElementById('conversation-members').textContent,
    messages: [...document.querySelectorAll('#messages .message .body')].map((n) => n.textContent),
    composerHidden: document.getElementById('composer').hidden,
    text: document.body.innerText,
  }));
  assert.equal(view.title, 'Pick a conversation');
  assert.equal(view.members, '');
  assert.deepEqual(view.messages, []);
  assert.equal(view.composerHidden, true, 'no composer without an open conversation');
  assert.ok(!view.text.includes('Book club'), 'the page does not mention Book club');
  assert.ok(!view.text.includes(unsent), 'the page does not show Alice\'s unsent message');
  assert.equal(await page.locator('#arrivals').textContent(), '', 'nor what arrived for her');
  const leaked = aliceBodies.filter((body) => view.messages.includes(body));
  assert.deepEqual(leaked, []);

  // Alice's local data is gone; her unsent message never reached the server.
  await assertNoDatabaseOfAlice(page);
  const onServer = await server.api('alice').messages('Book club', { limit: 20 });
  assert.ok(!onServer.some((m) => m.body === unsent), 'the unsent message was dropped');
  assert.deepEqual(errors, []);
});

it('signing out while the conversation list renders leaves nothing of the user on the page', async (t) => {
  const server = await startServer({ test: t, seedMessages: 50 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice');
  // The next reads of the list answer late, after the sign-out (as on a slow device): each reads
  // the user's conversations, then waits a second before handing them over.
  await page.evaluate(async (url) => {
    const { BackgroundSyncManager } = await import(url);
    const read = BackgroundSyncManager.prototype.listConversations;
    BackgroundSyncManager.prototype.listConversations = async function listConversations() {
      const conversations = await read.call(this);
      window.lateLists = (window.lateLists ?? 0) + 1;
      await new Promise((done) => setTimeout(done, 1_000));
      return conversations;
    };
  }, new URL('/pkg/index.js', server.url).href);
  await server.api('bob').send('Alice & Bob', `news for Alice ${Date.now()}`);
  await page.locator('#conversations-refresh button[part="button"]').click();
  await waitInPage(page, () => window.lateLists > 0, { message: 'a list render under way' });

  await page.locator('#sign-out').click();
  await waitInPage(page, () => !document.getElementById('sign-in').hidden, { message: 'the sign-in screen' });
  await page.waitForTimeout(1_500); // the late read answers meanwhile
  const left = await page.evaluate(() => ({
    rows: document.querySelectorAll('#conversations > *').length,
    notices: [...document.querySelectorAll('#banner .notice')].map((notice) => notice.textContent),
  }));
  assert.deepEqual(left, { rows: 0, notices: [] }, 'no conversation row and no notice of Alice\'s');
  assert.deepEqual(errors, []);
});

it('signing out in one tab signs out the others, and none writes the data back', async (t) => {
  const server = await startServer({ test: t, seedMessages: 50 });
  const { context, page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  const other = await context.newPage();
  const otherErrors = collectPageErrors(other);
  await openDemo(other, server.url, 'alice', { query: '?periodicSyncMs=1000', idle: false });

  await page.locator('#sign-out').click();
  await waitInPage(other, () => !document.getElementById('sign-in').hidden,
    { message: 'the other tab on the sign-in screen' });
  assert.deepEqual(await other.$$eval('#banner .notice span', (spans) => spans.map((s) => s.textContent)),
    ['You signed out in another tab.']);
  assert.equal(await other.locator('#conversations > *').count(), 0, 'no conversation row left');
  // The other tab synced every second; had it gone on, it would have written Alice's data into
  // a new database.
  await page.waitForTimeout(3_000);
  await assertNoDatabaseOfAlice(page);
  assert.deepEqual([...errors, ...otherErrors], []);
});
