// What the benchmark scripts share: a static server for bench/ and a fresh headless Chromium
// profile per measurement (bench/run.mjs, bench/maintenance.mjs).

import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = fileURLToPath(new URL('.', import.meta.url));
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

/** A static file server for bench/ (nothing outside it). */
export function serve() {
  const server = createServer(async (request, response) => {
    const path = normalize(join(here, decodeURIComponent(new URL(request.url, 'http://x').pathname)));
    const file = path.endsWith(sep) ? join(path, 'index.html') : path;
    try {
      if (!file.startsWith(here)) throw new Error('outside bench/');
      const body = await readFile(file);
      response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Where the browser profile goes: BENCH_PROFILE_DIR, else /dev/shm where it exists. A tmpfs
 * keeps the browser's on-disk IndexedDB code path (LevelDB files, flushes) without the device's
 * write latency, which here made the same method's rounds differ by 2× and more at 100,000
 * messages. */
export const profileParent = process.env.BENCH_PROFILE_DIR
  ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());

/** How long a fresh browser is left alone before a method runs in it. */
const SETTLE_MS = 2000;

/** Opens the page in a fresh on-disk profile (IndexedDB on disk, as for users: incognito-like
 * contexts keep it in memory) and resolves to what `call(page)` resolves to, and the browser
 * version. */
export async function inFreshProfile(url, call) {
  const profile = await mkdtemp(join(profileParent, 'chat-sync-bench-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: false, // --headless=new below
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.on('console', (message) => console.log(`  ${message.text()}`));
    // A panic in the wasm leaves the page's promise pending: fail instead of waiting forever.
    const crashed = new Promise((_, reject) => page.on('pageerror', reject));
    await page.goto(url);
    await page.waitForFunction(() => typeof window.benchWrite === 'function');
    // A fresh browser does its own start-up work for a moment (profile files, its databases):
    // let it finish before timing, or it may land on the first writes.
    await page.waitForTimeout(SETTLE_MS);
    const value = await Promise.race([call(page), crashed]);
    const cdp = await context.newCDPSession(page);
    return { value, browser: (await cdp.send('Browser.getVersion')).product };
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}
