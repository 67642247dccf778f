// A bug that stops the manager (a Rust panic) reaches the app as `internalerror`. The demo then
// says so in its status line and a notice with a Reload button, refuses to sign out until a
// reload (the stopped manager cannot delete the local data), and a reload brings it back.
// No bug is known that would stop it, so the test dispatches the event on the manager's own
// event target; tests/panic.rs checks that a real panic dispatches it.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { newPage, openDemo, waitForConversations, waitInPage } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Keeps each event target that gets an `internalerror` listener: the manager's own. */
function recordInternalErrorTargets() {
  const add = EventTarget.prototype.addEventListener;
  EventTarget.prototype.addEventListener = function addEventListener(type, ...rest) {
    if (type === 'internalerror') (window.__internalErrorTargets ??= []).push(this);
    return add.call(this, type, ...rest);
  };
}

it('after an internal error the demo says it stopped, and a reload brings it back', async (t) => {
  const server = await startServer({ test: t, seedMessages: 50 });
  const { page, errors } = await newPage(browser, t);
  await page.addInitScript(recordInternalErrorTargets);
  await openDemo(page, server.url, 'alice');

  const targets = await page.evaluate(() => {
    const message = 'chat-sync stopped after an internal error (a bug): a deliberate bug.';
    for (const target of window.__internalErrorTargets) {
      target.dispatchEvent(new CustomEvent('internalerror', { detail: { message } }));
    }
    return window.__internalErrorTargets.length;
  });
  assert.equal(targets, 1, 'one manager listens for internalerror');
  await waitInPage(page, () => document.getElementById('status').dataset.phase === 'stopped',
    { message: '#status[data-phase="stopped"]' });
  assert.match(await page.locator('#status').innerText(), /Stopped after an error: reload the page/);
  const notice = page.locator('#banner .notice[data-key="internal"]');
  assert.match(await notice.innerText(), /stopped syncing\. Messages waiting to be sent are kept\./);

  await page.locator('#sign-out').click();
  assert.match(await notice.innerText(), /Reload the page before signing out\./);
  assert.ok(await page.locator('#conversations .conversation').count() > 0, 'still signed in');

  await Promise.all([
    page.waitForEvent('load'),
    notice.getByRole('button', { name: 'Reload' }).click(),
  ]);
  await waitForConversations(page);
  assert.equal(await page.locator('#banner .notice').count(), 0, 'no notice after the reload');
  assert.notEqual(await page.locator('#status').getAttribute('data-phase'), 'stopped');
  assert.deepEqual(errors, []);
});
