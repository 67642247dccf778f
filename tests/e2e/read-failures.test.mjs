// A read of the local database that fails shows a notice ("Could not read …"); the notice goes
// once a later read of the same kind succeeds (the failure was passing), without the user having
// to dismiss it. The test makes the page's IndexedDB refuse the read transactions of the
// conversation list and of a conversation's messages for a while.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { newPage, openConversation, openDemo, waitForMessage, waitInPage } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The notices shown, by key. */
function notices(page) {
  return page.$$eval('#banner .notice', (items) => Object.fromEntries(items.map((n) => [n.dataset.key, n.textContent])));
}

it('"Could not read …" notices go once the same read succeeds again', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const bob = server.api('bob');
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  await openConversation(page, 'General');

  // The list's and the messages' read transactions fail (the sync's writes go on).
  await page.evaluate(() => {
    const transaction = IDBDatabase.prototype.transaction;
    globalThis.failReads = true;
    IDBDatabase.prototype.transaction = function (names, mode, ...rest) {
      const stores = [].concat(names);
      const read = (mode ?? 'readonly') === 'readonly';
      if (globalThis.failReads && read && stores.includes('messages') &&
        (stores.includes('conversations') || stores.length === 2)) {
        throw new DOMException('injected read failure', 'UnknownError');
      }
      return transaction.call(this, names, mode, ...rest);
    };
  });
  await bob.send('General', 'while reads fail');
  await waitInPage(page, () => {
    const keys = [...document.querySelectorAll('#banner .notice')].map((n) => n.dataset.key);
    return keys.includes('list') && keys.includes('messages');
  }, { message: 'both "Could not read …" notices', describe: () => document.getElementById('banner').textContent });
  assert.match((await notices(page)).list, /Could not read the conversations/);
  assert.match((await notices(page)).messages, /Could not read the messages/);

  // Reads work again: the next change brings the message, and the notices go.
  await page.evaluate(() => { globalThis.failReads = false; });
  await bob.send('General', 'reads work again');
  await waitForMessage(page, 'reads work again');
  await waitInPage(page, () => document.querySelectorAll('#banner .notice').length === 0 &&
    document.getElementById('banner').hidden,
  { message: 'no notice left', describe: () => document.getElementById('banner').textContent });
  assert.deepEqual(errors, []);
});
