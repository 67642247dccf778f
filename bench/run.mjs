// Serves bench/ on 127.0.0.1, runs the benchmark page in headless Chromium (one page, one run)
// and writes the figures to docs/benchmarks.md. `bench/run.sh` builds what it needs first.
//   BENCH_ROUNDS=5             rounds of every write method at 100,000 messages and more, three
//                              times as many below (the median is reported)
//   BENCH_SIZES=10000,100000   message counts
//   BENCH_PROFILE_DIR=/dev/shm where the browser profile goes (default /dev/shm if present)

import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = fileURLToPath(new URL('.', import.meta.url));
const output = join(here, '..', 'docs', 'benchmarks.md');
/** Everything after this line of docs/benchmarks.md is hand-written and kept. */
const NOTES_MARKER = '<!-- Notes below are hand-written; bench/run.mjs keeps them. -->';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
const options = {
  rounds: Number(process.env.BENCH_ROUNDS ?? 5),
  sizes: (process.env.BENCH_SIZES ?? '10000,100000').split(',').map(Number),
};

/** A static file server for bench/ (nothing outside it). */
function serve() {
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
const profileParent = process.env.BENCH_PROFILE_DIR
  ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());

/** How long a fresh browser is left alone before a method runs in it. */
const SETTLE_MS = 2000;

/** Opens the page in a fresh on-disk profile (IndexedDB on disk, as for users: incognito-like
 * contexts keep it in memory) and resolves to what `call(page)` resolves to, and the browser
 * version. */
