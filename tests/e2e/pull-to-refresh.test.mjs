// Pull-to-refresh in the demo PWA with a real mouse drag: another user's new message shows in the
// conversation list after a pull on it, and in the open conversation after a pull on its messages.
// The page runs with the default periodic sync (every 5 minutes), and the test checks that no sync
// request left the browser between the other user's post and the gesture: only the pull explains
// the message showing.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, pollUntil, previewOf, unreadOf, waitForMessage, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Drags the mouse down by `distance` px from 40 px below the top of `selector`'s box. */
async function pull(page, selector, distance = 200) {
  const box = await page.locator(selector).boundingBox();
  assert.ok(box, `${selector} is laid out`);
  const x = box.x + box.width / 2;
  const y = box.y + 40;
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x, y + distance, { steps: 12 });
  await page.mouse.up();
}

/** The same drag with a finger: real touch input through the DevTools protocol (touch and pointer
 * events, and the browser's own gesture handling). */
async function touchPull(page, selector, distance = 200) {
  const box = await page.locator(selector).boundingBox();
  assert.ok(box, `${selector} is laid out`);
  const x = box.x + box.width / 2;
  const y = box.y + 40;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x, y }] });
  for (let step = 1; step <= 12; step += 1) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x, y: y + (distance * step) / 12 }] });
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await cdp.detach();
}

/** The API requests the browser (page or service worker) sends, by path. */
function recordApiRequests(context) {
  const seen = [];
  context.on('request', (request) => {
    const { pathname } = new URL(request.url());
    if (pathname.startsWith('/v1/')) seen.push({ method: request.method(), pathname, at: Date.now() });
  });
  return seen;
}

/** Waits out a window in which nothing may happen, then checks nothing did. A negative condition
 * has no event to wait for; one second is several times what the page takes to render a change. */
async function quietWindow(page, check, message) {
  await page.waitForTimeout(1_000);
  assert.ok(await check(), message);
}

it('a pull on the conversation list, then on the open conversation, brings the other user\'s message', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const bob = server.api('bob');
  const { context, page, errors } = await newPage(browser, t);
  const requests = recordApiRequests(context);
  await openDemo(page, server.url, 'alice'); // default periodic sync: every 5 minutes
  await page.evaluate(() => {
    window.__syncEvents = [];
    for (const type of ['sync-start', 'sync-end']) {
      document.addEventListener(type, (event) => window.__syncEvents.push({ type, target: event.target.id }));
    }
  });

  // 1. The conversation list.
  const unreadBefore = await unreadOf(page, 'General');
  const general = `Bob pulls you in ${Date.now()}`;
  const posted = Date.now();
  await bob.send('General', general);
  await quietWindow(page, async () => (await previewOf(page, 'General')) !== `Bob Chen: ${general}`,
    'the message must not show before the pull');
  assert.deepEqual(requests.filter((r) => r.at >= posted), [], 'no API request between the post and the pull');

  assert.equal(await page.locator('#conversations-refresh').evaluate((el) => el.scrollTop), 0);
  const pulled = Date.now();
  await pull(page, '#conversations-refresh');
  await waitInPage(page, (text) => [...document.querySelectorAll('#conversations .conversation')]
    .some((row) => row.querySelector('.conversation-title').textContent === 'General' &&
      row.querySelector('.conversation-preview').textContent === text),
  { arg: `Bob Chen: ${general}`, message: 'the General row\'s preview to show Bob\'s message after the pull' });
  assert.ok(requests.some((r) => r.at >= pulled && r.pathname === '/v1/sync'), 'the pull sent GET /v1/sync');
  assert.equal(await unreadOf(page, 'General'), unreadBefore + 1, 'General counts the message unread');
  assert.deepEqual(await page.evaluate(() => window.__syncEvents.slice(0, 1)),
    [{ type: 'sync-start', target: 'conversations-refresh' }], 'the sync was the pull\'s');

  // 2. The open conversation's messages.
  await openConversation(page, 'Alice & Bob');
  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle',
    { message: 'the sync idle after opening the conversation' });
  // Opening it marks it read, which the phase does not show: wait until the server holds the
  // marker, so that its request is not one between the post and the pull.
  const alice = server.api('alice');
  const [newest] = await alice.messages('Alice & Bob', { limit: 1 });
  await pollUntil(() => alice.readMarker('Alice & Bob'), (marker) => marker?.lastReadMessageId === newest.id,
    { message: 'the server to hold Alice\'s marker at the newest message of Alice & Bob' });
  const id = await page.locator('#messages-refresh').getAttribute('conversation-id');
  const direct = `Bob, in the open conversation ${Date.now()}`;
  const posted2 = Date.now();
  await bob.send('Alice & Bob', direct);
  await quietWindow(page, () => page.evaluate((text) => ![...document.querySelectorAll('#messages .body')]
    .some((body) => body.textContent === text), direct), 'the message must not show before the pull');
  assert.deepEqual(requests.filter((r) => r.at >= posted2), [], 'no API request between the post and the pull');

  // A pull starts only at the top: scroll the messages up (the whole history is loaded: this
  // conversation has fewer messages than a page, so no back-fill moves the list).
  await page.locator('#messages-refresh').evaluate((el) => { el.scrollTop = 0; });
  await waitInPage(page, () => document.getElementById('messages-refresh').scrollTop === 0,
    { message: '#messages-refresh scrolled to its top' });
  await page.evaluate(() => { window.__syncEvents = []; });
  const pulled2 = Date.now();
  await pull(page, '#messages-refresh');
  await waitForMessage(page, direct);
  assert.ok(requests.some((r) => r.at >= pulled2 && r.pathname === `/v1/conversations/${id}/sync`),
    `the pull sent GET /v1/conversations/${id}/sync`);
  assert.deepEqual(await page.evaluate(() => window.__syncEvents.slice(0, 1)),
    [{ type: 'sync-start', target: 'messages-refresh' }], 'the sync was the pull\'s');
  assert.equal(await previewOf(page, 'Alice & Bob'), `Bob Chen: ${direct}`, 'the list shows it too');
  assert.deepEqual(errors, []);
});

it('on a phone, a touch pull on the conversation list brings the other user\'s message', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
  });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  const requests = recordApiRequests(context);
  await openDemo(page, server.url, 'alice');
  assert.equal(await page.locator('#chat').getAttribute('data-pane'), 'list', 'the phone shows the list');

  const body = `Bob, on your phone ${Date.now()}`;
  const posted = Date.now();
  await server.api('bob').send('Alice & Bob', body);
  await quietWindow(page, async () => (await previewOf(page, 'Alice & Bob')) !== `Bob Chen: ${body}`,
    'the message must not show before the pull');
  assert.deepEqual(requests.filter((r) => r.at >= posted), [], 'no API request between the post and the pull');

  await touchPull(page, '#conversations-refresh');
  await waitInPage(page, (text) => [...document.querySelectorAll('#conversations .conversation-preview')]
    .some((node) => node.textContent === text),
  { arg: `Bob Chen: ${body}`, message: 'the Alice & Bob preview to show Bob\'s message after the touch pull' });
  assert.equal(await page.locator('#chat').getAttribute('data-pane'), 'list', 'the pull opened no conversation');
  assert.deepEqual(errors, []);
});
