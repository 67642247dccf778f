// <sync-refresh> (js/sync-refresh.js) in headless Chromium against a fake manager whose promises
// the test settles: pulls with the mouse and with touch, the button from the keyboard, the status
// line, reduced motion and error handling.

import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { repoPath, serveStatic } from './support/server.mjs';

const ITEMS = Array.from({ length: 40 }, (_, i) => `<li>Conversation ${i + 1}</li>`).join('');

// Two elements: #outer is the scroll container (a height, the list inside it); #inner does not
// scroll itself, its list does.
const FIXTURE = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>sync-refresh fixture</title>
<style>
  body { margin: 0; font: 16px/1.25 system-ui, sans-serif; display: flex; gap: 16px; }
  sync-refresh, .inner-list { width: 300px; }
  #outer { height: 320px; }
  ul { margin: 0; padding: 0; list-style: none; }
  li { height: 40px; padding: 8px; box-sizing: border-box; border-bottom: 1px solid #ddd; }
  .inner-list { height: 240px; overflow-y: auto; }
</style>
<sync-refresh id="outer" show-sync-status><ul id="outer-list">${ITEMS}</ul></sync-refresh>
<sync-refresh id="inner" threshold="64"><ul id="inner-list" class="inner-list">${ITEMS}</ul></sync-refresh>
<script type="module">
  import { SyncRefreshElement } from '/js/sync-refresh.js';

  /** Records calls, returns promises the test settles, emits status events. */
  class FakeManager extends EventTarget {
    calls = [];
    pending = [];
    listeners = 0;
    status = { isRunning: false, isOnline: true, lastSyncTime: null, lastError: null, phase: 'idle' };
    forceSync() { return this.#call('forceSync', []); }
    syncConversation(id) { return this.#call('syncConversation', [id]); }
    #call(name, args) {
      this.calls.push({ name, args });
      return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
    }
    getSyncStatus() { return { ...this.status }; }
    addEventListener(type, listener) {
      if (type === 'status') this.listeners += 1;
      super.addEventListener(type, listener);
    }
    removeEventListener(type, listener) {
      if (type === 'status') this.listeners -= 1;
      super.removeEventListener(type, listener);
    }
    setStatus(patch) {
      Object.assign(this.status, patch);
      this.dispatchEvent(new CustomEvent('status', { detail: this.getSyncStatus() }));
    }
    resolveNext(result) { this.pending.shift().resolve(result); }
    rejectNext(code, message) { this.pending.shift().reject(Object.assign(new Error(message), { code })); }
  }

  window.FakeManager = FakeManager;
  window.SyncRefreshElement = SyncRefreshElement;
  window.manager = new FakeManager();
  for (const el of document.querySelectorAll('sync-refresh')) el.manager = window.manager;
  window.events = [];
  for (const type of ['sync-start', 'sync-end']) {
    document.addEventListener(type, (event) => {
      const { detail } = event;
      window.events.push({
        type,
        target: event.target.id,
        bubbles: event.bubbles,
        composed: event.composed,
        detail: detail && 'error' in detail
          ? { error: { code: detail.error.code, message: detail.error.message } }
          : detail,
      });
    });
  }
  window.fixtureReady = true;
</script>
</html>`;

let browser;
let server;

before(async () => {
  server = await serveStatic({ '/js': repoPath('js') }, {
    '/strict-csp.html': (_, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': STRICT_CSP });
      response.end('<!doctype html><title>strict CSP</title>' +
        '<script type="module" src="/js/sync-refresh.js"></script>' +
        '<sync-refresh id="strict"><ul><li>one</li></ul></sync-refresh>');
    },
    '/fixture.html': (_, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(FIXTURE);
    },
  });
  browser = await launchBrowser();
});

/** A page whose Content-Security-Policy forbids inline styles and scripts, like the demo's. */
const STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'";

after(async () => {
  await browser?.close();
  await server?.close();
});

/** A fresh page on the fixture, with its page errors collected. */
async function open(contextOptions = {}, beforeGoto = async () => {}) {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 }, ...contextOptions });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000); // a condition not met by then will not be
  const errors = collectPageErrors(page);
  await beforeGoto(page);
  await page.goto(`${server.url}/fixture.html`);
  await page.waitForFunction(() => window.fixtureReady === true);
  return { context, page, errors };
}

const calls = (page) => page.evaluate(() => window.manager.calls);
const events = (page) => page.evaluate(() => window.events);
const statusText = (page, id = 'outer') => page.locator(`#${id} [part="status"]`).textContent();
const spinner = (page, id = 'outer') => page.locator(`#${id} [part="spinner"]`);
const indicator = (page, id = 'outer') => page.locator(`#${id} [part="indicator"]`);

/** Lets pending tasks, microtasks and a frame run: what a finished gesture would have started has started. */
const settle = (page) => page.evaluate(() => new Promise((done) => requestAnimationFrame(() => setTimeout(done))));

/** A point on the element's list, below its header. */
async function listPoint(page, id) {
  const box = await page.locator(`#${id}`).boundingBox();
  return { x: box.x + box.width / 2, y: box.y + 80 };
}

/** A mouse drag down by `dy` px on the element's list. */
async function mouseDrag(page, id, dy) {
  const { x, y } = await listPoint(page, id);
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x, y + dy, { steps: 12 });
  await page.mouse.up();
}

/** A touch drag down by `dy` px (real touch input: touch and pointer events, browser gestures). */
async function touchDrag(page, id, dy) {
  const { x, y } = await listPoint(page, id);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x, y }] });
  for (let step = 1; step <= 12; step += 1) {
    await cdp.send('Input.dispatchTouchEvent', {
      type: 'touchMove',
      touchPoints: [{ x, y: y + (dy * step) / 12 }],
    });
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await cdp.detach();
}

