// Unread counts follow the user across devices: two browser profiles (two devices) signed in as
// Alice both count Bob's new messages in General; Alice reads General on one of them while it is
// offline, which clears the count there at once but not on the other device, and closes the app.
// Opened again online, the app sends the read marker it kept, and the other device's count clears
// with its next sync. And an own message shows read once the other member has read it.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, pollUntil, sendMessage, shownMessages, unreadOf, waitForMessage,
  waitForUnread, waitInPage,
} from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Each device syncs every 2 s, so the other device's reading shows soon. */
const QUERY = '?periodicSyncMs=2000';

it('reading a conversation on one device clears its unread count on the other, also when read offline', { timeout: 120_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const bob = server.api('bob');
  const alice = server.api('alice');
  const phone = await newPage(browser, t);
  const laptop = await newPage(browser, t);
  await openDemo(phone.page, server.url, 'alice', { query: QUERY });
  await openDemo(laptop.page, server.url, 'alice', { query: QUERY });
  const before = await unreadOf(phone.page, 'General');
  assert.equal(await unreadOf(laptop.page, 'General'), before, 'both devices show the seeded count');

  await bob.send('General', 'First of two');
  const last = await bob.send('General', 'Second of two');
  await waitForUnread(phone.page, 'General', before + 2, 'the phone to count both of Bob\'s messages');
  await waitForUnread(laptop.page, 'General', before + 2, 'the laptop to count both of Bob\'s messages');

  // Read on the phone while it is offline: its count clears at once, the laptop's stays.
  await phone.context.setOffline(true);
  await openConversation(phone.page, 'General');
  await waitForMessage(phone.page, 'Second of two');
  await waitForUnread(phone.page, 'General', 0, 'the phone\'s own count to clear while offline');
  await laptop.page.waitForTimeout(4_000); // two of the laptop's periodic syncs
  assert.equal(await unreadOf(laptop.page, 'General'), before + 2, 'the laptop cannot know yet');
  assert.notEqual((await alice.readMarker('General'))?.lastReadMessageId, last.id,
    'the server has no marker from the offline phone');

  // The app is closed while offline, and opened again online: the marker it kept goes to the
  // server, and the laptop's next sync brings it.
  await phone.page.close();
  await phone.context.setOffline(false);
  const reopened = await phone.context.newPage();
  const reopenedErrors = collectPageErrors(reopened);
  await openDemo(reopened, server.url, 'alice', { query: QUERY });
  await pollUntil(() => alice.readMarker('General'), (marker) => marker?.lastReadMessageId === last.id,
    { message: 'the server to hold Alice\'s marker at Bob\'s second message' });
  await waitForUnread(laptop.page, 'General', 0, 'the laptop\'s count to clear after its sync');
  assert.equal(await unreadOf(reopened, 'General'), 0, 'the phone still shows General read');
  assert.deepEqual([...phone.errors, ...reopenedErrors, ...laptop.errors], []);
});

it('a first sync shows no unread count before the read markers are in', { timeout: 60_000 }, async (t) => {
  // Slow answers, so the first page (messages, no read markers yet) is on screen for a while.
  const server = await startServer({ test: t, seedMessages: 300, faults: { 'latency-ms': 300 } });
  const { page, errors } = await newPage(browser, t);
  // Every unread count any row shows, from the first render on.
  await page.addInitScript(() => {
    window.shownCounts = [];
    new MutationObserver(() => {
      for (const row of document.querySelectorAll('#conversations .conversation')) {
        const count = row.querySelector('.unread')?.textContent;
        if (count) window.shownCounts.push([row.querySelector('.conversation-title').textContent, count]);
      }
    }).observe(document, { childList: true, subtree: true, characterData: true });
  });
  await openDemo(page, server.url, 'alice');
  const final = await page.$$eval('#conversations .conversation', (rows) => rows.map((row) =>
    [row.querySelector('.conversation-title').textContent, row.querySelector('.unread')?.textContent]));
  assert.ok(final.some(([, count]) => count), 'some conversation has unread messages');
  const finalCount = new Map(final);
  const shown = await page.evaluate(() => window.shownCounts);
  assert.ok(shown.length > 0, 'the observer saw the counts');
  assert.deepEqual(shown.filter(([title, count]) => finalCount.get(title) !== count), [],
    'every count shown is the one the synced read markers give');
  assert.deepEqual(errors, []);
});

