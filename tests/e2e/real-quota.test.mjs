// A real small quota: Chromium's storage quota for the demo's origin is set to 4 MB (DevTools
// protocol `Storage.overrideQuotaForOrigin`, before the page creates its database: the override
// holds for databases created after it), and the server holds about three times more history
// than fits. The initial sync's writes fail with the browser's own `QuotaExceededError`; the
// engine evicts cached history (keeping the newest of each conversation) and goes on. The page
// shows the out-of-storage notice while writes fail and takes it away once they succeed again; the
// sync completes, the database holds fewer messages than the sync pulled but each conversation's
// newest, and a message sent afterwards is delivered exactly once.
// (How far usage may exceed the quota is the browser's affair: Chromium checks a write's size
// before it commits, and the database files grow after; the test reports the usage.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  openConversation, openDemo, sendMessage, storedRecords, waitForInitialSync, waitForMessage,
  waitForNewestAtBottom, waitInPage,
} from './support/demo.mjs';
import { consoleLines, finishedSyncChanges } from './support/traffic.mjs';

const MESSAGES = 20_000;
const QUOTA = 4 * 1024 * 1024;

const MB = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** What the page's database holds: messages per conversation, and the outbox. */
async function stored(page, url) {
  const messages = await storedRecords(page, url, 'alice', 'messages');
  const perConversation = {};
  for (const message of messages) {
    perConversation[message.conversationId] = (perConversation[message.conversationId] ?? 0) + 1;
  }
  return { messages: messages.length, perConversation, outbox: (await storedRecords(page, url, 'alice', 'outbox')).length };
}

test('with a real small quota the initial sync evicts history and completes, and sending still works', { timeout: 300_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: MESSAGES });
  const alice = server.api('alice');
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors = collectPageErrors(page);
  const logs = consoleLines(page);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: QUOTA });
  // Every notice the page shows, in order (they may come and go between two looks).
  await page.addInitScript(() => {
    window.noticesShown = [];
    new MutationObserver((records) => {
      for (const node of records.flatMap((record) => [...record.addedNodes])) {
        if (node.classList?.contains('notice')) window.noticesShown.push(`${node.dataset.key}: ${node.textContent}`);
      }
    }).observe(document, { childList: true, subtree: true });
  });

  await openDemo(page, server.url, 'alice', { idle: false });
  await waitForInitialSync(page);
  const chatLog = logs.list().filter((line) => line.startsWith('[chat-sync]'));
  t.diagnostic(chatLog.join(' | '));

  // The browser refused writes, and the app was told.
  assert.ok(chatLog.some((line) => /store write failed error=storage quota exceeded/.test(line)),
    'a write failed with the quota exceeded');
  const notices = await page.evaluate(() => window.noticesShown);
  assert.ok(notices.some((notice) => /^storage: .*out of storage/.test(notice)), `out-of-storage notice shown: ${notices}`);
  // Writes succeed again after the eviction: the notice goes by itself.
  await waitInPage(page, () => !document.querySelector('#banner .notice[data-key="storage"]'),
    { message: 'the out-of-storage notice to go once writes succeed' });

  // History was evicted: the database holds fewer messages than the sync pulled, and the newest
  // messages of every conversation.
  const { usage } = await page.evaluate(() => navigator.storage.estimate());
  const local = await stored(page, server.url);
  const pulled = finishedSyncChanges(chatLog).reduce((a, b) => a + b, 0);
  t.diagnostic(`usage ${MB(usage)} with a quota of ${MB(QUOTA)}; ${local.messages} of ${pulled} messages kept: ` +
    JSON.stringify(local.perConversation));
  assert.ok(local.messages < pulled, `history evicted: ${local.messages} messages kept of ${pulled} pulled`);
  const conversations = await alice.conversations();
  let onServer = 0;
  for (const conversation of conversations) {
    const [newest] = await alice.messages(conversation.id, { limit: 1 });
    if (!newest) continue;
    onServer += 1;
    assert.ok(local.perConversation[conversation.id] > 0, `${conversation.title} keeps messages`);
  }
  assert.ok(onServer > 0);
  // (Clicked by its id: a render of the sync's last change may still reorder the list.)
  const firstId = await page.locator('#conversations .conversation').first().getAttribute('data-id');
  const [newest] = await alice.messages(firstId, { limit: 1 });
  await page.locator(`#conversations .conversation[data-id="${firstId}"]`).click();
  await waitForNewestAtBottom(page, newest.body);

  // Sending still works: queued, delivered once, and the outbox empties.
  await openConversation(page, 'General');
  const text = `after the quota ${Date.now()}`;
  await sendMessage(page, text);
  await waitForMessage(page, text, { status: 'sent' });
  const general = await alice.conversationId('General');
  const copies = (await alice.messages(general, { limit: 50 })).filter((m) => m.body === text);
  assert.equal(copies.length, 1, 'delivered exactly once');
  assert.equal((await stored(page, server.url)).outbox, 0, 'the outbox is empty');
  assert.deepEqual(errors.map(String), [], 'no uncaught errors in the page');
});
