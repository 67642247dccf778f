// A conversation's messages are grouped by day: a divider above each day's first message says
// which day (Today, Yesterday, a weekday, a date), each bubble shows its time, and the groups
// stay right when older history is loaded above them.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { newPage, openConversation, openDemo, sendMessage, waitForMessage, waitInPage } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Page-side: the message list in order, `{ kind: 'day' | 'message', label, at }`, where `at` is
 * the `datetime` of the item's `<time>`. */
function shownItems() {
  return [...document.getElementById('messages').children].map((item) => {
    const time = item.querySelector('time');
    return {
      kind: item.classList.contains('day') ? 'day' : 'message',
      label: time?.textContent ?? null,
      at: time ? Date.parse(time.dateTime) : NaN,
    };
  });
}

/** Page-side: what a divider for `at` should say, from the browser's own calendar. */
function expectedLabels(stamps) {
  const midnight = (ms) => { const d = new Date(ms); d.setHours(0, 0, 0, 0); return d; };
  const today = midnight(Date.now());
  return stamps.map((ms) => {
    const day = midnight(ms);
    const daysAgo = Math.round((today - day) / 86_400_000);
    if (daysAgo === 0) return 'Today';
    if (daysAgo === 1) return 'Yesterday';
    if (daysAgo < 7) return day.toLocaleDateString(undefined, { weekday: 'long' });
    return day.toLocaleDateString(undefined, { weekday: 'short', month: 'short', day: 'numeric', year: 'numeric' });
  });
}

/** Checks that every day of messages starts with one divider for that day and no divider is
 * empty or repeated; returns the dividers' stamps and labels. */
function checkGroups(items) {
  assert.equal(items[0]?.kind, 'day', 'the list starts with a divider');
  const dividers = [];
  const sameDay = (a, b) => new Date(a).toDateString() === new Date(b).toDateString();
  items.forEach((item, index) => {
    assert.ok(Number.isFinite(item.at), `item ${index} has a <time datetime>`);
    if (item.kind === 'day') {
      assert.equal(items[index + 1]?.kind, 'message', `divider ${item.label} is followed by a message`);
      assert.ok(sameDay(item.at, items[index + 1].at), `divider ${item.label} is the day of the message below it`);
      if (dividers.length > 0) {
        assert.ok(!sameDay(dividers.at(-1).at, item.at), `one divider per day (${item.label} twice)`);
      }
      dividers.push(item);
    } else {
      assert.ok(sameDay(dividers.at(-1).at, item.at), `message ${index} is in its day's group`);
      assert.match(item.label, /\d/, `message ${index} shows a time`);
    }
  });
  return dividers;
}

it('messages are grouped under one divider per day, also after older history loads', async (t) => {
  const server = await startServer({ test: t }); // the demo's two weeks of history
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice');
  await openConversation(page, 'Project Phoenix');
  const body = 'Posted today';
  await sendMessage(page, body);
  await waitForMessage(page, body, { status: 'sent' });

  const newest = checkGroups(await page.evaluate(shownItems));
  assert.ok(newest.length >= 2, `the newest page spans days: ${newest.map((d) => d.label).join(', ')}`);
  assert.equal(newest.at(-1).label, 'Today', 'the message just sent is under Today');
  assert.deepEqual(newest.map((d) => d.label),
    await page.evaluate(expectedLabels, newest.map((d) => d.at)), 'each divider names its day');

  // Scrolling to the top loads an older page above: still one divider per day.
  const shown = await page.locator('#messages .message').count();
  await page.locator('#messages-refresh').evaluate((scroller) => { scroller.scrollTop = 0; });
  await waitInPage(page, (before) => document.querySelectorAll('#messages .message').length > before,
    { arg: shown, message: `more than ${shown} messages after scrolling to the top` });
  const all = checkGroups(await page.evaluate(shownItems));
  assert.ok(all.length > newest.length, `older days got dividers: ${all.map((d) => d.label).join(', ')}`);
  assert.deepEqual(all.map((d) => d.label),
    await page.evaluate(expectedLabels, all.map((d) => d.at)), 'each divider names its day');
  assert.deepEqual(errors, []);
});
