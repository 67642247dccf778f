// Keyboard focus in the demo PWA stays where a keyboard or screen reader user expects it when the
// element that had it goes away: Back returns it to the conversation that was open, and Retry or
// Discard on a failed message (whose buttons go with the failure) hands it to the composer.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { newPage, openConversation, openDemo, sendMessage, waitForMessage, waitInPage } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** What has the focus: `{ id, title }` (`title`: a conversation row's). */
function focused(page) {
  return page.evaluate(() => ({
    id: document.activeElement?.id ?? null,
    title: document.activeElement?.closest('button.conversation')
      ?.querySelector('.conversation-title')?.textContent ?? null,
  }));
}

/** Waits until the open finished: the composer has the focus. */
function composerFocused(page) {
  return waitInPage(page, () => document.activeElement?.id === 'composer-text',
    { message: 'the focus in the composer', describe: () => document.activeElement?.outerHTML.slice(0, 120) });
}

it('Back on a phone returns the focus to the conversation that was open', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const { page, errors } = await newPage(browser, t, { viewport: { width: 390, height: 800 } });
  await openDemo(page, server.url, 'alice');
  await openConversation(page, 'Book club');
  await composerFocused(page);
  await page.locator('#back').focus();
  await page.keyboard.press('Enter');
  await waitInPage(page, () => document.getElementById('chat').dataset.pane === 'list', { message: 'the list shown' });
  assert.deepEqual(await focused(page), { id: '', title: 'Book club' });
  assert.deepEqual(errors, []);
});

it('Retry and Discard of a failed message hand the focus to the composer', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const { context, page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?optimisticTtlMs=1000&maintenanceIntervalMs=3000' });
  await openConversation(page, 'Alice & Bob');
  await context.setOffline(true);
  await sendMessage(page, 'to retry');
  await sendMessage(page, 'to discard');
  for (const body of ['to retry', 'to discard']) await waitForMessage(page, body, { status: 'failed', timeout: 20_000 });
  await context.setOffline(false);

  const button = (body, name) => page.locator('#messages .message', { has: page.locator('.body', { hasText: body }) })
    .getByRole('button', { name });
  await button('to discard', 'Discard').focus();
  await page.keyboard.press('Enter');
  await waitInPage(page, () => ![...document.querySelectorAll('#messages .body')].some((b) => b.textContent === 'to discard'),
    { message: 'the discarded message gone' });
  await composerFocused(page);

  await button('to retry', 'Retry').focus();
  await page.keyboard.press('Enter');
  await waitForMessage(page, 'to retry', { status: 'sent' });
  await composerFocused(page);
  assert.deepEqual(errors, []);
});
