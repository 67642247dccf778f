// After a deploy, the service worker keeps the package it was installed with (glue and wasm, which
// must be of one build) in its cache: the worker's own glue is of that build, so a page's fetch of
// a newer wasm must not replace it (the worker's next sync would pair old glue with new wasm). The
// other shell files are refreshed as pages fetch them. The server serves a copy of www/ here, which
// the test changes as a deploy would.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, cp, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser } from './support/browser.mjs';
import { repoPath, startServer } from './support/server.mjs';
import { newPage, openDemo, pollUntil } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

const SHELL_CACHE = 'chat-sync-demo-shell-v1';

/** A copy of www/ (the package copied, not linked) without precompressed copies of the files a
 * deploy changes here (the server would serve those instead), deleted after test `t`. */
async function copyOfWww(t) {
  const dir = await mkdtemp(join(tmpdir(), 'chat-sync-www-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await cp(repoPath('www'), dir, { recursive: true, dereference: true });
  for (const file of ['pkg/chat_sync_bg.wasm', 'app.css']) {
    for (const suffix of ['.br', '.gz']) await rm(join(dir, file + suffix), { force: true });
  }
  return dir;
}

/** A wasm custom section named `name` holding `text`: appended to a module, it stays valid. */
function customSection(name, text) {
  const body = Buffer.concat([Buffer.from([name.length]), Buffer.from(name), Buffer.from(text)]);
  assert.ok(body.length < 128, 'one-byte section size');
  return Buffer.concat([Buffer.from([0, body.length]), body]);
}

/** The worker cache's copy of `path` (relative to the app), as text and size; null if none. */
function cached(page, path) {
  return page.evaluate(async ({ cacheName, path }) => {
    const response = await (await caches.open(cacheName)).match(new URL(path, location.href).href);
    if (!response) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { size: bytes.length, tail: new TextDecoder().decode(bytes.slice(-40)) };
  }, { cacheName: SHELL_CACHE, path });
}

it('a page fetching a newly deployed wasm leaves the installed one in the worker cache', async (t) => {
  const www = await copyOfWww(t);
  const server = await startServer({ test: t, seedMessages: 0, www });
  const { page, errors } = await newPage(browser, t);
  await openDemo(page, server.url, 'alice');
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((done) => navigator.serviceWorker.addEventListener('controllerchange', done, { once: true }));
    }
  });
  const installed = await cached(page, 'pkg/chat_sync_bg.wasm');
  assert.ok(installed, 'the worker cached the wasm when it installed');

  // The deploy: the wasm with other bytes (a custom section added), and a changed stylesheet.
  const wasmPath = join(www, 'pkg/chat_sync_bg.wasm');
  await writeFile(wasmPath, Buffer.concat([await readFile(wasmPath), customSection('deploy', 'second build')]));
  await appendFile(join(www, 'app.css'), '\n/* second build */\n');
  // (Last-Modified counts whole seconds: the page may have fetched them within this one.)
  const later = new Date(Date.now() + 10_000);
  for (const file of [wasmPath, join(www, 'app.css')]) await utimes(file, later, later);
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#conversations .conversation') !== null);

  await pollUntil(() => cached(page, 'app.css'), (css) => css?.tail.includes('/* second build */'),
    { message: 'the cached app.css to be the deployed one' });
  await page.waitForTimeout(1_000); // (the wasm was fetched with it)
  assert.deepEqual(await cached(page, 'pkg/chat_sync_bg.wasm'), installed, 'the installed wasm stays');
  assert.deepEqual(errors, []);
});
