// Offline composition in the demo PWA: messages written while the browser is offline show at once
// as pending, the status line says Offline, and when the network returns each is delivered exactly
// once, in the order written, and its mark turns to sent.

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

it('messages composed offline are pending, then delivered exactly once and in order', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const alice = server.api('alice');
  const { context, page, errors } = await newPage(browser, t);

  await openDemo(page, server.url, 'alice');
  await openConversation(page, 'Alice & Bob');
  const before = await alice.messages('Alice & Bob', { limit: 20 });

  await context.setOffline(true);
  await waitInPage(page, () => document.getElementById('status').dataset.online === 'false' &&
    document.getElementById('status-text').textContent.startsWith('Offline'),
  { message: '#status to say Offline with data-online="false"' });

  const bodies = ['offline one', 'offline two', 'offline three'].map((b) => `${b} ${Date.now()}`);
  for (const body of bodies) {
    await sendMessage(page, body);
    await waitForMessage(page, body, { status: 'pending' });
  }
  const pending = (await shownMessages(page)).slice(-3);
  assert.deepEqual(pending.map((m) => [m.body, m.status, m.mark]),
    bodies.map((body) => [body, 'pending', 'Sending…']), 'the three show in order, pending');
  await waitInPage(page, () => document.getElementById('status-text').textContent === 'Offline · 3 waiting to send',
    { message: 'the status line "Offline · 3 waiting to send"' });
  // Nothing reached the server while offline.
  const whileOffline = await alice.messages('Alice & Bob', { limit: 20 });
  assert.deepEqual(whileOffline.map((m) => m.id), before.map((m) => m.id), 'the server got nothing while offline');

  await context.setOffline(false);
  for (const body of bodies) await waitForMessage(page, body, { status: 'sent' });

  // On the server: each exactly once, in the order written, with the client ids the page shows.
  const shown = (await shownMessages(page)).slice(-3);
  assert.deepEqual(shown.map((m) => [m.body, m.status, m.mark]),
    bodies.map((body) => [body, 'sent', 'Sent']), 'the marks turned to sent, order kept');
  const onServer = await pollUntil(() => alice.messages('Alice & Bob', { limit: 20 }),
    (messages) => bodies.every((body) => messages.some((m) => m.body === body)),
    { message: 'the three messages on the server' });
  const ours = onServer.filter((m) => bodies.includes(m.body));
  assert.deepEqual(ours.map((m) => m.body), bodies, 'each once, in the order written');
  assert.deepEqual(ours.map((m) => m.clientMessageId), shown.map((m) => m.clientMessageId),
    'the client message ids the page shows');
  assert.ok(ours.every((m) => m.senderId === 'u-alice'));
  assert.ok(ours[0].serverTs < ours[1].serverTs && ours[1].serverTs < ours[2].serverTs);

  // Give a late duplicate delivery (the page and the service worker's `sync` both deliver) a chance
  // to show, then check again: still exactly once.
  await waitInPage(page, () => !document.getElementById('status-text').textContent.includes('waiting'),
    { message: 'no message waiting to send' });
  const later = await alice.messages('Alice & Bob', { limit: 20 });
  assert.equal(later.filter((m) => bodies.includes(m.body)).length, 3, 'no duplicates');
  assert.equal((await shownMessages(page)).filter((m) => bodies.includes(m.body)).length, 3,
    'the page shows each once');
  assert.deepEqual(errors, []);
});

it('a message sent or delivered while the view reloads its page stays on screen as it is', async (t) => {
  const server = await startServer({ test: t, seedMessages: 100 });
  const { context, page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice');
  await openConversation(page, 'General');
  await context.setOffline(true); // nothing is delivered: only the page's own reads change the view
  // From now on every message read answers 800 ms late (a slow device), and the page records each
  // message body that leaves the view once shown, and each that goes from sent back to pending.
  await page.evaluate(async (url) => {
    const { BackgroundSyncManager } = await import(url);
    const read = BackgroundSyncManager.prototype.listMessages;
    BackgroundSyncManager.prototype.listMessages = async function listMessages(...args) {
      const messages = await read.apply(this, args);
      await new Promise((done) => setTimeout(done, 800));
      return messages;
    };
    window.vanished = [];
    window.unsent = [];
    let shown = new Map();
    new MutationObserver(() => {
      const now = new Map([...document.querySelectorAll('#messages .message')]
        .map((m) => [m.querySelector('.body').textContent, m.dataset.status]));
      window.vanished.push(...[...shown.keys()].filter((body) => !now.has(body)));
      window.unsent.push(...[...now].filter(([body, status]) => status === 'pending' && shown.get(body) === 'sent')
        .map(([body]) => body));
      shown = now;
    }).observe(document.getElementById('messages'), { childList: true, subtree: true, attributes: true });
  }, new URL('/pkg/index.js', server.url).href);

  const bodies = [`first while reloading ${Date.now()}`, `second while reloading ${Date.now()}`];
  for (const body of bodies) await sendMessage(page, body);
  await page.waitForTimeout(2_500); // the reloads the sends started answer meanwhile
  assert.deepEqual(await page.evaluate(() => window.vanished), [], 'no message left the view');
  const shown = (await shownMessages(page)).filter((m) => bodies.includes(m.body));
  assert.deepEqual(shown.map((m) => [m.body, m.status]), bodies.map((body) => [body, 'pending']));

  // Delivered while reloads that read them pending are still running: they stay sent.
  await context.setOffline(false);
  for (const body of bodies) await waitForMessage(page, body, { status: 'sent' });
  await page.waitForTimeout(2_500);
  assert.deepEqual(await page.evaluate(() => ({ vanished: window.vanished, unsent: window.unsent })),
    { vanished: [], unsent: [] }, 'no message left the view or went back to pending');
  assert.deepEqual(errors, []);
});