async function inFreshProfile(url, call) {
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

/** Rounds for `n` messages: sizes under 100,000 run three times as many, as a round takes a tenth
 * of the time and a few seconds' writes vary more from round to round. */
const roundsFor = (n) => (n < 100_000 ? 3 : 1) * options.rounds;

/** Every size: `roundsFor(n)` rounds of every write method (the order rotating from round to round),
 * each in a fresh profile, then the checks (and on the largest size the reads). */
async function runBench(url) {
  const { value: methods } = await inFreshProfile(url, (page) => page.evaluate(() => window.benchMethods));
  const results = { writes: [] };
  for (const n of options.sizes) {
    const row = { n, rounds: roundsFor(n), ms: Object.fromEntries(methods.map((method) => [method, []])) };
    for (let round = 0; round < row.rounds; round++) {
      const order = methods.map((_, i) => methods[(i + round) % methods.length]);
      for (const method of order) {
        const { value: ms } = await inFreshProfile(url,
          (page) => page.evaluate((o) => window.benchWrite(o), { n, method }));
        row.ms[method].push(ms);
        console.log(`  ${n} messages, round ${round + 1}: ${method} ${ms.toFixed(0)} ms`);
      }
    }
    const last = n === options.sizes[options.sizes.length - 1];
    const { value: checks, browser } = await inFreshProfile(url,
      (page) => page.evaluate((o) => window.benchChecks(o), { n, reads: last }));
    row.encode = checks.encode;
    Object.assign(results, { browser, getAllRecords: checks.getAllRecords });
    if (last) results.reads = checks.reads;
    results.writes.push(row);
  }
  return results;
}

/** The machine's CPU time so far, from /proc/stat: `{ total, steal }` in clock ticks (zeros where
 * there is no /proc/stat). Steal is time the hypervisor gave this VM's CPUs to others. */
async function cpuTicks() {
  const line = (await readFile('/proc/stat', 'utf8').catch(() => '')).split('\n')[0];
  const ticks = line.startsWith('cpu ') ? line.trim().split(/\s+/).slice(1).map(Number) : [];
  return { total: ticks.reduce((a, b) => a + b, 0), steal: ticks[7] ?? 0 };
}

async function machine() {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? 'unknown CPU';
  return `${availableParallelism()} cores (${model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
/** The median of `key`'s ratio to the baseline of the same round. */
const paired = (row, key) => median(row.ms[key].map((value, round) => value / row.ms.raw[round]));
const ms = (value) => value >= 100 ? value.toFixed(0) : value.toFixed(1);
const times = (ratio) => `${ratio.toFixed(2)}×`;
const verdict = (ok) => (ok ? 'met' : '**missed**');

const LABELS = {
  raw: 'plain IndexedDB put loop, one transaction (**baseline**)',
  dexie: 'Dexie `bulkPut`',
  storeSync: 'store: `apply`, 500 then batches of 2,000 (how the engine writes a sync run\'s feed pages)',
  storeOneBatch: 'store: `apply`, one batch of all',
  storePaged: '_diagnostic:_ store: `apply`, batches of 500 (a feed page per transaction)',
  rawPaged: '_diagnostic:_ plain put loop, transactions of 500',
  rawGetThenPut: '_diagnostic:_ plain get-then-put (the reads the store\'s merge needs), transactions of 500',
};

function markdown(results, { machine, load, date, steal }) {
  const lines = [
    '# Benchmarks',
    '',
    'Generated by `make bench` (`bench/run.sh`); do not edit above the notes marker.',
    '',
    `- Date: ${date}`,
    `- Machine: ${machine}; load average ${load}; CPU time stolen by the hypervisor during the run ${steal}`
      + ' (other work skews the figures)',
    `- Browser: ${results.browser}, headless, on-disk profile in ${profileParent}`
      + (profileParent === '/dev/shm' ? ' (a tmpfs: no device write latency)' : ''),
    '- Store built with the workspace\'s release profile and `wasm-bindgen --target web`, no wasm-opt',
    '',
    '## Writes',
    '',
    `Realistic messages (20 conversations, 8 senders, bodies of 10–300 characters, increasing server`,
    `stamps; \`bench/src/data.rs\`), each method into a fresh database with the messages store's key path`,
    'and indexes, each method in a fresh browser profile, left alone for 2 s before it runs. Rounds:',
    `${results.writes.map((row) => `${row.rounds} at ${row.n.toLocaleString('en-US')}`).join(', ')}, the order of the`,
    'methods rotating; the median round is shown, and ratios are of medians. The baseline is',
    'measured in the same run. *Paired* is the median of each round\'s ratio to the baseline of the',
    'same round, which drift over the run (this VM\'s speed changes from minute to minute) moves less.',
    '',
  ];
  const verdicts = [];
  for (const row of results.writes) {
    const med = Object.fromEntries(Object.entries(row.ms).map(([key, values]) => [key, median(values)]));
    const size = row.n.toLocaleString('en-US');
    lines.push(`### ${size} messages`, '',
      '| method | median ms | vs baseline | paired | each round, ms |', '|---|--:|--:|--:|--:|');
    for (const [key, label] of Object.entries(LABELS)) {
      lines.push(`| ${label} | ${ms(med[key])} | ${times(med[key] / med.raw)} | ${times(paired(row, key))} | ` +
        `${row.ms[key].map(ms).join(' / ')} |`);
    }
    lines.push(`| _diagnostic:_ encoding the records alone (serde-wasm-bindgen, the store's codec) | ` +
      `${ms(row.encode)} | ${times(row.encode / med.raw)} | | |`, '');
    for (const [key, batches] of [['storeSync', 'a sync run\'s batches'], ['storeOneBatch', 'one batch']]) {
      verdicts.push(
        `| ${size}: store (${batches}) ≤ 1.10× baseline | ${times(med[key] / med.raw)} (paired ${times(paired(row, key))}) | ` +
          `${verdict(med[key] <= 1.1 * med.raw)} |`,
        `| ${size}: store (${batches}) no slower than Dexie | ${times(med[key] / med.dexie)} of Dexie | ` +
          `${verdict(med[key] <= med.dexie)} |`,
      );
    }
  }
  const { reads } = results;
  const raw = results.getAllRecords ? '`IDBIndex.getAllRecords` (prev, count 50)' : 'a cursor walk (no `getAllRecords`)';
  lines.push(
    '## Reads',
    '',
    `The newest 50 messages of a conversation before a random position (\`before\`), ${reads.reads}`,
    `reads of the ${reads.n.toLocaleString('en-US')}-message database the store wrote, after`,
    `warm-up; store and raw alternate which goes first. Raw JS reads the same index with ${raw}.`,
    '',
    '| method | p50 ms | p95 ms | p95 vs raw |',
    '|---|--:|--:|--:|',
    `| raw index read | ${reads.raw.p50.toFixed(1)} | ${reads.raw.p95.toFixed(1)} | 1.00× |`,
    `| store: \`IndexedDbStore::messages\` | ${reads.store.p50.toFixed(1)} | ${reads.store.p95.toFixed(1)} | ` +
      `${times(reads.store.p95 / reads.raw.p95)} |`,
    `| _diagnostic:_ decoding a read's 50 records alone (serde-wasm-bindgen into \`LocalMessage\`s, the store's codec, which the raw read does without): mean | ` +
      `${reads.decode.toFixed(2)} | | |`,
    '',
    '(`performance.now()` is coarsened to 0.1 ms in pages that are not cross-origin isolated.)',
    '',
  );
  verdicts.push(`| reads: store p95 ≤ 1.2× raw | ${times(reads.store.p95 / reads.raw.p95)} | ` +
    `${verdict(reads.store.p95 <= 1.2 * reads.raw.p95)} |`);
  lines.push('## Targets', '', '| target | this run | |', '|---|--:|---|', ...verdicts, '');
  return lines.join('\n');
}

const started = { date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), load: loadavg()[0].toFixed(2) };
const ticksBefore = await cpuTicks();
const server = await serve();
let results;
try {
  results = await runBench(`http://127.0.0.1:${server.address().port}/index.html`);
} finally {
  server.close();
}
const previous = await readFile(output, 'utf8').catch(() => '');
const notes = previous.includes(NOTES_MARKER) ? previous.slice(previous.indexOf(NOTES_MARKER)) : `${NOTES_MARKER}\n`;
started.load += ` at the start, ${loadavg()[0].toFixed(2)} at the end`;
const ticksAfter = await cpuTicks();
const elapsed = ticksAfter.total - ticksBefore.total;
started.steal = elapsed > 0 ? `${((100 * (ticksAfter.steal - ticksBefore.steal)) / elapsed).toFixed(1)} %` : 'unknown';
await writeFile(output, `${markdown(results, { ...started, machine: await machine() })}\n${notes}`);
console.log(`wrote ${output}`);
