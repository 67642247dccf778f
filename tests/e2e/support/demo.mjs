// Driving the demo PWA (www/) in a page: sign in, open a conversation, send, read what it shows,
// and waiting for conditions with failure messages that say what was expected and what was seen.
//
//     const page = await context.newPage();
//     await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=2000' });
//     await openConversation(page, 'General');
//     await sendMessage(page, 'hi');
//     await waitForMessage(page, 'hi', { status: 'sent' });

import { collectPageErrors } from './browser.mjs';
import { DEMO_USERS } from './server.mjs';
import { apiRequests, consoleLines } from './traffic.mjs';

/** How long a condition may take before a wait fails (ms). */
export const WAIT_MS = 15_000;

/**
 * Waits until `fn(arg)`, run in the page, returns something truthy, and returns it. On timeout
 * throws `message` with what `describe(arg)` (run in the page) says about the page state then.
 * @template T, A
 * @param {import('playwright-core').Page} page
 * @param {(arg: A) => T} fn
 * @param {{ arg?: A, message: string, timeout?: number, describe?: (arg: A) => unknown, polling?: number | 'raf' }} options
 */
export async function waitInPage(page, fn, { arg, message, timeout = WAIT_MS, describe, polling = 100 }) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout, polling });
    return await handle.jsonValue();
  } catch (error) {
    let seen = '';
    try {
      seen = `\n  page state: ${JSON.stringify(await page.evaluate(describe ?? pageSummary, arg), null, 2)}`;
    } catch { /* the page is gone */ }
    throw new Error(`timed out after ${timeout} ms waiting for: ${message}${seen}\n  (${error.message.split('\n')[0]})`);
  }
}

/**
 * Polls `fn` in Node (an API call, say) until `check(value)` holds; returns the value. On timeout
 * throws `message` and the last value.
 * @template T
 * @param {() => Promise<T>} fn
 * @param {(value: T) => boolean} check
 * @param {{ message: string, timeout?: number, interval?: number }} options
 */
