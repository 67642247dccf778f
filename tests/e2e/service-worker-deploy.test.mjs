// After a deploy, the service worker keeps the package it was installed with (glue and wasm, which
// must be of one build) in its cache: the worker's own glue is of that build, so a page's fetch of
// a newer wasm must not replace it (the worker's next sync would pair old glue with new wasm). The
// other shell files are refreshed as pages fetch them. A deploy of a new package, even one whose
// only change is the wasm (the glue stays the same when only the Rust inside changes), installs a
// new worker, which caches the new package (the build id the package build writes, which the
// worker imports, changes with it). The server serves a copy of www/ here, which the test changes
// as a deploy would.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, cp, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { launchBrowser } from './support/browser.mjs';
import { repoPath, startServer } from './support/server.mjs';
import { newPage, openDemo, pollUntil } from './support/demo.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** The names of the worker's app-shell caches (one per build). */
const SHELL_CACHES = 'chat-sync-demo-shell-';

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

/** The worker cache's copy of `path` (relative to the app), as text and size; null if none (or
 * while two builds' caches are there, an old worker's and a new one's). */
function cached(page, path) {
  return page.evaluate(async ({ prefix, path }) => {
    const names = (await caches.keys()).filter((name) => name.startsWith(prefix));
    if (names.length !== 1) return null;
    const response = await (await caches.open(names[0])).match(new URL(path, location.href).href);
    if (!response) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { size: bytes.length, tail: new TextDecoder().decode(bytes.slice(-40)) };
  }, { prefix: SHELL_CACHES, path });
}

/** Opens the demo and waits until the service worker controls the page. */
async function openControlled(page, url) {
  await openDemo(page, url, 'alice');
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((done) => navigator.serviceWorker.addEventListener('controllerchange', done, { once: true }));
    }
  });
}

/** Sets the modification time of `files` 10 s ahead (Last-Modified counts whole seconds: the page
 * may have fetched them within this one, and would be told they did not change). */
async function touchLater(files) {
  const later = new Date(Date.now() + 10_000);
  for (const file of files) await utimes(file, later, later);
}

it('a page fetching a newly deployed wasm leaves the installed one in the worker cache', async (t) => {
  const www = await copyOfWww(t);
  const server = await startServer({ test: t, seedMessages: 0, www });
  const { page, errors } = await newPage(browser, t);
  await openControlled(page, server.url);
  const installed = await cached(page, 'pkg/chat_sync_bg.wasm');
  assert.ok(installed, 'the worker cached the wasm when it installed');

  // The deploy: the wasm with other bytes (a custom section added), and a changed stylesheet.
  const wasmPath = join(www, 'pkg/chat_sync_bg.wasm');
  await writeFile(wasmPath, Buffer.concat([await readFile(wasmPath), customSection('deploy', 'second build')]));
  await appendFile(join(www, 'app.css'), '\n/* second build */\n');
  await touchLater([wasmPath, join(www, 'app.css')]);
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#conversations .conversation') !== null);

  await pollUntil(() => cached(page, 'app.css'), (css) => css?.tail.includes('/* second build */'),
    { message: 'the cached app.css to be the deployed one' });
  await page.waitForTimeout(1_000); // (the wasm was fetched with it)
  assert.deepEqual(await cached(page, 'pkg/chat_sync_bg.wasm'), installed, 'the installed wasm stays');
  assert.deepEqual(errors, []);
});

it('a deploy that changes only the wasm installs a new worker, which caches the new wasm', async (t) => {
  const www = await copyOfWww(t);
  const server = await startServer({ test: t, seedMessages: 0, www });
  const { page, errors } = await newPage(browser, t);
  await openControlled(page, server.url);
  const installed = await cached(page, 'pkg/chat_sync_bg.wasm');
  assert.ok(installed, 'the worker cached the wasm when it installed');

  // The deploy: the wasm with other bytes, and what the package build writes beside it; the
  // wasm-bindgen glue, sw.js and the rest of www/ stay byte for byte the same.
  const wasmPath = join(www, 'pkg/chat_sync_bg.wasm');
  await writeFile(wasmPath, Buffer.concat([await readFile(wasmPath), customSection('deploy', 'wasm only')]));
  await promisify(execFile)('node', [repoPath('scripts/build-id.mjs'), join(www, 'pkg')]);
  await touchLater([wasmPath, join(www, 'pkg/build-id.js')]);
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#conversations .conversation') !== null);

  await pollUntil(() => cached(page, 'pkg/chat_sync_bg.wasm'), (wasm) => wasm?.tail.includes('wasm only'),
    { message: 'a new worker to cache the deployed wasm (and the old worker\'s cache to go)' });
  assert.deepEqual(errors, []);
});
