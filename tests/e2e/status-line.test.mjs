// The demo's status line (top bar): screen readers hear its state and counts when they change,
// not the time since the last sync as the clock moves it on; it says a sync failed when one did,
// not when a load of older messages did (which the conversation says).

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openDemo, openKeepingHistory, shownMessages, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The status line's live regions (`role="status"` or `aria-live` other than off, itself or
 * inside), with their texts. */
function liveRegions(page) {
  return page.evaluate(() => {
    const box = document.getElementById('status');
    const live = (el) => el.getAttribute('role') === 'status' ||
      (el.hasAttribute('aria-live') && el.getAttribute('aria-live') !== 'off');
    return [box, ...box.querySelectorAll('*')].filter(live).map((el) => el.textContent);
  });
}

it('the clock moving on changes the time shown, and no live region', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  const { page, errors } = await newPage(browser, t);
  await page.clock.install();
  await openDemo(page, server.url, 'alice');
  await waitInPage(page, () => /^Synced just now/.test(document.getElementById('status').textContent.trim()),
    { message: 'the status line saying "Synced just now"' });
  const regions = await liveRegions(page);
  assert.ok(regions.length > 0, 'the status line has a live region');
  // Every rewrite of a live region from now on (screen readers read out rewrites).
  await page.evaluate(() => {
    globalThis.liveRewrites = [];
    const box = document.getElementById('status');
    const live = (node) => {
      const el = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
      return el?.closest('[role="status"], [aria-live]:not([aria-live="off"])') ?? null;
    };
    new MutationObserver((records) => {
      for (const record of records) {
        if (live(record.target)) globalThis.liveRewrites.push(live(record.target).textContent);
      }
    }).observe(box, { subtree: true, childList: true, characterData: true });
  });

  await page.clock.fastForward(60_000); // (the status line is redrawn every 15 s)
  await waitInPage(page, () => /^Synced 1 min ago/.test(document.getElementById('status').textContent.trim()),
    { message: 'the status line saying "Synced 1 min ago"', describe: () => document.getElementById('status').textContent });
  assert.deepEqual(await page.evaluate(() => globalThis.liveRewrites), [], 'no live region was rewritten');
  assert.deepEqual(await liveRegions(page), regions);
  assert.deepEqual(errors, []);
});

it('a failed sync shows in the status line with its error, until a sync succeeds', async (t) => {
  const server = await startServer({ test: t, seedMessages: 20 });
  // (No service worker: the test answers requests with page.route, which a worker would bypass.)
  const { page, errors } = await newPage(browser, t, { serviceWorkers: 'block' });
  await openDemo(page, server.url, 'alice');

  // The server refuses the sync feed (an error no retry mends: the sync ends failed, not waiting).
  let refusing = true;
  await page.route((url) => url.pathname === '/v1/sync', (route) => (refusing
    ? route.fulfill({
      status: 403,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'forbidden', message: 'injected fault: the feed is refused' } }),
    })
    : route.continue()));
  const pull = () => page.locator('#conversations-refresh').evaluate((element) => element.refresh());
  await pull();
  const text = () => page.locator('#status-text').textContent();
  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle' &&
    document.getElementById('status-text').textContent.includes('injected fault: the feed is refused'),
  { message: 'the status line to tell the sync failed, and why' });
  assert.match(await text(), /^Sync failed: /);

  refusing = false;
  await pull();
  await waitInPage(page, () => /^Synced just now/.test(document.getElementById('status-text').textContent),
    { message: 'the status line to say "Synced just now" after a sync that worked' });
  assert.doesNotMatch(await text(), /failed/);
  assert.deepEqual(errors, []);
});

it('a failed load of older messages does not say the sync failed', async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const bob = server.api('bob');
  for (let n = 1; n <= 20; n += 1) await bob.send('General', `Old ${n}`);
  const general = await bob.conversationId('General');
  // (No service worker: the test answers requests with page.route, which a worker would bypass.)
  const { page, errors } = await newPage(browser, t, { serviceWorkers: 'block' });
  // Maintenance keeps none of General's messages: they load from the server when it opens.
  await openKeepingHistory(page, server.url, 'alice', general, 0);

  // The server fails General's history requests; the sync feed works.
  await page.route((url) => url.pathname === `/v1/conversations/${general}/messages`, (route) => (
    route.request().method() === 'GET'
      ? route.fulfill({
        status: 500,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'internal', message: 'injected fault: no history' } }),
      })
      : route.continue()));
  await page.locator('#conversations .conversation', {
    has: page.locator('.conversation-title', { hasText: /^General$/ }),
  }).click();
  // The manager's `lastError` holds the failure (read through the pull-to-refresh element).
  await waitInPage(page, () => document.getElementById('conversations-refresh').manager.getSyncStatus().lastError !== null &&
    document.getElementById('status').dataset.phase === 'idle' &&
    /^Could not load older messages/.test(document.getElementById('history-state').textContent),
  { message: 'General open, saying its messages could not load, and the manager idle with the error' });
  assert.equal((await shownMessages(page)).length, 0);
  assert.match(await page.locator('#status-text').textContent(), /^Synced /, 'the last sync worked');
  assert.deepEqual(errors, []);
});
