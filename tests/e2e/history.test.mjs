// A conversation's history in the view: with more unread messages than a page, the view loads
// back to the first of them and starts there; offline, where the local cache ends is not called
// the conversation's beginning, and online again scrolling up loads the rest from the server; nor
// is it where loading older messages failed (Try again loads them, or, where nothing could be
// shown, the newest ones); a load of older messages still under way for the conversation the
// user left does not hold up the one they opened; edits and deletions of messages scrolled back
// to show as they sync; and a refresh of the view that waited on a back-fill while a later one
// showed a deletion does not bring the deleted message back.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, openKeepingHistory, pollUntil, previewOf, shownMessages, storedRecords, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const BEGINNING = 'This is the beginning of the conversation.';

/** Bob posts `count` messages to General, `${prefix} 1` first. */
async function bobPosts(server, prefix, count) {
  const bob = server.api('bob');
  for (let n = 1; n <= count; n += 1) await bob.send('General', `${prefix} ${n}`);
}

it('more unread messages than a page load back to the first of them, where the view starts', { timeout: 90_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=2000' });
  await bobPosts(server, 'Unread', 120); // the demo's page is 50 messages
  await pollUntil(() => previewOf(page, 'General'), (preview) => preview === 'Bob Chen: Unread 120',
    { message: 'General\'s row to show Bob\'s last message' });

  await openConversation(page, 'General');
  const divider = await waitInPage(page, () => document.querySelector('#messages .unread-divider')?.textContent,
    { message: 'the unread divider' });
  assert.equal(divider, '120 unread messages', 'all of them are loaded and counted');
  assert.equal(await page.getByRole('separator', { name: '120 unread messages' }).count(), 1,
    'screen readers hear the divider');
  const [first] = await page.$$eval('#messages .unread-divider + .message .body', (bodies) =>
    bodies.map((body) => body.textContent));
  assert.equal(first, 'Unread 1', 'the divider stands before the first unread message');
  const shown = (await shownMessages(page)).map((m) => m.body);
  assert.deepEqual(shown, Array.from({ length: 120 }, (_, i) => `Unread ${i + 1}`), 'all, in order');
  const inView = await page.evaluate(() => {
    const scroller = document.getElementById('messages-refresh');
    // (Below the element's sticky header, which would hide it.)
    const header = scroller.shadowRoot.querySelector('[part="header"]').getBoundingClientRect();
    const top = document.querySelector('#messages .unread-divider').getBoundingClientRect().top;
    return top >= header.bottom - 1 && top < scroller.getBoundingClientRect().bottom;
  });
  assert.ok(inView, 'the view starts at the divider, below the header, not at the bottom');
  assert.deepEqual(errors, []);
});

it('offline, the end of the local cache is not the beginning; online, scrolling up loads the rest', { timeout: 90_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  await bobPosts(server, 'Old', 80);
  const general = await server.api('alice').conversationId('General');
  const { page, context, errors } = await newPage(browser, t);
  // Maintenance soon after the first sync keeps only the newest 10 of each conversation.
  await openDemo(page, server.url, 'alice', { query: '?retentionPerConversation=10&maintenanceIntervalMs=2000' });
  await pollUntil(async () => (await storedRecords(page, server.url, 'alice', 'messages'))
    .filter((m) => m.conversationId === general).length, (count) => count === 10,
  { message: 'maintenance to keep 10 of General\'s messages in IndexedDB' });

  await context.setOffline(true);
  await waitInPage(page, () => document.getElementById('status').dataset.online === 'false',
    { message: '#status[data-online="false"]' });
  await openConversation(page, 'General');
  await waitInPage(page, () => document.querySelectorAll('#messages .message').length === 10,
    { message: 'the 10 cached messages' });
  // Scrolled to the top, the load of older messages finds nothing more offline.
  await page.locator('#messages-refresh').evaluate((scroller) => { scroller.scrollTop = 0; });
  await page.waitForTimeout(500);
  assert.notEqual(await page.locator('#history-state').textContent(), BEGINNING);
  assert.equal((await shownMessages(page)).length, 10);

  // Online again (without the short retention), scrolling up loads the older messages page by page.
  await context.setOffline(false);
  await openDemo(page, server.url, 'alice');
  await openConversation(page, 'General');
  await waitInPage(page, (beginning) => {
    const scroller = document.getElementById('messages-refresh');
    scroller.scrollTop = 0;
    scroller.dispatchEvent(new Event('scroll'));
    return document.getElementById('history-state').textContent === beginning;
  }, { arg: BEGINNING, message: 'the beginning of General, after scrolling up', polling: 300 });
  assert.deepEqual((await shownMessages(page)).map((m) => m.body),
    Array.from({ length: 80 }, (_, i) => `Old ${i + 1}`), 'every message, in order');
  assert.deepEqual(errors, []);
});

