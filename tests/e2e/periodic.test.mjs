// Background sync without the user doing anything: with `?periodicSyncMs=2000` another user's
// message shows by itself; with the default interval (5 minutes) it shows as soon as the page comes
// back to the foreground (visibilitychange to visible), and not before.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openDemo, previewOf, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The `GET /v1/sync` requests the browser sends, with their times. */
function recordSyncRequests(context) {
  const seen = [];
  context.on('request', (request) => {
    if (new URL(request.url()).pathname === '/v1/sync') seen.push(Date.now());
  });
  return seen;
}

const previewShows = (page, title, text, message, timeout) => waitInPage(page, ({ title, text }) =>
  [...document.querySelectorAll('#conversations .conversation')].some((row) =>
    row.querySelector('.conversation-title').textContent === title &&
    row.querySelector('.conversation-preview').textContent === text),
{ arg: { title, text }, message, timeout });

it('with ?periodicSyncMs=2000 another user\'s message shows without any user action', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const { context, page, errors } = await newPage(browser, t);
  const syncs = recordSyncRequests(context);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=2000' });

  const body = `Carol, periodically ${Date.now()}`;
  const posted = Date.now();
  await server.api('carol').send('Project Phoenix', body);
  await previewShows(page, 'Project Phoenix', `Carol Díaz: ${body}`,
    'the Project Phoenix preview to show the new message by itself (periodic sync every 2 s)', 10_000);
  const shownAfter = Date.now() - posted;
  assert.ok(shownAfter < 8_000, `shown ${shownAfter} ms after the post`);

  // And it keeps going: two more syncs, about 2 s apart, still with nobody touching the page.
  const from = syncs.length;
  const deadline = Date.now() + 10_000;
  while (syncs.length < from + 2 && Date.now() < deadline) await page.waitForTimeout(250);
  const gaps = syncs.slice(Math.max(0, from - 1)).map((at, i, all) => (i ? at - all[i - 1] : null)).filter((gap) => gap != null);
  assert.ok(syncs.length >= from + 2, `periodic GET /v1/sync requests: ${syncs.length - from} in 10 s`);
  assert.ok(gaps.every((gap) => gap > 1_000 && gap < 6_000), `about 2 s apart: ${gaps.join(', ')} ms`);
  assert.deepEqual(errors, []);
});

it('with the default interval a message posted while the page was hidden shows right after it is visible again', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const { context, page, errors } = await newPage(browser, t);
  const syncs = recordSyncRequests(context);
  await openDemo(page, server.url, 'alice'); // default periodic sync: every 5 minutes

  // Hiding and showing the page: headless Chromium keeps every page "visible" (bringToFront on
  // another tab does not change that), so the test overrides `document.visibilityState` and
  // `document.hidden` on the document with Object.defineProperty and dispatches
  // `visibilitychange`, which is what the browser does when the user switches away and back.
  const setVisible = (visible) => page.evaluate((visible) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (visible ? 'visible' : 'hidden') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => !visible });
    document.dispatchEvent(new Event('visibilitychange'));
  }, visible);

  await setVisible(false);
  const body = `Bob, while you were away ${Date.now()}`;
  const posted = Date.now();
  await server.api('bob').send('General', body);
  // Nothing is there to wait for: give a sync that should not happen a second to show itself.
  await page.waitForTimeout(1_000);
  assert.notEqual(await previewOf(page, 'General'), `Bob Chen: ${body}`, 'not shown while hidden');
  assert.deepEqual(syncs.filter((at) => at >= posted), [], 'no sync while hidden');

  const shown = Date.now();
  await setVisible(true);
  await previewShows(page, 'General', `Bob Chen: ${body}`,
    'the General preview to show the message after the page became visible', 5_000);
  const took = Date.now() - shown;
  assert.ok(syncs.some((at) => at >= shown), 'becoming visible sent GET /v1/sync');
  assert.ok(took < 3_000, `shown ${took} ms after becoming visible`);
  assert.deepEqual(errors, []);
});
