// What arrives while the user is on the page changes the rows it concerns and leaves the rest as
// they are: the row the keyboard is on keeps the focus, text selected in a message stays selected,
// and a failed message's Retry keeps the focus while other messages arrive. Signing out with that
// failed message asks first, as it would lose it.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, pollUntil, previewOf, sendMessage, waitForMessage, waitForNewestAtBottom, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The focused element's description: its tag, class and `data-id`, or `body`. */
const focused = (page) => page.evaluate(() => {
  const element = document.activeElement;
  return element === document.body ? 'body' : `${element.tagName.toLowerCase()}.${element.className}#${element.dataset.id ?? ''}`;
});

it('the row the keyboard is on keeps the focus when a message moves it to the top', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  const bob = server.api('bob');
  const bobs = new Set((await bob.conversations()).map((conversation) => conversation.title));
  const titles = await page.$$eval('#conversations .conversation-title', (spans) => spans.map((s) => s.textContent));
  // The lowest row Bob can write to, and a row above it that nothing changes.
  const moved = titles.findLast((title) => bobs.has(title));
  const still = titles[titles.indexOf(moved) - 1];
  assert.ok(titles.indexOf(moved) > 0, `${moved} is not the top row (${titles})`);
  const row = page.locator('#conversations .conversation', { hasText: moved });
  const id = await row.getAttribute('data-id');
  await row.focus();
  assert.equal(await focused(page), `button.conversation#${id}`);
  await page.evaluate((still) => {
    window.stillRow = [...document.querySelectorAll('#conversations li')].find((li) => li.textContent.includes(still));
  }, still);

  const text = `moves it up ${Date.now()}`;
  await bob.send(moved, text);
  await waitInPage(page, (text) => document.querySelector('#conversations .conversation-preview')
    ?.textContent.endsWith(text), { arg: text, message: 'the row at the top with Bob\'s message' });

  assert.equal(await focused(page), `button.conversation#${id}`, `the focus stays on ${moved}`);
  assert.ok(await page.evaluate(() => window.stillRow.isConnected), 'a row nothing changed in is the same element');
  // Enter opens the row the focus is on.
  await page.keyboard.press('Enter');
  await waitInPage(page, (moved) => document.getElementById('conversation-title').textContent === moved,
    { arg: moved, message: `${moved} open` });
  assert.equal(await previewOf(page, moved), `Bob Chen: ${text}`);
  assert.deepEqual(errors, []);
});

it('text selected in a message stays selected while new messages arrive', async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const bob = server.api('bob');
  const quoted = `copy this part ${Date.now()}`;
  await bob.send('Alice & Bob', quoted);
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  await openConversation(page, 'Alice & Bob');
  await waitForMessage(page, quoted);
  await page.evaluate((quoted) => {
    const body = [...document.querySelectorAll('#messages .message .body')].find((b) => b.textContent === quoted);
    getSelection().selectAllChildren(body);
  }, quoted);
  assert.equal(await page.evaluate(() => getSelection().toString()), quoted);

  const next = `arrives meanwhile ${Date.now()}`;
  await bob.send('Alice & Bob', next);
  await waitForNewestAtBottom(page, next);
  assert.equal(await page.evaluate(() => getSelection().toString()), quoted, 'the selection is kept');
  assert.deepEqual(errors, []);
});

it('a failed message\'s Retry keeps the focus while other messages arrive, and signing out asks first', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  await openConversation(page, 'Alice & Bob');
  // The server refuses the send for good (as it does a reused client message id): it fails.
  await page.route(/\/v1\/conversations\/[^/]+\/messages$/, (route) => (route.request().method() === 'POST'
    ? route.fulfill({
      status: 409,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'client_message_id_conflict', message: 'refused by the test' } }),
    })
    : route.continue()));
  const refused = `refused ${Date.now()}`;
  await sendMessage(page, refused);
  await waitForMessage(page, refused, { status: 'failed' });
  await page.locator('#messages .message[data-status="failed"] button.retry').focus();
  assert.equal(await focused(page), 'button.retry#');

  const next = `arrives meanwhile ${Date.now()}`;
  await server.api('bob').send('Alice & Bob', next);
  await waitForMessage(page, next);
  assert.equal(await focused(page), 'button.retry#', 'the focus stays on Retry');

  // Signing out would lose the failed message: the demo asks first.
  const dialogs = [];
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss();
  });
  await page.locator('#sign-out').click();
  await pollUntil(() => dialogs.length, (count) => count > 0, { message: 'a confirm dialog' });
  assert.match(dialogs[0], /^1 message\(s\) are not sent yet/);
  assert.equal(await page.locator('#chat').isVisible(), true, 'declining keeps Alice signed in');
  assert.deepEqual(errors, []);
});

it('a key two rows share leaves no stray row behind, however often the list is patched', async (t) => {
  // (A day a message not sent yet was composed on can start twice in a conversation.)
  const server = await startServer({ test: t, seedMessages: 0 });
  const { page, errors } = await newPage(browser, t);
  await page.goto(server.url);
  const rounds = await page.evaluate(async () => {
    const { el, patchChildren } = await import('./render.js');
    const list = document.createElement('ul');
    const items = () => ['a', 'b', 'a'].map((key, i) => el('li', { dataset: { key }, textContent: `${key}${i}` }));
    const shown = [];
    for (let round = 0; round < 3; round += 1) {
      patchChildren(list, items());
      shown.push([...list.children].map((li) => li.textContent).join(' '));
    }
    return shown;
  });
  assert.deepEqual(rounds, ['a0 b1 a2', 'a0 b1 a2', 'a0 b1 a2']);
  assert.deepEqual(errors, []);
});