it('a load of older messages still running for one conversation does not hold up the next one\'s', { timeout: 90_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const alice = server.api('alice');
  for (let n = 1; n <= 80; n += 1) {
    await alice.send('General', `General ${n}`);
    await alice.send('Alice & Bob', `Alice & Bob ${n}`);
  }
  const general = await alice.conversationId('General');
  // (No service worker: the test holds requests with page.route, which a worker would bypass.)
  const { page, errors } = await newPage(browser, t, { serviceWorkers: 'block' });
  // Maintenance keeps the newest 10 of each conversation: older ones load from the server.
  await openDemo(page, server.url, 'alice', { query: '?retentionPerConversation=10&maintenanceIntervalMs=2000' });
  await pollUntil(async () => (await storedRecords(page, server.url, 'alice', 'messages')).length, (count) => count === 20,
    { message: 'maintenance to keep 10 messages of each conversation' });
  await openDemo(page, server.url, 'alice'); // (no more maintenance for a day)

  // General's older messages load from the server; the test holds that request from the second on.
  let hold = false;
  let held = 0;
  let release;
  const released = new Promise((done) => { release = done; });
  await page.route((url) => url.pathname === `/v1/conversations/${general}/messages`, async (route) => {
    if (hold && route.request().method() === 'GET') {
      held += 1;
      await released;
    }
    await route.continue();
  });
  const shown = (count) => waitInPage(page, (count) => document.querySelectorAll('#messages .message').length === count,
    { arg: count, message: `${count} messages shown` });
  const scrollToTop = () => page.locator('#messages-refresh').evaluate((scroller) => {
    scroller.scrollTop = 0;
    scroller.dispatchEvent(new Event('scroll'));
  });
  await openConversation(page, 'General');
  await shown(50);
  assert.equal(await page.locator('#messages').getByRole('img', { name: 'Sent' }).count(), 50,
    'screen readers hear each message of Alice\'s as sent');
  hold = true;
  await scrollToTop();
  await pollUntil(async () => held, (count) => count > 0, { message: 'General\'s older messages asked for' });

  await openConversation(page, 'Alice & Bob');
  await shown(50);
  await scrollToTop();
  await shown(80);
  release();
  assert.equal((await shownMessages(page))[0].body, 'Alice & Bob 1');
  assert.deepEqual(errors, []);
});

it('a failed load of older messages online is not the beginning; once the server answers, they load', { timeout: 90_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  await bobPosts(server, 'Old', 80);
  // (Alice's reply reads Bob's messages: the view loads no older pages to find the unread ones.)
  await server.api('alice').send('General', 'Read them');
  const general = await server.api('alice').conversationId('General');
  // (No service worker: the test answers requests with page.route, which a worker would bypass.)
  const { page, errors } = await newPage(browser, t, { serviceWorkers: 'block' });
  await openKeepingHistory(page, server.url, 'alice', general, 10);

  // The server fails General's history requests (the sync feed still works: the page is online).
  let failing = true;
  let failed = 0;
  await page.route((url) => url.pathname === `/v1/conversations/${general}/messages`, async (route) => {
    if (!failing || route.request().method() !== 'GET') return route.continue();
    failed += 1;
    await route.fulfill({
      status: 500,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'internal', message: 'injected fault' } }),
    });
  });
  await openConversation(page, 'General');
  // Opened (the composer has the focus), with no load of older messages running.
  const said = await waitInPage(page, () => document.activeElement?.id === 'composer-text' &&
    document.getElementById('history-state').textContent !== 'Loading older messages…' &&
    document.getElementById('history-state').textContent, {
    message: 'the conversation open, and the line above the messages saying how loading older ones went',
    describe: () => ({ line: document.getElementById('history-state').textContent, focus: document.activeElement?.id }),
  });
  assert.ok(failed > 0, 'the history request failed');
  assert.equal(await page.locator('#status').getAttribute('data-online'), 'true', 'online all along');
  assert.notEqual(said, BEGINNING);
  assert.match(said, /Could not load older messages/);
  assert.equal((await shownMessages(page)).length, 10, 'the cached messages');

  // The server answers again: Try again loads them, and scrolling up the rest, to the beginning.
  failing = false;
  // (Clicked where it is: scrolling to it would load them too.)
  await page.locator('#history-state').getByRole('button', { name: 'Try again' }).dispatchEvent('click');
  await waitInPage(page, () => document.querySelectorAll('#messages .message').length > 10,
    { message: 'older messages after Try again', timeout: 30_000 });
  await waitInPage(page, (beginning) => {
    const scroller = document.getElementById('messages-refresh');
    scroller.scrollTop = 0;
    scroller.dispatchEvent(new Event('scroll'));
    return document.getElementById('history-state').textContent === beginning;
  }, { arg: BEGINNING, message: 'the beginning of General, after scrolling up', polling: 300 });
  assert.deepEqual((await shownMessages(page)).map((m) => m.body),
    [...Array.from({ length: 80 }, (_, i) => `Old ${i + 1}`), 'Read them'], 'every message, in order');
  assert.deepEqual(errors, []);
});

