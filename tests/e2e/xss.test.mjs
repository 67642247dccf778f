// Message text is text: HTML in messages (sent from the page, and received from another user
// through the server) and in a conversation title shows literally, never becomes elements, runs
// nothing; and the demo's documents carry a Content-Security-Policy whose script-src has no
// 'unsafe-inline', so even an injected handler would not run.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  newPage, openConversation, openDemo, sendMessage, shownMessages, waitForMessage, waitInPage,
} from './support/demo.mjs';

const PAYLOADS = [
  '<img src=x onerror=alert(1)>',
  '<script>window.__xss=1</script>',
  '<svg onload=alert(2)></svg><iframe src="javascript:alert(3)"></iframe>',
];
const TITLE = '<img src=y onerror=alert(4)> & <b>bold</b>';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Page-side: every element inside messages, the conversation list and the headers that a payload
 * could have created. */
function injectedElements() {
  return [...document.querySelectorAll(
    '#messages .message img, #messages .message script, #messages .message svg, #messages .message iframe, ' +
    '#conversations img, #conversations script, #conversations b, #conversations svg, ' +
    '#conversation-title *, #banner img, #banner script')]
    .map((node) => node.outerHTML);
}

it('HTML in messages and titles shows as text and runs nothing; script-src has no unsafe-inline', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const bob = server.api('bob');
  // A conversation whose title is HTML, created by Bob with Alice in it.
  const created = await bob('/v1/conversations', {
    method: 'POST',
    body: JSON.stringify({ title: TITLE, memberIds: ['u-alice'] }),
  });
  assert.equal(created.status, 201, await created.clone().text());

  const { context, page, errors } = await newPage(browser, t);
  const dialogs = [];
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__violations.push({ directive: event.effectiveDirective, blocked: event.blockedURI, sample: event.sample });
    });
  });

  // The document's CSP: no inline scripts.
  const response = await page.goto(`${server.url}/`);
  const csp = response.headers()['content-security-policy'];
  assert.ok(csp, 'the page carries a Content-Security-Policy header');
  const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0])
    .map(([name, ...values]) => [name, values]));
  const scriptSrc = directives['script-src'] ?? directives['default-src'];
  assert.ok(scriptSrc, `script-src (or default-src) in ${csp}`);
  assert.ok(!scriptSrc.includes("'unsafe-inline'"), `script-src without 'unsafe-inline': ${scriptSrc.join(' ')}`);
  assert.ok(!scriptSrc.includes("'unsafe-eval'"), `script-src without 'unsafe-eval': ${scriptSrc.join(' ')}`);
  assert.ok(!scriptSrc.includes('*') && !scriptSrc.includes('data:'), `script-src: ${scriptSrc.join(' ')}`);
  assert.deepEqual(directives['object-src'], ["'none'"]);

  await openDemo(page, server.url, 'alice', { query: '?periodicSyncMs=2000' });

  // The HTML title is listed as text.
  await waitInPage(page, (title) => [...document.querySelectorAll('#conversations .conversation-title')]
    .some((node) => node.textContent === title), { arg: TITLE, message: 'the HTML title listed as text' });

  // Sent from the page.
  await openConversation(page, 'Alice & Bob');
  for (const payload of PAYLOADS) {
    await sendMessage(page, payload);
    await waitForMessage(page, payload, { status: 'sent' });
  }
  const sent = await server.api('alice').messages('Alice & Bob', { limit: 10 });
  assert.deepEqual(sent.slice(-3).map((m) => m.body), PAYLOADS, 'the server holds the text as written');

  // Received from Bob through the server (the periodic sync brings them).
  const received = PAYLOADS.map((payload) => `${payload} (from Bob)`);
  for (const body of received) await bob.send('Alice & Bob', body);
  for (const body of received) await waitForMessage(page, body);
  await waitInPage(page, (text) => [...document.querySelectorAll('#conversations .conversation-preview')]
    .some((node) => node.textContent === text), { arg: `Bob Chen: ${received.at(-1)}`, message: 'the preview shows the last payload as text' });

  // In the conversation with the HTML title: the header and a payload there.
  await page.locator('#conversations .conversation', {
    has: page.locator('.conversation-title', { hasText: 'bold' }),
  }).click();
  await waitInPage(page, (title) => document.getElementById('conversation-title').textContent === title,
    { arg: TITLE, message: 'the HTML title as the conversation header' });
  await sendMessage(page, PAYLOADS[0]);
  await waitForMessage(page, PAYLOADS[0], { status: 'sent' });
  assert.deepEqual(await page.evaluate(injectedElements), [], 'no element created from the title or the payload');

  // Back to Alice & Bob: every payload shows literally, as the text of `.body`.
  await openConversation(page, 'Alice & Bob');
  const bodies = (await shownMessages(page)).map((m) => m.body);
  for (const text of [...PAYLOADS, ...received]) assert.ok(bodies.includes(text), `shown literally: ${text}`);
  assert.deepEqual(await page.evaluate(injectedElements), [], 'no element created from a payload');
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'window.__xss is undefined');
  assert.deepEqual(dialogs, [], 'no dialog');
  const scriptViolations = (await page.evaluate(() => window.__violations))
    .filter((v) => v.directive.startsWith('script-src') || v.directive.startsWith('frame-src') || v.directive === 'img-src');
  assert.deepEqual(scriptViolations, [], 'nothing even tried to run or load (no script/img/frame CSP violation)');
  assert.deepEqual(errors, []);
});
