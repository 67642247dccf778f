// The conversation list's read, timed in the demo (not part of `make bench`): `listConversations`,
// which brings each conversation's last message and unread count in one IndexedDB transaction,
// against the baseline of reading them row by row as apps had to before (each conversation's
// newest 100 messages and its read markers, all at once; without the list itself), in the same
// page and run.
//
//   node bench/conversation-list.mjs   (after `tests/e2e/run.sh`, or `make pkg` and
//                                       `cargo build -p chat-sync-server`)
//   CONVERSATIONS=200                  conversations added to the demo's 6, 5 messages each
//   UNREAD=0                           and one more with this many messages, none read
//
// Alice signs in to the demo and syncs, then a second manager in the page times each way 11 times;
// the medians and their ratio are printed.

import { launchBrowser } from '../tests/e2e/support/browser.mjs';
import { startServer } from '../tests/e2e/support/server.mjs';
import { openDemo } from '../tests/e2e/support/demo.mjs';

const extra = Number(process.env.CONVERSATIONS ?? 200);
const unread = Number(process.env.UNREAD ?? 0);
let stopServer = async () => {};
const server = await startServer({ test: { after: (stop) => { stopServer = stop; }, diagnostic() {} } });
const bob = server.api('bob');
for (let i = 0; i < extra; i++) {
  const response = await bob('/v1/conversations', {
    method: 'POST',
    body: JSON.stringify({ title: `Extra ${i}`, memberIds: ['u-alice'] }),
  });
  const { conversation } = await response.json();
  for (let k = 0; k < 5; k++) await bob.send(conversation.id, `message ${k} of ${i}`);
}
if (unread > 0) {
  const response = await bob('/v1/conversations', {
    method: 'POST',
    body: JSON.stringify({ title: 'Never read', memberIds: ['u-alice'] }),
  });
  const { conversation } = await response.json();
  for (let k = 0; k < unread; k += 50) {
    await Promise.all(Array.from({ length: Math.min(50, unread - k) },
      (_, j) => bob.send(conversation.id, `unread message ${k + j}, of some length like a chat line`)));
  }
}

const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await openDemo(page, server.url, 'alice');
  const result = await page.evaluate(async (url) => {
    const { BackgroundSyncManager } = await import(url);
    const sync = await BackgroundSyncManager.create({
      serverUrl: location.origin, token: 'demo-alice', userId: 'u-alice', logLevel: 'off',
    });
    const median = async (read) => {
      const times = [];
      for (let i = 0; i < 11; i++) {
        const start = performance.now();
        await read();
        times.push(performance.now() - start);
      }
      return times.sort((a, b) => a - b)[5];
    };
    const conversations = await sync.listConversations();
    const unread = conversations.reduce((sum, c) => sum + (c.unreadCount ?? 0), 0);
    const summaries = await median(() => sync.listConversations());
    const rowByRow = await median(() => Promise.all(conversations.map((c) => Promise.all([
      sync.listMessages(c.id, { limit: 100 }), sync.listReadMarkers(c.id)]))));
    sync.dispose();
    return { conversations: conversations.length, unread, summaries, rowByRow };
  }, new URL('/pkg/index.js', server.url).href);
  console.log(`${result.conversations} conversations, ${result.unread} unread messages in all`);
  console.log(`listConversations (last message and unread count): ${result.summaries.toFixed(1)} ms (median of 11)`);
  console.log(`baseline, each row's newest 100 messages and read markers: ${result.rowByRow.toFixed(1)} ms`);
  console.log(`ratio: ${(result.summaries / result.rowByRow).toFixed(2)}× the baseline`);
} finally {
  await browser.close();
  await stopServer();
}