it('an edit or deletion of a message scrolled back to shows at the next sync', { timeout: 90_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  await bobPosts(server, 'Old', 120);
  // (Alice's reply reads Bob's messages: the view opens at the newest page, not at the unread.)
  await server.api('alice').send('General', 'Read them');
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' });
  await openConversation(page, 'General');
  await waitInPage(page, () => document.querySelectorAll('#messages .message').length === 50,
    { message: 'the newest page' });
  await waitInPage(page, (beginning) => {
    const scroller = document.getElementById('messages-refresh');
    scroller.scrollTop = 0;
    scroller.dispatchEvent(new Event('scroll'));
    return document.getElementById('history-state').textContent === beginning;
  }, { arg: BEGINNING, message: 'the beginning of General, after scrolling up', polling: 300 });

  // Bob edits one of the oldest messages and deletes another, far below the newest page.
  const bob = server.api('bob');
  const general = await bob.conversationId('General');
  const onServer = await bob.messages('General', { limit: 200 });
  const id = (body) => onServer.find((m) => m.body === body).id;
  const path = (body) => `/v1/conversations/${general}/messages/${id(body)}`;
  assert.equal((await bob(path('Old 3'), { method: 'PATCH', body: JSON.stringify({ body: 'Old 3, edited' }) })).status, 200);
  assert.equal((await bob(path('Old 5'), { method: 'DELETE' })).status, 200);

  await waitInPage(page, () => {
    const bodies = [...document.querySelectorAll('#messages .message .body')].map((b) => b.textContent);
    return bodies.includes('Old 3, edited') && !bodies.includes('Old 5');
  }, { message: 'the edit and the deletion in the view', describe: () => [...document.querySelectorAll('#messages .message .body')].slice(0, 6).map((b) => b.textContent) });
  const shown = (await shownMessages(page)).map((m) => m.body);
  const expected = Array.from({ length: 120 }, (_, i) => `Old ${i + 1}`)
    .filter((body) => body !== 'Old 5').map((body) => (body === 'Old 3' ? 'Old 3, edited' : body));
  assert.deepEqual(shown, [...expected, 'Read them'], 'every other message stays, in order');
  assert.equal(await page.locator('#messages .message', { hasText: 'Old 3, edited' }).locator('.edited').count(), 1,
    'marked edited');
  assert.deepEqual(errors, []);
});

