// Opens the staged consumer app (stage.mjs) in headless Chromium and checks what it found: the
// demo user Alice's conversations and a finished sync. Exits non-zero on any failed check, on
// an uncaught error in the page and on any console error, which it prints.
//   node run.mjs URL [SCREENSHOT.png]
import { chromium } from 'playwright-core';

const [url, screenshot] = process.argv.slice(2);
if (!url) throw new Error('usage: node run.mjs URL [SCREENSHOT.png]');

/** Alice's conversations in the server's demo data (server/src/seed.rs, CONVERSATIONS). */
const ALICE_CONVERSATIONS = ['Alice & Bob', 'Book club', 'General', 'Project Phoenix'];
const TIMEOUT_MS = 60_000;

const failures = [];
const check = (ok, what) => {
  console.log(`    ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const consoleErrors = [];
let report = null;
let state = 'timeout';
try {
  const page = await browser.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.stack ?? error.message}`));
  await page.goto(url);
  try {
    await page.waitForSelector('body[data-state]', { timeout: TIMEOUT_MS });
    state = await page.getAttribute('body', 'data-state');
    report = JSON.parse(await page.textContent('#report'));
  } catch (error) {
    console.log(`    the page did not finish within ${TIMEOUT_MS / 1000} s: ${error.message}`);
  }
  if (screenshot) await page.screenshot({ path: screenshot });
} finally {
  await browser.close();
}

check(state === 'done', `the page finished (state: ${state})`);
if (report) {
  check(report.error === null, `no error (${JSON.stringify(report.error)})`);
  const status = report.status ?? {};
  const synced = Date.parse(status.lastSyncTime ?? '');
  check(
    Number.isFinite(synced) && Math.abs(Date.now() - synced) < 10 * 60_000,
    `getSyncStatus().lastSyncTime is set, just now (${status.lastSyncTime})`,
  );
  check(status.isInitialized === true && status.storage === 'indexeddb', 'initialized, on IndexedDB');
  check(typeof report.forceSync?.changes === 'number', `forceSync resolved ${JSON.stringify(report.forceSync)}`);
  const titles = report.conversations.map((c) => c.title).sort();
  check(
    JSON.stringify(titles) === JSON.stringify(ALICE_CONVERSATIONS),
    `listConversations() lists Alice's ${ALICE_CONVERSATIONS.length} conversations (${titles.join(', ')})`,
  );
  check(
    report.conversations.length > 0 && report.conversations.every((c) => c.memberIds.includes('u-alice')),
    'Alice is a member of each',
  );
  check(
    report.conversations.every((c) => typeof c.last === 'string' && Number.isInteger(c.unreadCount)),
    'each conversation has its last message and, after the sync, an unread count',
  );
  check(
    report.messages.length > 0 && report.messages.every((m) => m.status === 'sent' && m.id),
    `listMessages() of the first conversation: ${report.messages.length} sent messages`,
  );
  check(
    report.newestPage > 0 && report.newestPage <= 50,
    `listMessages() without options: the newest page (${report.newestPage} messages)`,
  );
  check(report.outbox === 0, `listOutbox(): nothing waiting after a sync (${report.outbox})`);
}
check(consoleErrors.length === 0, `no console errors (${consoleErrors.length})`);
for (const error of consoleErrors) console.log(`      console: ${error}`);

if (failures.length > 0) {
  console.log(`consumer: ${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('consumer: all checks passed');
