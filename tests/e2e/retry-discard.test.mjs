// Failed messages in the demo PWA: a message that could not be delivered in time shows as failed
// with Retry and Discard; Retry delivers it exactly once, Discard drops it for good (the server
// never gets it, a reload does not bring it back).
//
// Failure comes from the manager's own rule, shortened for the test: an undelivered message older
// than `optimisticTtlMs` (7 days by default) turns failed at the next maintenance
// (`maintenanceIntervalMs`, daily by default), and one that stays failed that long is dropped at
// the one after. The demo takes both as query parameters.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, pollUntil, sendMessage, shownMessages, waitForMessage, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The Retry or Discard button of the message whose body is `body`. */
function action(page, body, name) {
  return page.locator('#messages .message', { has: page.locator('.body', { hasText: body }) })
    .locator(`button.${name}`);
}

it('a failed message can be retried (delivered once) or discarded (never delivered)', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const alice = server.api('alice');
  const { context, page, errors } = await newPage(browser, t);

  await openDemo(page, server.url, 'alice', { query: '?optimisticTtlMs=1000&maintenanceIntervalMs=5000' });
  await openConversation(page, 'Alice & Bob');
  await context.setOffline(true);
  const stamp = Date.now();
  const retried = `retry me ${stamp}`;
  const discarded = `discard me ${stamp}`;
  await sendMessage(page, retried);
  await sendMessage(page, discarded);
  await waitForMessage(page, retried, { status: 'pending' });

  // Still offline after the lifetime: the next maintenance fails both.
  for (const body of [retried, discarded]) {
    await waitForMessage(page, body, { status: 'failed', timeout: 20_000 });
  }
  await waitInPage(page, () => document.getElementById('status-text').textContent.includes('2 not sent'),
    { message: 'the status line to count 2 not sent' });
  const failure = await page.locator('#messages .message[data-status="failed"] .failure').first().textContent();
  assert.match(failure, /not delivered/i, 'the failure says why');

  // Back online, at once (the maintenance after next would drop them): discard one, retry the other.
  await context.setOffline(false);
  await action(page, discarded, 'discard').click();
  await action(page, retried, 'retry').dblclick(); // in haste: one retry, no error
  await waitForMessage(page, retried, { status: 'sent' });
  assert.equal(await page.locator('#banner .notice[data-key="send"]').count(), 0, 'no error notice');
  await waitInPage(page, (body) => ![...document.querySelectorAll('#messages .body')]
    .some((b) => b.textContent === body), { arg: discarded, message: 'the discarded message to disappear' });

  const onServer = await pollUntil(() => alice.messages('Alice & Bob', { limit: 20 }),
    (messages) => messages.some((m) => m.body === retried), { message: 'the retried message on the server' });
  assert.equal(onServer.filter((m) => m.body === retried).length, 1, 'the retried message is on the server once');
  assert.equal(onServer.filter((m) => m.body === discarded).length, 0, 'the discarded message never reached it');

  // A reload shows the same: the retried one sent, the discarded one gone.
  await page.reload();
  await openConversation(page, 'Alice & Bob');
  await waitForMessage(page, retried, { status: 'sent' });
  const shown = (await shownMessages(page)).map((m) => m.body);
  assert.ok(!shown.includes(discarded), 'the discarded message does not come back');
  const later = await alice.messages('Alice & Bob', { limit: 20 });
  assert.equal(later.filter((m) => m.body === discarded).length, 0, 'still not on the server');
  assert.deepEqual(errors, [], 'no page errors');
});

it('a message dropped undelivered says for how long it was tried: the lifetime the app set', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const { context, page, errors } = await newPage(browser, t);
  // Undelivered for 2 s: failed; failed for 2 s more: dropped (at the maintenance after).
  await openDemo(page, server.url, 'alice', { query: '?optimisticTtlMs=2000&maintenanceIntervalMs=2000' });
  await openConversation(page, 'Alice & Bob');
  await context.setOffline(true);
  const body = `never delivered ${Date.now()}`;
  await sendMessage(page, body);
  const notice = await waitInPage(page, () => [...document.querySelectorAll('#banner .notice')]
    .find((n) => n.dataset.key.startsWith('expired:'))?.textContent,
  { message: 'the notice of the dropped message', timeout: 30_000 });
  assert.match(notice, /could not be delivered for 2 seconds and was dropped/);
  assert.ok(notice.includes(body), 'it quotes the message');
  assert.deepEqual(errors, []);
});