it('older messages that load after the conversation was left and opened again do not land in the new view', { timeout: 90_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const bob = server.api('bob');
  await bobPosts(server, 'Old', 80);
  // (Alice's reply reads Bob's messages: the view opens at the newest page, not at the unread.)
  await server.api('alice').send('General', 'Read them');
  await server.api('alice').send('Alice & Bob', 'Elsewhere');
  const general = await bob.conversationId('General');
  // (No service worker: the test holds requests with page.route, which a worker would bypass.)
  const { page, errors } = await newPage(browser, t, { serviceWorkers: 'block' });
  // Maintenance keeps the newest 10 of each conversation: older ones load from the server.
  await openDemo(page, server.url, 'alice', { query: '?retentionPerConversation=10&maintenanceIntervalMs=2000' });
  await pollUntil(async () => (await storedRecords(page, server.url, 'alice', 'messages'))
    .filter((m) => m.conversationId === general).length, (count) => count === 10,
  { message: 'maintenance to keep 10 of General\'s messages in IndexedDB' });
  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=1000' }); // (no more maintenance)

  // General's older messages load from the server; the test holds that request from now on.
  let hold = false;
  let held = 0;
  let release;
  const released = new Promise((done) => { release = done; });
  await page.route((url) => url.pathname === `/v1/conversations/${general}/messages`, async (route) => {
    if (hold && route.request().method() === 'GET') {
      held += 1;
      await released;
    }
    await route.continue();
  });
  const scrollToTop = () => page.locator('#messages-refresh').evaluate((scroller) => {
    scroller.scrollTop = 0;
    scroller.dispatchEvent(new Event('scroll'));
  });
  await openConversation(page, 'General');
  await waitInPage(page, () => document.querySelectorAll('#messages .message').length === 50,
    { message: 'General\'s newest page' });
  hold = true;
  await scrollToTop();
  await pollUntil(async () => held, (count) => count > 0, { message: 'General\'s older messages asked for' });

  // Alice leaves General; 60 new messages come; she opens it again: a new view, of the newest.
  await openConversation(page, 'Alice & Bob');
  await bobPosts(server, 'New', 60);
  await pollUntil(() => previewOf(page, 'General'), (preview) => preview === 'Bob Chen: New 60',
    { message: 'General\'s row to show Bob\'s last message' });
  await openConversation(page, 'General');
  // The new view loads older pages to the first unread message (Alice's reply is right above
  // it), from the cache: the load of the earlier view, still held, neither holds them up…
  await waitInPage(page, () => document.activeElement?.id === 'composer-text' &&
    [...document.querySelectorAll('#messages .message .body')].some((body) => body.textContent === 'Read them'),
  { message: 'General open again, down to Alice\'s reply' });
  const shownBefore = (await shownMessages(page)).map((m) => m.body);
  assert.equal(shownBefore.at(-1), 'New 60');

  // …nor lands in it once it is answered.
  const answered = page.waitForResponse((response) => new URL(response.url()).pathname === `/v1/conversations/${general}/messages`);
  release();
  await answered;
  await pollUntil(async () => (await storedRecords(page, server.url, 'alice', 'messages')).map((m) => m.body),
    (bodies) => bodies.includes('Old 1'), { message: 'the held back-fill stored' });
  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle', { message: 'an idle sync' });

  // The view is a run of General's messages without a gap, up to the newest.
  const all = (await bob.messages('General', { limit: 200 })).map((m) => m.body);
  const shown = (await shownMessages(page)).map((m) => m.body);
  assert.ok(!shown.includes('Old 1'), 'the earlier view\'s load is not in this one');
  assert.deepEqual(shown, all.slice(all.length - shown.length), `no gap in ${JSON.stringify(shown.slice(0, 5))}…`);
  assert.deepEqual(errors, []);
});

