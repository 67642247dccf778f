// The server's database is replaced while the app runs (deleted and created again, as after a
// reset of the demo): the server refuses the app's cursor, and the app drops everything it
// cached of the old database, so the page shows the new database's conversations and messages
// only, and nothing of the old one lingers beside them; the conversation that was open closes.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, sendMessage, shownMessages, storedRecords, waitForMessage, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The notices the page shows, top to bottom (without their buttons). */
function notices(page) {
  return page.$$eval('#banner .notice span', (spans) => spans.map((span) => span.textContent));
}

/** The conversation list's titles, in order. */
function listedTitles(page) {
  return page.$$eval('#conversations .conversation .conversation-title', (rows) => rows.map((r) => r.textContent));
}

it('a replaced server database replaces what the page shows', async (t) => {
  const server = await startServer({ test: t, seedMessages: 200 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  await openConversation(page, 'Alice & Bob');
  const old = `in the old database ${Date.now()}`;
  await sendMessage(page, old);
  await waitForMessage(page, old, { status: 'sent' });
  const oldTitles = await listedTitles(page);

  await server.restart({ freshDatabase: true });
  const fresh = `in the new database ${Date.now()}`;
  await server.api('bob').send('Alice & Bob', fresh);
  const onServer = await server.api('alice').conversations();

  // The list holds the new database's conversations, each once (their ids are new: without the
  // reset, the old ones would stay beside them).
  await waitInPage(page, (fresh) => [...document.querySelectorAll('#conversations .conversation')]
    .some((row) => row.textContent.includes(fresh)), { arg: fresh, message: `a conversation row previewing "${fresh}"` });
  await waitInPage(page, (count) => document.getElementById('status').dataset.phase === 'idle' &&
    document.querySelectorAll('#conversations .conversation').length === count,
  { arg: onServer.length, message: `${onServer.length} conversation rows and an idle sync` });
  assert.deepEqual([...await listedTitles(page)].sort(), onServer.map((c) => c.title).sort());
  assert.equal(oldTitles.length, onServer.length, 'the same demo conversations, seeded again');
  // The conversation that was open is gone with the old database: the page says so, and offers
  // no composer that would write into it.
  assert.equal(await page.locator('#conversation-title').textContent(), 'Pick a conversation');
  assert.ok(await page.locator('#composer').isHidden(), 'no composer for a conversation that is gone');
  assert.deepEqual(await notices(page), ['The conversation you had open is no longer on the server.']);

  await openConversation(page, 'Alice & Bob');
  await waitForMessage(page, fresh);
  const shown = (await shownMessages(page)).map((m) => m.body);
  assert.ok(!shown.includes(old), 'the message only the old database had is gone');
  const messages = await server.api('alice').messages('Alice & Bob', { limit: 200 });
  assert.deepEqual(shown, messages.filter((m) => !m.deleted).map((m) => m.body).slice(-shown.length),
    'the newest messages of the new database, in order');
  assert.deepEqual(errors, []);
});

it('a message queued for a conversation the new database does not have is shown, and can be discarded', async (t) => {
  const server = await startServer({ test: t, seedMessages: 100 });
  const { context, page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice');
  await openConversation(page, 'Alice & Bob');
  await context.setOffline(true);
  const queued = `queued for the old database ${Date.now()}`;
  await sendMessage(page, queued);
  await waitForMessage(page, queued, { status: 'pending' });

  await server.restart({ freshDatabase: true });
  await context.setOffline(false);
  // The new database has no such conversation: the server refuses the message, and the page
  // offers to discard it (no conversation on the list holds it), beside the notice that the
  // conversation that was open is gone.
  await waitInPage(page, (queued) => {
    const notice = document.querySelector('#banner .notice[data-key="unsendable"]');
    return !document.getElementById('banner').hidden && notice?.textContent.includes(queued);
  }, { arg: queued, message: `a notice showing "${queued}"` });
  assert.deepEqual(await notices(page), [
    'The conversation you had open is no longer on the server.',
    `A message to a conversation that is no longer on the server cannot be sent: “${queued}”`,
  ]);
  assert.match(await page.locator('#status-text').textContent(), /1 not sent/);

  await page.locator('#banner button', { hasText: 'Discard' }).click();
  await waitInPage(page, () => !document.querySelector('#banner .notice[data-key="unsendable"]') &&
    !document.getElementById('status-text').textContent.includes('not sent'),
  { message: 'the notice gone and nothing left unsent' });
  assert.deepEqual(await notices(page), ['The conversation you had open is no longer on the server.']);
  assert.deepEqual(await storedRecords(page, server.url, 'alice', 'outbox'), [], 'the outbox is empty');
  const everywhere = await Promise.all((await server.api('bob').conversations()).map((c) =>
    server.api('bob').messages(c.title, { limit: 200 })));
  assert.ok(everywhere.flat().every((m) => m.body !== queued), 'the new database never got it');

  // Alice's notices were about her session: signing out takes them away.
  await page.locator('#sign-out').click();
  await waitInPage(page, () => !document.getElementById('sign-in').hidden, { message: 'the sign-in screen' });
  assert.deepEqual(await notices(page), []);
  assert.equal(await page.locator('#banner').isHidden(), true);
  assert.deepEqual(errors, []);
});

it('an app that re-reads only the conversations `change` names hears every conversation the reset emptied', async (t) => {
  const server = await startServer({ test: t, seedMessages: 50 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  const oldIds = (await server.api('alice').conversations()).map((c) => c.id);
  // A second manager in the page follows the demo's, which leads, as another tab of the app
  // would: it hears what the leader stored over the tab channel.
  const leads = await page.evaluate(async (url) => {
    const { BackgroundSyncManager } = await import(url);
    const follower = await BackgroundSyncManager.create({
      serverUrl: location.origin, token: 'demo-alice', userId: 'u-alice', logLevel: 'off',
    });
    window.changed = new Set();
    follower.addEventListener('change', (event) => {
      for (const id of event.detail.conversationIds) window.changed.add(id);
    });
    return follower.getSyncStatus().isLeader;
  }, new URL('/pkg/index.js', server.url).href);
  assert.equal(leads, false, 'the demo leads; the second manager follows');

  await server.restart({ freshDatabase: true });
  await waitInPage(page, (ids) => ids.every((id) => window.changed.has(id)), {
    arg: oldIds,
    message: `change events naming each conversation of the old database (${oldIds})`,
    describe: () => [...window.changed],
  });
  assert.deepEqual(errors, []);
});