it('a conversation opened during a first sync shows no unread divider', { timeout: 60_000 }, async (t) => {
  // Slow answers keep the first sync running while the conversation opens.
  const server = await startServer({ test: t, seedMessages: 3_000, faults: { 'latency-ms': 500 } });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { idle: false });
  await openConversation(page, 'General');
  assert.ok((await shownMessages(page)).length > 0, 'General shows messages');
  assert.equal(await page.locator('#status').getAttribute('data-phase'), 'syncing', 'the first sync still runs');
  assert.equal(await page.locator('#messages .unread-divider').count(), 0,
    'no divider: without read markers every message would count as unread');
  assert.deepEqual(errors, []);
});

it('an own message shows read once the other member has read it', { timeout: 60_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 100 });
  const bob = server.api('bob');
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: QUERY });
  await openConversation(page, 'Alice & Bob');
  const body = `read me, Bob ${Date.now()}`;
  await sendMessage(page, body);
  await waitForMessage(page, body, { status: 'sent' });
  const markOf = async () => (await shownMessages(page)).find((m) => m.body === body)?.mark;
  assert.equal(await markOf(), 'Sent', 'Bob has not read it');

  const sent = (await bob.messages('Alice & Bob', { limit: 5 })).find((m) => m.body === body);
  const conversationId = await bob.conversationId('Alice & Bob');
  const response = await bob(`/v1/conversations/${encodeURIComponent(conversationId)}/read`, {
    method: 'POST',
    body: JSON.stringify({ messageId: sent.id }),
  });
  assert.equal(response.status, 200);
  await waitInPage(page, (body) => [...document.querySelectorAll('#messages .message')]
    .find((m) => m.querySelector('.body')?.textContent === body)
    ?.querySelector('.mark')?.getAttribute('aria-label') === 'Read',
  { arg: body, message: 'the message\'s mark to say Read after Bob read it' });
  assert.deepEqual(errors, []);
});

it('a conversation opens with its unread messages under a divider that keeps its count', { timeout: 60_000 }, async (t) => {
  const server = await startServer({ test: t, seedMessages: 100 });
  const bob = server.api('bob');
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice', { query: QUERY });
  const before = await unreadOf(page, 'Alice & Bob');
  for (const body of ['Unread one', 'Unread two', 'Unread three']) await bob.send('Alice & Bob', body);
  await waitForUnread(page, 'Alice & Bob', before + 3, 'Bob\'s three messages counted unread');

  await openConversation(page, 'Alice & Bob');
  await waitForMessage(page, 'Unread three');
  /** Page-side: the divider's text, and who sent each message below it (`me` or `other`). */
  const belowDivider = () => {
    const items = [...document.getElementById('messages').children];
    const at = items.findIndex((item) => item.classList.contains('unread-divider'));
    return {
      text: at === -1 ? null : items[at].textContent,
      below: items.slice(at + 1).filter((item) => item.classList.contains('message'))
        .map((item) => (item.classList.contains('mine') ? 'me' : 'other')),
    };
  };
  const count = before + 3;
  const shown = await page.evaluate(belowDivider);
  assert.equal(shown.text, `${count} unread messages`);
  assert.equal(shown.below[0], 'other', 'the divider sits right above the first unread message');
  assert.equal(shown.below.filter((who) => who === 'other').length, count,
    `the ${count} unread messages are the others' messages below it: ${JSON.stringify(shown.below)}`);
  await waitForUnread(page, 'Alice & Bob', 0, 'the list\'s count to clear once the conversation is open');

  // A message arriving while it is open is read at once: the divider keeps its count.
  await bob.send('Alice & Bob', 'Read as it arrives');
  await waitForMessage(page, 'Read as it arrives');
  assert.equal((await page.evaluate(belowDivider)).text, `${count} unread messages`);
  assert.deepEqual(errors, []);
});