describe('<sync-refresh>', () => {
  let opened;
  beforeEach(() => { opened = null; });
  afterEach(async () => {
    if (opened) {
      assert.deepEqual(opened.errors.map(String), [], 'no uncaught errors or unhandled rejections');
      await opened.context.close();
    }
  });

  it('a mouse pull past the threshold syncs once with a spinner, then hides it', async () => {
    opened = await open();
    const { page } = opened;
    await mouseDrag(page, 'outer', 200);
    await spinner(page).waitFor({ state: 'visible' });
    assert.equal(await page.locator('#outer').getAttribute('aria-busy'), 'true');
    assert.equal(await statusText(page), 'Syncing…');
    assert.deepEqual(await calls(page), [{ name: 'forceSync', args: [] }]);

    // A second pull, the button and refresh() while it runs start nothing new.
    await mouseDrag(page, 'outer', 200);
    await page.locator('#outer [part="button"]').click();
    const same = await page.evaluate(() => {
      const el = document.getElementById('outer');
      return el.refresh() === el.refresh();
    });
    assert.equal(same, true, 'refresh() during a sync returns the running promise');
    await settle(page);
    assert.equal((await calls(page)).length, 1);

    await page.evaluate(() => window.manager.resolveNext({ changes: 3, hasMore: false }));
    await spinner(page).waitFor({ state: 'hidden' });
    await indicator(page).waitFor({ state: 'hidden' });
    assert.equal(await page.locator('#outer').getAttribute('aria-busy'), null);
    assert.deepEqual(await events(page), [
      { type: 'sync-start', target: 'outer', bubbles: true, composed: true, detail: { conversationId: null } },
      { type: 'sync-end', target: 'outer', bubbles: true, composed: true, detail: { result: { changes: 3, hasMore: false } } },
    ]);
    assert.equal(await statusText(page), 'Synced just now');
    assert.equal(await page.locator('#outer [role="status"]').textContent(), 'Synced: 3 updates');
  });

  it('the indicator follows the pointer with resistance', async () => {
    opened = await open();
    const { page } = opened;
    const { x, y } = await listPoint(page, 'outer');
    await page.mouse.move(x, y);
    await page.mouse.down();
    await page.mouse.move(x, y + 50, { steps: 5 });
    const at50 = (await indicator(page).boundingBox()).y;
    await page.mouse.move(x, y + 100, { steps: 5 });
    const at100 = (await indicator(page).boundingBox()).y;
    await page.mouse.move(x, y + 400, { steps: 5 });
    const at400 = (await indicator(page).boundingBox()).y;
    assert.ok(at100 > at50 && at100 - at50 < 50, `50 px more pull moved the indicator ${at100 - at50} px`);
    assert.ok(at400 - at100 < 300 / 2, `300 px more pull moved the indicator ${at400 - at100} px`);
    // Dragging back up before release cancels.
    await page.mouse.move(x, y + 10, { steps: 5 });
    await page.mouse.up();
    await indicator(page).waitFor({ state: 'hidden' });
    await settle(page);
    assert.deepEqual(await calls(page), []);
  });

  it('a short pull snaps back without syncing', async () => {
    opened = await open();
    const { page } = opened;
    await mouseDrag(page, 'outer', 40);
    await indicator(page).waitFor({ state: 'hidden' });
    await settle(page);
    assert.deepEqual(await calls(page), []);
    assert.deepEqual(await events(page), []);
  });

  it('does not pull while the element or the list inside it is scrolled down', async () => {
    opened = await open();
    const { page } = opened;
    await page.evaluate(() => { document.getElementById('outer').scrollTop = 200; });
    await mouseDrag(page, 'outer', 200);
    await page.evaluate(() => { document.getElementById('inner-list').scrollTop = 120; });
    await mouseDrag(page, 'inner', 200);
    await settle(page);
    assert.deepEqual(await calls(page), []);
    assert.equal(await spinner(page, 'outer').isVisible(), false);
    assert.equal(await spinner(page, 'inner').isVisible(), false);

    // Back at the top, the same pull on the inner list syncs.
    await page.evaluate(() => { document.getElementById('inner-list').scrollTop = 0; });
    await mouseDrag(page, 'inner', 200);
    await spinner(page, 'inner').waitFor({ state: 'visible' });
    assert.deepEqual(await calls(page), [{ name: 'forceSync', args: [] }]);
    await page.evaluate(() => window.manager.resolveNext({ changes: 0, hasMore: false }));
    await spinner(page, 'inner').waitFor({ state: 'hidden' });
  });

  it('a touch pull syncs, and touch scrolling still scrolls the list', async () => {
    opened = await open({ hasTouch: true });
    const { page } = opened;
    await touchDrag(page, 'outer', 200);
    await spinner(page).waitFor({ state: 'visible' });
    assert.deepEqual(await calls(page), [{ name: 'forceSync', args: [] }]);
    await page.evaluate(() => window.manager.resolveNext({ changes: 0, hasMore: false }));
    await spinner(page).waitFor({ state: 'hidden' });
    // The same on a list that scrolls itself inside an unbounded element.
    await touchDrag(page, 'inner', 200);
    await spinner(page, 'inner').waitFor({ state: 'visible' });
    await page.evaluate(() => window.manager.resolveNext({ changes: 0, hasMore: false }));
    await spinner(page, 'inner').waitFor({ state: 'hidden' });
    assert.equal((await calls(page)).length, 2);

    // Scrolled down, a downward swipe scrolls the list back up instead of pulling.
    await page.evaluate(() => { document.getElementById('outer').scrollTop = 300; });
    await settle(page);
    await touchDrag(page, 'outer', 150);
    await page.waitForFunction(() => document.getElementById('outer').scrollTop < 300);
    // An upward swipe at the top scrolls down.
    await page.evaluate(() => { document.getElementById('outer').scrollTop = 0; });
    await settle(page);
    await touchDrag(page, 'outer', -150);
    await page.waitForFunction(() => document.getElementById('outer').scrollTop > 0);
    await settle(page);
    assert.equal((await calls(page)).length, 2);
  });

  it('at the top, the browser keeps pinch-zoom, panning sideways and scrolling down', async () => {
    opened = await open({ hasTouch: true });
    const { page } = opened;
    const touchAction = await page.locator('#outer').evaluate((element) =>
      getComputedStyle(element.shadowRoot.querySelector('.content.at-top')).touchAction);
    assert.deepEqual(touchAction.split(' ').sort(), ['pan-down', 'pan-x', 'pinch-zoom']);
  });

  it('a tap whose finger drifts a few pixels down is a tap, not a pull', async () => {
    opened = await open({ hasTouch: true });
    const { page } = opened;
    await page.evaluate(() => {
      window.taps = 0;
      document.getElementById('outer').addEventListener('click', () => { window.taps += 1; });
    });
    await touchDrag(page, 'outer', 7);
    await page.waitForFunction(() => window.taps === 1, null, { timeout: 5_000 });
    assert.deepEqual(await calls(page), []);
  });

  it('with conversation-id it syncs that conversation', async () => {
    opened = await open();
    const { page } = opened;
    await page.evaluate(() => document.getElementById('outer').setAttribute('conversation-id', 'c-42'));
    await mouseDrag(page, 'outer', 200);
    await page.waitForFunction(() => window.manager.calls.length === 1);
    assert.deepEqual(await calls(page), [{ name: 'syncConversation', args: ['c-42'] }]);
    await page.evaluate(() => window.manager.resolveNext({ changes: 0, hasMore: false }));
    await page.waitForFunction(() => window.events.length === 2);
    assert.deepEqual((await events(page))[0].detail, { conversationId: 'c-42' });
  });

  it('a manager replaced during a sync starts afresh, and the old sync\'s outcome is not its', async () => {
    opened = await open();
    const { page } = opened;
    const button = page.locator('#outer').getByRole('button', { name: 'Refresh' });
    await button.click();
    await spinner(page).waitFor({ state: 'visible' });
    await page.evaluate(() => {
      window.old = window.manager;
      window.manager = new window.FakeManager();
      document.getElementById('outer').manager = window.manager;
    });
    await spinner(page).waitFor({ state: 'hidden' });
    await button.click();
    await spinner(page).waitFor({ state: 'visible' });
    assert.deepEqual(await calls(page), [{ name: 'forceSync', args: [] }], 'the new manager syncs');
    await page.evaluate(() => window.old.rejectNext('disposed', 'the manager was disposed'));
    await settle(page);
    assert.equal(await spinner(page).isVisible(), true, 'the new sync still runs');
    await page.evaluate(() => window.manager.resolveNext({ changes: 0, hasMore: false }));
    await spinner(page).waitFor({ state: 'hidden' });
    assert.doesNotMatch(await statusText(page), /disposed/);
  });

  it('the refresh button works from the keyboard', async () => {
    opened = await open();
    const { page } = opened;
    const button = page.locator('#outer').getByRole('button', { name: 'Refresh' });
    await button.focus();
    assert.equal(await button.evaluate((el) => el.matches(':focus-visible') || el.matches(':focus')), true);
    await page.keyboard.press('Enter');
    await spinner(page).waitFor({ state: 'visible' });
    assert.deepEqual(await calls(page), [{ name: 'forceSync', args: [] }]);
    await page.evaluate(() => window.manager.resolveNext({ changes: 1, hasMore: false }));
    await spinner(page).waitFor({ state: 'hidden' });
    await page.keyboard.press('Space');
    await page.waitForFunction(() => window.manager.calls.length === 2);
    await page.evaluate(() => window.manager.resolveNext({ changes: 0, hasMore: false }));
    await spinner(page).waitFor({ state: 'hidden' });
  });

  it('an offline error shows "Offline" and escapes as no unhandled rejection', async () => {
    opened = await open();
    const { page, errors } = opened;
    await mouseDrag(page, 'outer', 200);
    await page.waitForFunction(() => window.manager.pending.length === 1);
    await page.evaluate(() => window.manager.rejectNext('offline', 'the device is offline'));
    await page.waitForFunction(() => window.events.length === 2);
    assert.equal(await statusText(page), 'Offline');
    assert.deepEqual((await events(page))[1].detail, { error: { code: 'offline', message: 'the device is offline' } });
    assert.equal(await page.locator('#outer [role="status"]').textContent(), 'Offline');
    assert.equal(await spinner(page).isVisible(), false);

    // Another error shows its message; refresh() resolves with it rather than rejecting.
    const outcome = await page.evaluate(async () => {
      const done = document.getElementById('outer').refresh();
      window.manager.rejectNext('server', 'the server failed (503)');
      const { error } = await done;
      return error.code;
    });
    assert.equal(outcome, 'server');
    assert.equal(await statusText(page), 'the server failed (503)');

    // A later successful sync clears the error.
    await page.evaluate(async () => {
      const done = document.getElementById('outer').refresh();
      window.manager.resolveNext({ changes: 0, hasMore: false });
      await done;
    });
    assert.equal(await statusText(page), 'Synced just now');
    await settle(page);
    assert.deepEqual(errors.map(String), []);

    // The check can fail: an unhandled rejection in the page is seen.
    const seen = page.waitForEvent('pageerror');
    await page.evaluate(() => { Promise.reject(new Error('probe')); });
    assert.match(String(await seen), /probe/);
    errors.length = 0;
  });

  it('the status line follows status events and the clock', async () => {
    opened = await open({}, (page) => page.clock.install({ time: new Date('2025-01-01T12:00:00Z') }));
    const { page } = opened;
    assert.equal(await statusText(page), 'Not synced yet');
    await page.evaluate(() => window.manager.setStatus({ lastSyncTime: '2025-01-01T11:58:00.000Z' }));
    assert.equal(await statusText(page), 'Synced 2 min ago');
    await page.clock.runFor(60_000);
    assert.equal(await statusText(page), 'Synced 3 min ago');
    await page.evaluate(() => window.manager.setStatus({ isRunning: true }));
    assert.equal(await statusText(page), 'Syncing…');
    await page.evaluate(() => window.manager.setStatus({ isRunning: false, isOnline: false, phase: 'offline' }));
    assert.equal(await statusText(page), 'Offline');
    // Without the attribute, no status line.
    await page.evaluate(() => document.getElementById('outer').removeAttribute('show-sync-status'));
    assert.equal(await page.locator('#outer [part="status"]').isVisible(), false);
  });

  it('listens to the manager only while connected, and to the current one only', async () => {
    opened = await open();
    const { page } = opened;
    const counts = await page.evaluate(() => {
      const first = window.manager; // both elements listen to it
      const second = new window.FakeManager();
      const outer = document.getElementById('outer');
      const seen = [first.listeners];
      outer.manager = second;
      seen.push(first.listeners, second.listeners);
      outer.remove();
      seen.push(second.listeners);
      document.body.append(outer);
      seen.push(second.listeners);
      return seen;
    });
    assert.deepEqual(counts, [2, 1, 1, 0, 1]);
  });

  it('with reduced motion the spinner does not spin', async () => {
    opened = await open();
    const { page } = opened;
    const animation = () => spinner(page).evaluate((el) => getComputedStyle(el).animationName);
    const transition = () => indicator(page).evaluate((el) => getComputedStyle(el).transitionDuration);

    await page.evaluate(() => void document.getElementById('outer').refresh());
    await spinner(page).waitFor({ state: 'visible' });
    assert.equal(await animation(), 'sync-refresh-spin');
    await page.emulateMedia({ reducedMotion: 'reduce' });
    await spinner(page).waitFor({ state: 'visible' });
    assert.equal(await animation(), 'none');
    assert.equal(await transition(), '0s');
    await page.evaluate(() => window.manager.resolveNext({ changes: 0, hasMore: false }));
    await spinner(page).waitFor({ state: 'hidden' });
  });

  it('is defined once even if the module is loaded twice', async () => {
    opened = await open();
    const { page } = opened;
    const same = await page.evaluate(async () => {
      const again = await import('/js/sync-refresh.js?again');
      return customElements.get('sync-refresh') === window.SyncRefreshElement
        && again.SyncRefreshElement !== window.SyncRefreshElement;
    });
    assert.equal(same, true);
  });
});

it('is styled on a page whose CSP forbids inline styles', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const violations = [];
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) violations.push(message.text());
  });
  await page.goto(`${server.url}/strict-csp.html`);
  await page.waitForFunction(() => customElements.get('sync-refresh') !== undefined);
  // `:host { overflow-y: auto }` and the hidden spinner come from the element's own stylesheet.
  const styled = await page.evaluate(() => {
    const element = document.getElementById('strict');
    const spinner = element.shadowRoot.querySelector('[part="spinner"]');
    return { overflow: getComputedStyle(element).overflowY, spinner: getComputedStyle(spinner).display };
  });
  assert.deepEqual(styled, { overflow: 'auto', spinner: 'none' });
  assert.deepEqual(violations, []);
  await context.close();
});