export async function pollUntil(fn, check, { message, timeout = WAIT_MS, interval = 200 }) {
  const deadline = Date.now() + timeout;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await fn();
      lastError = undefined;
      if (check(last)) return last;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for: ${message}\n  last value: ${
        lastError ? lastError.stack : JSON.stringify(last, null, 2)}`);
    }
    await new Promise((done) => setTimeout(done, interval));
  }
}

/** What the demo shows, for failure messages (runs in the page). */
export function pageSummary() {
  const status = document.getElementById('status');
  return {
    url: location.href,
    status: status && { ...status.dataset, text: document.getElementById('status-text')?.textContent },
    banner: document.getElementById('banner')?.hidden === false ? document.getElementById('banner').textContent : null,
    signIn: document.getElementById('sign-in')?.hidden === false,
    conversations: [...document.querySelectorAll('#conversations .conversation')].map((row) => ({
      id: row.dataset.id,
      title: row.querySelector('.conversation-title')?.textContent,
      preview: row.querySelector('.conversation-preview')?.textContent,
      unread: row.querySelector('.unread')?.textContent ?? null,
    })),
    open: document.getElementById('conversation-title')?.textContent,
    lastMessages: [...document.querySelectorAll('#messages .message')].slice(-8).map((m) => ({
      status: m.dataset.status, id: m.dataset.clientMessageId, body: m.querySelector('.body')?.textContent,
    })),
  };
}

/**
 * Opens the demo at `url` signed in as `user` (`'alice'`): clicks the user on the sign-in screen
 * (when it shows; a saved session skips it) and waits for the conversation list and an idle sync.
 * @param {import('playwright-core').Page} page
 * @param {string} url the server's URL
 * @param {string} user a key of DEMO_USERS
 * @param {{ query?: string, hash?: string, idle?: boolean }} [options] `query` like
 *   `'?periodicSyncMs=2000'`; `idle: false` does not wait for `data-phase="idle"` (offline starts)
 */
export async function openDemo(page, url, user, { query = '', hash = '', idle = true } = {}) {
  const { name } = DEMO_USERS[user];
  await page.goto(`${url}/${query}${hash}`);
  await waitInPage(page, () => {
    const signIn = document.getElementById('sign-in');
    return (signIn && !signIn.hidden && document.querySelector('.demo-user') !== null) ||
      document.querySelector('#conversations .conversation') !== null;
  }, { message: 'the sign-in screen or the conversation list' });
  if (await page.locator('#sign-in').isVisible()) {
    await page.locator('#sign-in .demo-user', { hasText: name }).click();
  }
  await waitForConversations(page, { idle });
}

/**
 * Two tabs of one browser profile signed in as `user`: the `first` leads, the `second` follows
 * (its status says so). Each tab's `/v1/` requests, console lines and uncaught errors are recorded
 * from the start (`firstRequests`, `secondConsole`, …).
 * @param {import('playwright-core').BrowserContext} context
 * @param {string} url the server's URL
 * @param {string} user a key of DEMO_USERS
 * @param {{ firstQuery?: string, secondQuery?: string }} [options] each tab's `openDemo` query
 */
export async function openTwoTabs(context, url, user, { firstQuery = '', secondQuery = '' } = {}) {
  const first = await context.newPage();
  const second = await context.newPage();
  const tabs = {
    first, second,
    firstRequests: apiRequests(first), secondRequests: apiRequests(second),
    firstConsole: consoleLines(first), secondConsole: consoleLines(second),
    firstErrors: collectPageErrors(first), secondErrors: collectPageErrors(second),
  };
  await openDemo(first, url, user, { query: firstQuery });
  await openDemo(second, url, user, { query: secondQuery, idle: false });
  await waitInPage(second, () => document.getElementById('status').dataset.phase === 'follower',
    { message: 'the second tab\'s #status[data-phase="follower"]' });
  return tabs;
}

/** Waits until the conversation list shows rows (and, with `idle`, the sync is idle and the rows
 * count unread messages: `#conversations[data-counting="true"]`, once a first sync finished). */
export async function waitForConversations(page, { idle = true } = {}) {
  await waitInPage(page, (idle) => {
    const list = document.getElementById('conversations');
    const rows = list.querySelectorAll('.conversation').length;
    return rows > 0 && (!idle || (document.getElementById('status').dataset.phase === 'idle' &&
      list.dataset.counting === 'true'));
  }, {
    arg: idle,
    message: idle ? 'conversation rows counting unread and #status[data-phase="idle"]' : 'conversation rows',
  });
}

/** Waits (up to `timeout` ms) until the first sync finished: `#status[data-phase="idle"]` and
 * "Synced …" (after `openDemo(…, { idle: false })` on a large backlog). */
export async function waitForInitialSync(page, { timeout = 240_000 } = {}) {
  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle' &&
    /^Synced /.test(document.getElementById('status-text').textContent),
  { message: 'the initial sync to finish: #status[data-phase="idle"] and "Synced …"', timeout, polling: 250 });
}

/** Waits until the open conversation's last `.message` has the body `body`. */
export async function waitForNewestAtBottom(page, body) {
  await waitInPage(page, (body) => {
    const bodies = [...document.querySelectorAll('#messages .message .body')];
    return bodies.length > 0 && bodies[bodies.length - 1].textContent === body;
  }, { arg: body, message: `the conversation's newest message ${JSON.stringify(body)} at the bottom` });
}

/** Clicks the conversation titled `title` and waits for its messages. */
export async function openConversation(page, title) {
  await page.locator('#conversations .conversation', {
    has: page.locator('.conversation-title', { hasText: new RegExp(`^${escapeRegExp(title)}$`) }),
  }).click();
  await waitInPage(page, (title) =>
    document.getElementById('conversation-title').textContent === title &&
    document.querySelectorAll('#messages .message').length > 0,
  { arg: title, message: `conversation "${title}" open with its messages` });
}

/** Types `text` in the composer, presses Enter, and waits until the message shows (queued). */
export async function sendMessage(page, text) {
  await page.locator('#composer-text').fill(text);
  await page.locator('#composer-text').press('Enter');
  await waitInPage(page, (text) => document.getElementById('composer-text').value === '' &&
    [...document.querySelectorAll('#messages .message .body')].some((body) => body.textContent === text),
  { arg: text, message: `the composer cleared and ${JSON.stringify(text)} shown after sending it` });
}

