// The demo's controls do what a person means, also when used in haste: one sign-in per click
// sequence, one message per text, no error from an empty pane, the reading place kept while a
// message is delivered, and screen readers told what arrives (not the whole list).

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, shownMessages, waitForMessage, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

it('two sign-in clicks in a row start one manager, for the first user clicked', async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const { page, errors } = await newPage(browser, t);
  const tokens = new Set();
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.startsWith('/v1/')) tokens.add(request.headers().authorization);
  });
  await page.goto(server.url);
  await waitInPage(page, () => document.querySelector('.demo-user') !== null, { message: 'the sign-in screen' });
  await page.evaluate(() => {
    const buttons = [...document.querySelectorAll('.demo-user')];
    buttons.find((button) => button.textContent === 'Alice Martin').click();
    buttons.find((button) => button.textContent === 'Bob Chen').click();
  });
  await waitInPage(page, () => document.querySelector('#conversations .conversation') !== null,
    { message: 'the conversation list' });
  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle',
    { message: 'the first sync done' });
  assert.deepEqual([...tokens], ['Bearer demo-alice'], 'only Alice\'s manager talks to the server');
  assert.match(await page.locator('#account').textContent(), /Alice Martin/);
  assert.deepEqual(errors, []);
});

it('a conversation clicked again once open stays as it is, its unread messages under their divider', async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  const bob = server.api('bob');
  for (const n of [1, 2, 3]) await bob.send('General', `Unread ${n}`);
  await waitInPage(page, () => [...document.querySelectorAll('#conversations .conversation')]
    .some((row) => row.querySelector('.conversation-preview')?.textContent === 'Bob Chen: Unread 3'),
  { message: 'General\'s row to show Bob\'s last message' });
  const row = page.locator('#conversations .conversation', { hasText: 'General' });
  await row.click();
  await waitForMessage(page, 'Unread 3');
  await row.click(); // a slow double click, or a second tap
  await page.waitForTimeout(500); // (a second opening would be under way)
  assert.equal(await page.locator('#messages .unread-divider').textContent(), '3 unread messages');
  assert.deepEqual(errors, []);
});

it('Enter pressed twice before the first send is stored sends the message once', async (t) => {
  const server = await startServer({ test: t });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice');
  await openConversation(page, 'General');
  const text = `pressed twice ${Date.now()}`;
  await page.locator('#composer-text').fill(text);
  await page.locator('#composer-text').evaluate((input) => {
    for (let i = 0; i < 2; i += 1) {
      input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
    }
  });
  await waitForMessage(page, text, { status: 'sent' });
  const stored = (await server.api('alice').messages('General')).filter((m) => m.body === text);
  assert.equal(stored.length, 1, 'the server holds it once');
  assert.equal((await shownMessages(page)).filter((m) => m.body === text).length, 1);
  assert.equal(await page.locator('#composer-text').inputValue(), '');
  assert.deepEqual(errors, []);
});

it('the refresh button of the empty conversation pane syncs without an error', async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice');
  const synced = page.locator('#messages-refresh').evaluate((element) =>
    new Promise((resolve) => element.addEventListener('sync-end', resolve, { once: true })));
  await page.locator('#messages-refresh').getByRole('button', { name: 'Refresh' }).click();
  await synced;
  // Whatever follows the sync runs in the same task as the event; one more turn to be sure.
  await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 200)));
  assert.deepEqual(await page.locator('#banner .notice').allTextContents(), []);
  assert.deepEqual(errors, []);
});

it('a message delivered while the user reads older ones leaves the view where it is', async (t) => {
  const server = await startServer({ test: t });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  t.after(() => context.close());
  const page = await context.newPage();
  await openDemo(page, server.url, 'alice');
  await openConversation(page, 'General');
  await context.setOffline(true);
  const text = `delivered later ${Date.now()}`;
  await page.locator('#composer-text').fill(text);
  await page.locator('#composer-text').press('Enter');
  await waitForMessage(page, text, { status: 'pending' });
  // Up among the older messages (not so far up that more load).
  const place = await page.locator('#messages-refresh').evaluate((scroller) => {
    scroller.scrollTop = 300;
    return scroller.scrollTop;
  });
  assert.equal(place, 300);
  await context.setOffline(false);
  await waitForMessage(page, text, { status: 'sent' });
  assert.equal(await page.locator('#messages-refresh').evaluate((scroller) => scroller.scrollTop), place);
});

it('a message from another member is announced alone, not the whole list', async (t) => {
  const server = await startServer({ test: t });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  await openConversation(page, 'General');
  assert.equal(await page.locator('#messages').getAttribute('aria-live'), null, 'the list is no live region');
  assert.equal(await page.locator('#arrivals').textContent(), '', 'opening announces nothing');
  const text = `for the screen reader ${Date.now()}`;
  await server.api('bob').send('General', text);
  await waitInPage(page, (text) => document.getElementById('arrivals').textContent === `Bob Chen: ${text}`,
    { arg: text, message: 'Bob\'s message announced' });
  assert.equal(await page.locator('#arrivals').getAttribute('aria-live'), 'polite');
  assert.deepEqual(errors, []);
});
