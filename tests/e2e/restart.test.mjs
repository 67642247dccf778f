// The outbox survives the app going away: messages written offline stay pending across closing the
// page (same browser context) and across killing the whole browser (SIGKILL, same profile), and are
// delivered exactly once when the network returns.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { collectPageErrors, launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import {
  openConversation, openDemo, pollUntil, sendMessage, shownMessages, waitForConversations, waitForMessage,
  waitInPage,
} from './support/demo.mjs';

const CONVERSATION = 'Alice & Bob';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Signs in, opens the conversation, waits for the service worker (it serves the offline start). */
async function prepare(page, server) {
  await openDemo(page, server.url, 'alice');
  await openConversation(page, CONVERSATION);
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((done) => navigator.serviceWorker.addEventListener('controllerchange', done, { once: true }));
    }
  });
}

/** Offline, writes two messages and waits until both show pending. */
async function writeOffline(page, context, tag) {
  await context.setOffline(true);
  await waitInPage(page, () => document.getElementById('status-text').textContent.startsWith('Offline'),
    { message: '#status-text to say Offline' });
  const bodies = [`${tag} first ${Date.now()}`, `${tag} second ${Date.now()}`];
  for (const body of bodies) {
    await sendMessage(page, body);
    await waitForMessage(page, body, { status: 'pending' });
  }
  return bodies;
}

/** The page of a restarted app (still offline) shows both pending; online, they are delivered once. */
async function checkAfterRestart(page, context, server, bodies) {
  // The app shell comes from the service worker's cache, the messages from IndexedDB.
  await waitForConversations(page, { idle: false });
  await openConversation(page, CONVERSATION);
  for (const body of bodies) await waitForMessage(page, body, { status: 'pending' });
  await waitInPage(page, () => document.getElementById('status-text').textContent === 'Offline · 2 waiting to send',
    { message: 'the status line "Offline · 2 waiting to send" after the restart' });
  const alice = server.api('alice');
  const offline = await alice.messages(CONVERSATION, { limit: 20 });
  assert.ok(!offline.some((m) => bodies.includes(m.body)), 'nothing delivered while offline');

  await context.setOffline(false);
  for (const body of bodies) await waitForMessage(page, body, { status: 'sent' });
  await waitInPage(page, () => !document.getElementById('status-text').textContent.includes('waiting'),
    { message: 'nothing left waiting to send' });
  const onServer = await pollUntil(() => alice.messages(CONVERSATION, { limit: 20 }),
    (messages) => bodies.every((body) => messages.some((m) => m.body === body)),
    { message: 'both messages on the server' });
  const ours = onServer.filter((m) => bodies.includes(m.body));
  assert.deepEqual(ours.map((m) => m.body), bodies, 'each once, in the order written');
  const shown = (await shownMessages(page)).filter((m) => bodies.includes(m.body));
  assert.deepEqual(shown.map((m) => [m.body, m.status]), bodies.map((body) => [body, 'sent']));
  assert.deepEqual(ours.map((m) => m.clientMessageId), shown.map((m) => m.clientMessageId));
}

it('closing the page keeps the outbox: pending in a new page, then delivered once', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  t.after(() => context.close());
  let page = await context.newPage();
  const errors = collectPageErrors(page);
  await prepare(page, server);
  const bodies = await writeOffline(page, context, 'closed page');

  await page.close();
  page = await context.newPage();
  const errorsAfter = collectPageErrors(page);
  const response = await page.goto(`${server.url}/`);
  assert.ok(response?.fromServiceWorker(), 'offline, the page came from the service worker');
  await checkAfterRestart(page, context, server, bodies);
  assert.deepEqual([...errors, ...errorsAfter], []);
});

it('killing the browser keeps the outbox: pending after a relaunch, then delivered once', async (t) => {
  const server = await startServer({ test: t, seedMessages: 300 });
  const profile = await mkdtemp(join(tmpdir(), 'chat-sync-e2e-profile-'));
  let context;
  // One hook, in this order: node runs `t.after` hooks first-registered first, and removing the
  // profile while the relaunched browser still writes to it fails with ENOTEMPTY. The retries
  // cover helper processes of the killed browser that outlive it for a moment.
  t.after(async () => {
    await context?.close();
    await rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });
  const launch = (options = {}) => chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox'],
    viewport: { width: 1280, height: 800 },
    ...options,
  });

  context = await launch();
  let page = context.pages()[0] ?? await context.newPage();
  await prepare(page, server);
  const bodies = await writeOffline(page, context, 'killed browser');

  // A crash, not a shutdown: SIGKILL the browser process of this profile (found by its
  // --user-data-dir), so nothing gets to flush or say goodbye.
  const pid = await browserPid(profile);
  const closed = new Promise((done) => context.once('close', done));
  process.kill(pid, 'SIGKILL');
  await closed;

  // Offline from the first moment: online even briefly, the relaunched browser may deliver the
  // outbox at once (the service worker's Background Sync fires when the browser starts).
  context = await launch({ offline: true });
  page = context.pages()[0] ?? await context.newPage();
  const errors = collectPageErrors(page);
  const response = await page.goto(`${server.url}/`);
  assert.ok(response?.fromServiceWorker(), 'offline, the page came from the service worker');
  await checkAfterRestart(page, context, server, bodies);
  assert.deepEqual(errors, []);
});

/** The pid of the Chromium browser process (not a renderer or helper) using `profile`. */
async function browserPid(profile) {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = argv.split('\0');
    if (args.includes(`--user-data-dir=${profile}`) && !args.some((a) => a.startsWith('--type='))) {
      return Number(entry);
    }
  }
  throw new Error(`no browser process with --user-data-dir=${profile}`);
}