/**
 * Waits until a `.message` whose `.body` is exactly `body` shows (with `status`, when given) and
 * returns its `{ status, clientMessageId }`.
 */
export async function waitForMessage(page, body, { status, timeout } = {}) {
  return waitInPage(page, ({ body, status }) => {
    const found = [...document.querySelectorAll('#messages .message')]
      .find((m) => m.querySelector('.body')?.textContent === body);
    if (!found || (status && found.dataset.status !== status)) return null;
    return { status: found.dataset.status, clientMessageId: found.dataset.clientMessageId };
  }, { arg: { body, status }, timeout, message: `message ${JSON.stringify(body)}${status ? ` with data-status="${status}"` : ''}` });
}

/** The open conversation's messages as shown: `{ body, status, clientMessageId, mark }`. */
export function shownMessages(page) {
  return page.$$eval('#messages .message', (items) => items.map((m) => ({
    body: m.querySelector('.body')?.textContent,
    status: m.dataset.status,
    clientMessageId: m.dataset.clientMessageId,
    mark: m.querySelector('.mark')?.getAttribute('aria-label') ?? null,
  })));
}

/** The conversation row's preview text, by title. */
export function previewOf(page, title) {
  return page.$$eval('#conversations .conversation', (rows, title) => rows
    .find((row) => row.querySelector('.conversation-title')?.textContent === title)
    ?.querySelector('.conversation-preview')?.textContent ?? null, title);
}

/** Waits until `title`'s unread count on `page` is `count` (`message` says what for). */
export async function waitForUnread(page, title, count, message) {
  await waitInPage(page, ({ title, count }) => {
    const row = [...document.querySelectorAll('#conversations .conversation')]
      .find((r) => r.querySelector('.conversation-title')?.textContent === title);
    const shown = row?.querySelector('.unread')?.textContent ?? '0';
    return row !== undefined && Number.parseInt(shown, 10) === count;
  }, { arg: { title, count }, message, describe: pageSummary });
}

/** The conversation row's unread count, by title (0 without a badge). */
export async function unreadOf(page, title) {
  const text = await page.$$eval('#conversations .conversation', (rows, title) => rows
    .find((row) => row.querySelector('.conversation-title')?.textContent === title)
    ?.querySelector('.unread')?.textContent ?? '0', title);
  return Number.parseInt(text, 10);
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A fresh browser context (closed when test `t` ends) and its first page, whose page errors are
 * collected in `errors`. Desktop-sized unless `viewport` says otherwise; `serviceWorkers: 'block'`
 * for a test that answers requests with `page.route`, which a service worker would bypass.
 */
export async function newPage(browser, t, { viewport = { width: 1280, height: 800 }, serviceWorkers = 'allow' } = {}) {
  const context = await browser.newContext({ viewport, serviceWorkers });
  t.after(() => context.close());
  const page = await context.newPage();
  return { context, page, errors: collectPageErrors(page) };
}

/** Opens the demo for `user` with maintenance keeping the newest `keep` messages of each
 * conversation, waits until IndexedDB holds `keep` of conversation `conversationId`'s, and opens
 * the demo again without those options (no more maintenance for a day): older messages then load
 * from the server. */
export async function openKeepingHistory(page, url, user, conversationId, keep) {
  await openDemo(page, url, user, { query: `?retentionPerConversation=${keep}&maintenanceIntervalMs=2000` });
  await pollUntil(async () => (await storedRecords(page, url, user, 'messages'))
    .filter((m) => m.conversationId === conversationId).length, (count) => count === keep,
  { message: `maintenance to keep ${keep} of the conversation's messages in IndexedDB` });
  await openDemo(page, url, user);
}

/** Every record of the object store `storeName` in `user`'s local database for the server at
 * `url`, read in the page. */
export function storedRecords(page, url, user, storeName) {
  const name = `chat-sync|${url}|${DEMO_USERS[user].id}`;
  return page.evaluate(async ({ name, storeName }) => {
    const db = await new Promise((resolve, reject) => {
      const request = indexedDB.open(name);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    try {
      return await new Promise((resolve, reject) => {
        const request = db.transaction(storeName, 'readonly').objectStore(storeName).getAll();
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    } finally {
      db.close();
    }
  }, { name, storeName });
}
