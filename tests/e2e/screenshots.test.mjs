// Screenshots of the demo's conversation view, on a desktop (1280×800) and a phone (390×844):
// target/e2e/screenshots/desktop.png and phone.png; with UPDATE_SCREENSHOTS=1 also
// docs/screenshot-desktop.png and docs/screenshot-phone.png (shown in README.md).

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { repoPath, startServer } from './support/server.mjs';
import { openConversation, openDemo, sendMessage, waitForMessage, waitInPage } from './support/demo.mjs';

const OUT = repoPath('target/e2e/screenshots');
const UPDATE = process.env.UPDATE_SCREENSHOTS === '1';

const VIEWS = [
  { name: 'desktop', contextOptions: { viewport: { width: 1280, height: 800 } } },
  {
    name: 'phone',
    contextOptions: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 },
  },
];

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Width and height from a PNG's IHDR chunk. */
async function pngSize(file) {
  const bytes = await readFile(file);
  assert.equal(bytes.subarray(1, 4).toString('latin1'), 'PNG', `${file} is a PNG`);
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

for (const { name, contextOptions } of VIEWS) {
  it(`${name}: a conversation with messages`, async (t) => {
    const server = await startServer({ test: t }); // the full demo history, as `make demo` shows it
    const context = await browser.newContext(contextOptions);
    t.after(() => context.close());
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await openDemo(page, server.url, 'alice');
    await openConversation(page, 'Project Phoenix');
    // One message of Alice's own, sent from this page, so the view shows a delivery mark.
    // (No emoji: the test machine may have no emoji font.)
    const body = 'Pushed the sync fix, reviews welcome!';
    await sendMessage(page, body);
    await waitForMessage(page, body, { status: 'sent' });
    if (name === 'phone') {
      assert.equal(await page.locator('#chat').getAttribute('data-pane'), 'conversation', 'the phone shows one pane');
    }
    // Settled: synced, idle, fonts loaded, the newest message in view, no focus ring.
    await waitInPage(page, () => document.getElementById('status').dataset.phase === 'idle' &&
      document.getElementById('status-text').textContent.startsWith('Synced'),
    { message: '#status idle and "Synced …"' });
    await page.evaluate(async () => {
      await document.fonts.ready;
      document.activeElement?.blur();
      const scroller = document.getElementById('messages-refresh');
      scroller.scrollTop = scroller.scrollHeight;
    });
    await waitInPage(page, () => {
      const scroller = document.getElementById('messages-refresh');
      return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 2;
    }, { message: 'the messages scrolled to the newest' });

    await mkdir(OUT, { recursive: true });
    const file = `${OUT}/${name}.png`;
    await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
    assert.deepEqual(await pngSize(file), contextOptions.viewport);
    if (UPDATE) await copyFile(file, repoPath(`docs/screenshot-${name}.png`));
    assert.deepEqual(errors, []);
  });
}
