// Where the user blocked storage, the demo still signs in and chats, with the data in memory, and
// tells the user that nothing is kept on the device; a message sent then reaches the server. The
// page is blocked as Chromium blocks a site whose cookies the user blocked: `indexedDB.open` fails
// (here with Firefox's `SecurityError`) and so does the Cache API the demo keeps its sign-in in.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { newPage, openConversation, openDemo, sendMessage, waitForMessage, waitInPage } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

function blockStorage() {
  IDBFactory.prototype.open = () => {
    throw new DOMException('The operation is insecure.', 'SecurityError');
  };
  const refused = () => Promise.reject(new DOMException(
    'An attempt was made to break through the security policy of the user agent.', 'SecurityError'));
  for (const method of ['open', 'delete', 'match', 'has', 'keys']) CacheStorage.prototype[method] = refused;
}

it('with storage blocked the demo chats from memory and says nothing is kept', async (t) => {
  const server = await startServer({ test: t, seedMessages: 50 });
  const { page, errors } = await newPage(browser, t);
  await page.addInitScript(blockStorage);
  await openDemo(page, server.url, 'alice');

  const notice = page.locator('#banner .notice[data-key="memory"]');
  assert.match(await notice.innerText(), /keeps no copy of the chat on this device/);
  assert.equal(await page.evaluate(async () => (await indexedDB.databases()).length), 0, 'no database');

  await openConversation(page, 'General');
  const body = `Sent from memory ${Date.now()}`;
  await sendMessage(page, body);
  await waitForMessage(page, body, { status: 'sent' });
  const onServer = await server.api('alice').messages('General', { limit: 5 });
  assert.equal(onServer.filter((m) => m.body === body).length, 1, 'the server holds it once');
  assert.deepEqual(errors, []);
});

it('a database a newer version of the app wrote stays as it is, and this older version chats from memory', async (t) => {
  const server = await startServer({ test: t, seedMessages: 50 });
  const { page, errors } = await newPage(browser, t);
  const name = `chat-sync|${server.url}|u-alice`;
  // A newer version of the app keeps Alice's chat here, at a schema version this one does not know.
  await page.goto(`${server.url}/manifest.webmanifest`);
  await page.evaluate((name) => new Promise((resolve, reject) => {
    const request = indexedDB.open(name, 1000);
    request.onupgradeneeded = () => request.result.createObjectStore('later').put('kept', 'record');
    request.onsuccess = () => { request.result.close(); resolve(); };
    request.onerror = () => reject(request.error);
  }), name);

  await openDemo(page, server.url, 'alice');
  const notice = page.locator('#banner .notice[data-key="memory"]');
  assert.match(await notice.innerText(), /newer version of this app/);
  await openConversation(page, 'General');
  const body = `Sent by the older version ${Date.now()}`;
  await sendMessage(page, body);
  await waitForMessage(page, body, { status: 'sent' });
  const onServer = await server.api('alice').messages('General', { limit: 5 });
  assert.equal(onServer.filter((m) => m.body === body).length, 1, 'the server holds it once');

  const newer = () => page.evaluate((name) => new Promise((resolve, reject) => {
    const request = indexedDB.open(name);
    request.onsuccess = () => {
      const db = request.result;
      const read = db.transaction('later').objectStore('later').get('record');
      read.onsuccess = () => { db.close(); resolve({ version: db.version, record: read.result }); };
    };
    request.onerror = () => reject(request.error);
  }), name);
  assert.deepEqual(await newer(), { version: 1000, record: 'kept' }, 'the newer version\'s database is untouched');

  // Signing out deletes it all the same: nothing of Alice's stays on the device.
  await page.locator('#sign-out').click();
  await waitInPage(page, () => !document.getElementById('sign-in').hidden, { message: 'the sign-in screen' });
  const names = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  assert.ok(!names.includes(name), `${name} deleted (${names})`);
  assert.deepEqual(errors, []);
});