it('a refresh that read the view before a deletion and ends after a later refresh does not bring the message back', { timeout: 90_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  const bob = server.api('bob');
  const alice = server.api('alice');
  await bobPosts(server, 'Old', 20);
  // (Alice's reply reads Bob's messages: the view loads no older pages to find the unread ones.)
  await alice.send('General', 'Read them');
  const general = await bob.conversationId('General');
  // (No service worker: the test answers requests with page.route, which a worker would bypass.
  // Tall: the 10 messages cached fit, so no scrolling loads older ones unasked.)
  const { page, errors } = await newPage(browser, t, { viewport: { width: 1280, height: 1400 }, serviceWorkers: 'block' });
  // Maintenance keeps the newest 10 of each conversation: a page of 50 back-fills from the server.
  await openKeepingHistory(page, server.url, 'alice', general, 10);

  // General's back-fills fail (a page comes back as the cache has it); from `hold` on, the test
  // holds them first.
  let hold = false;
  let held = 0;
  let release;
  const released = new Promise((done) => { release = done; });
  await page.route((url) => url.pathname === `/v1/conversations/${general}/messages`, async (route) => {
    if (route.request().method() !== 'GET') return route.continue();
    if (hold) {
      held += 1;
      await released;
    }
    await route.fulfill({
      status: 500,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'internal', message: 'injected fault' } }),
    });
  });
  const bodies = () => page.$$eval('#messages .message .body', (items) => items.map((body) => body.textContent));
  const pull = () => page.locator('#conversations-refresh').evaluate((element) => element.refresh());
  await openConversation(page, 'General');
  await waitInPage(page, () => /Could not load older messages/.test(document.getElementById('history-state').textContent),
    { message: 'General open with its 10 cached messages, its back-fill failed' });
  assert.ok((await bodies()).includes('Old 15'));
  assert.ok(await page.locator('#messages-refresh').evaluate((scroller) => scroller.scrollHeight <= scroller.clientHeight),
    'the cached messages fit: no load of older messages runs');

  // A message of Alice's from another device starts a refresh (hers: nothing unread to mark
  // read, which would start more): it reads the cached page, "Old 15" in it, and waits on its
  // back-fill, which the test holds.
  hold = true;
  await alice.send('General', 'Hello');
  await pull();
  await pollUntil(async () => held, (count) => count > 0, { message: 'the refresh\'s back-fill asked for' });

  // Bob deletes "Old 15", Alice posts 40 more: the newest page of 50 reaches down to the oldest
  // message shown ("Old 12"), so the next refresh reads just that page from the cache (no
  // back-fill), and shows it.
  const onServer = await bob.messages('General', { limit: 100 });
  const old15 = onServer.find((m) => m.body === 'Old 15').id;
  assert.equal((await bob(`/v1/conversations/${general}/messages/${old15}`, { method: 'DELETE' })).status, 200);
  for (let n = 1; n <= 40; n += 1) await alice.send('General', `New ${n}`);
  await pull();
  await waitInPage(page, () => {
    const shown = [...document.querySelectorAll('#messages .message .body')].map((body) => body.textContent);
    return shown.includes('New 40') && !shown.includes('Old 15');
  }, { message: 'the newer refresh: "New 40" shown, "Old 15" gone' });

  // Try again: the load of older messages waits on the held back-fill too, and ends after the
  // refreshes waiting on it.
  await page.locator('#history-state').getByRole('button', { name: 'Try again' }).dispatchEvent('click');
  await waitInPage(page, () => document.getElementById('history-state').textContent === 'Loading older messages…',
    { message: 'older messages loading' });

  // The held back-fill fails now: the refreshes that read before the deletion end last, each
  // with the page it read then.
  release();
  await waitInPage(page, () => /^Could not load older messages/.test(document.getElementById('history-state').textContent),
    { message: 'the load of older messages over, failed' });
  const old = Array.from({ length: 9 }, (_, i) => `Old ${i + 12}`).filter((body) => body !== 'Old 15');
  assert.deepEqual(await bodies(), [...old, 'Read them', 'Hello', ...Array.from({ length: 40 }, (_, i) => `New ${i + 1}`)],
    'the view as the later refresh read it: "Old 15" stays deleted, the new messages stay');
  assert.deepEqual(errors, []);
});

it('Try again after the first load of a conversation failed, with nothing cached, loads its newest messages', { timeout: 90_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 0 });
  await bobPosts(server, 'Old', 80);
  // (Alice's reply reads Bob's messages: the view loads no older pages to find the unread ones.)
  await server.api('alice').send('General', 'Read them');
  const general = await server.api('alice').conversationId('General');
  // (No service worker: the test answers requests with page.route, which a worker would bypass.)
  const { page, errors } = await newPage(browser, t, { serviceWorkers: 'block' });
  // Maintenance keeps none of General's messages: the conversation loads from the server.
  await openKeepingHistory(page, server.url, 'alice', general, 0);

  // The server fails General's history requests (the sync feed still works: the page is online).
  let failing = true;
  await page.route((url) => url.pathname === `/v1/conversations/${general}/messages`, async (route) => {
    if (!failing || route.request().method() !== 'GET') return route.continue();
    await route.fulfill({
      status: 500,
      contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'internal', message: 'injected fault' } }),
    });
  });
  await page.locator('#conversations .conversation', {
    has: page.locator('.conversation-title', { hasText: /^General$/ }),
  }).click();
  await waitInPage(page, () => document.activeElement?.id === 'composer-text' &&
    /^Could not load older messages/.test(document.getElementById('history-state').textContent), {
    message: 'General open, saying loading its messages failed',
    describe: () => ({ line: document.getElementById('history-state').textContent, focus: document.activeElement?.id }),
  });
  assert.equal((await shownMessages(page)).length, 0, 'no message to show');

  // The server answers again: Try again loads the newest page.
  failing = false;
  await page.locator('#history-state').getByRole('button', { name: 'Try again' }).click();
  await waitInPage(page, () => document.querySelectorAll('#messages .message').length > 0,
    { message: 'messages after Try again' });
  const newest = (await server.api('alice').messages('General', { limit: 50 })).map((m) => m.body);
  assert.deepEqual((await shownMessages(page)).map((m) => m.body), newest, 'the newest page, in order');
  assert.equal(await page.locator('#history-state').textContent(), '', 'no failure said any more');
  assert.deepEqual(errors, []);
});
